"""Resources: the point3 client and the warehouse, configured from the environment.

The merchant key is no field of any resource: the client reads it from POINT3_SECRET_KEY or
POINT3_SECRET_KEY_FILE when a step builds it, so it cannot appear in run config, in the
launchpad, in a resource's repr, in tags, logs or metadata.
"""

from pathlib import Path

from dagster import ConfigurableResource, EnvVar, get_dagster_logger

from point3_pipeline import config
from point3_pipeline.client import Point3Client
from point3_pipeline.limits import Limits
from point3_pipeline.retry import RetryEvent, RetryPolicy
from point3_pipeline.warehouse import Warehouse


def _log_retry(event: RetryEvent) -> None:
    get_dagster_logger().warning(
        f"point3 {event.method} {event.path}: {event.reason} on attempt {event.attempt}, retrying in {event.delay:.1f} s"
    )


class Point3Resource(ConfigurableResource):
    """Hands out the library's client; tests point it at the sandbox."""

    api_url: str
    timeout_seconds: float = 10.0
    page_size: int = 30
    max_attempts: int = 5

    def client(self) -> Point3Client:
        return Point3Client(
            config.api_url({"POINT3_API_URL": self.api_url}),
            config.secret_key(),
            timeout=self.timeout_seconds,
            retry=RetryPolicy(max_attempts=self.max_attempts),
            page_size=self.page_size,
            on_retry=_log_retry,
            limits=self.limits(),
        )

    def limits(self) -> Limits:
        # Read when a step runs, like the key: the bounds are deployment settings, not run config.
        return config.limits()


class WarehouseResource(ConfigurableResource):
    path: str

    def get(self) -> Warehouse:
        return Warehouse(self.path)


class ReportsResource(ConfigurableResource):
    directory: str

    @property
    def path(self) -> Path:
        return Path(self.directory)


def resources_from_env() -> dict:
    return {
        "point3": Point3Resource(api_url=EnvVar("POINT3_API_URL")),
        "warehouse": WarehouseResource(path=EnvVar("POINT3_WAREHOUSE")),
        "reports_dir": ReportsResource(directory=EnvVar("POINT3_REPORTS_DIR")),
    }

"""Resources: a merchant's point3 client, warehouse and reports folder, from its partition key.

Each step names its merchant (the `merchant` dimension of its partition key) and the resource
resolves it from the merchants file (POINT3_MERCHANTS), read when the step runs; without the
file, the merchant `default` of POINT3_API_URL, POINT3_SECRET_KEY(_FILE), POINT3_WAREHOUSE,
POINT3_REPORTS_DIR and POINT3_BUSINESSES as before. The key is no field of any resource: the
client reads the merchant's key file when a step builds it, so it cannot appear in run config,
the launchpad, a resource's repr, tags, logs or metadata.
"""

from pathlib import Path

from dagster import ConfigurableResource, get_dagster_logger

from point3_pipeline import config
from point3_pipeline.client import Point3Client
from point3_pipeline.limits import Limits
from point3_pipeline.merchants import Merchant, load_merchant
from point3_pipeline.retry import RetryEvent, RetryPolicy
from point3_pipeline.warehouse import Warehouse


def merchant(merchant_id: str) -> Merchant:
    """The merchant now, from the file (ConfigError with its entry's sentence when it is bad)."""
    return load_merchant(merchant_id)


def _log_retry(event: RetryEvent) -> None:
    get_dagster_logger().warning(
        f"point3 {event.method} {event.path}: {event.reason} on attempt {event.attempt}, retrying in {event.delay:.1f} s"
    )


class Point3Resource(ConfigurableResource):
    """Hands out a merchant's client: its API URL and its key, read now."""

    timeout_seconds: float = 10.0
    page_size: int = 30
    max_attempts: int = 5

    def client(self, merchant_id: str) -> Point3Client:
        found = merchant(merchant_id)
        return Point3Client(
            found.api_url,
            found.secret_key(),
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
    """A merchant's warehouse, with the businesses of its own businesses file."""

    # How long a step waits for another process writing the same merchant's file.
    lock_timeout_seconds: float = 120.0

    def get(self, merchant_id: str) -> Warehouse:
        found = merchant(merchant_id)
        return found.warehouse(lock_timeout=self.lock_timeout_seconds, businesses=found.businesses())


class ReportsResource(ConfigurableResource):
    """A merchant's reports folder; its index.html is rewritten after each workbook unless turned off."""

    write_index: bool = True

    def path(self, merchant_id: str) -> Path:
        return merchant(merchant_id).reports_dir


def resources_from_env() -> dict:
    return {"point3": Point3Resource(), "warehouse": WarehouseResource(), "reports_dir": ReportsResource()}

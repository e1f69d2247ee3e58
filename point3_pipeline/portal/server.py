"""Running the portal with uvicorn: the port checked first (one sentence if it is taken), the
forwarded headers believed only from the configured proxies."""

from __future__ import annotations

import errno
import socket

import uvicorn

from point3_pipeline.config import ConfigError
from point3_pipeline.portal.app import create_app
from point3_pipeline.portal.settings import PortalSettings


def check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is in use: stop what holds it or choose another with --port.") from None
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): check --host and --port.") from None


def serve(settings: PortalSettings) -> None:
    app = create_app(settings)
    check_port(settings.host, settings.port)
    trusted = ",".join(settings.forwarded_allow_ips)
    scheme = "http" if settings.insecure_loopback_demo else "https (through your TLS proxy)"
    print(f"point3 portal on {settings.host}:{settings.port}, {scheme}; store {settings.db_path}", flush=True)
    uvicorn.run(
        app, host=settings.host, port=settings.port, proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None,
        server_header=False, date_header=True, log_level="info",
    )  # fmt: skip

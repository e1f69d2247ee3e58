"""Running the portal with uvicorn: the port checked first (one sentence if it is taken), the
forwarded headers believed only from the configured proxies."""

from __future__ import annotations

import errno
import socket
import sys

import uvicorn

from point3_pipeline.config import ConfigError
from point3_pipeline.portal.accounts import list_users
from point3_pipeline.portal.app import create_app
from point3_pipeline.portal.settings import PortalSettings
from point3_pipeline.portal.store import open_store


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


def uvicorn_options(settings: PortalSettings) -> dict:
    """How uvicorn runs the portal: X-Forwarded-For/-Proto believed only from the configured
    proxies (none: never), no Server header."""
    trusted = ",".join(settings.forwarded_allow_ips)
    return {
        "host": settings.host, "port": settings.port, "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None, "server_header": False, "log_level": "info",
    }  # fmt: skip


def serve(settings: PortalSettings) -> None:
    check_port(settings.host, settings.port)
    app = create_app(settings)
    if not list_users(open_store(settings.db_path)):
        print(f"point3 serve: no users in {settings.db_path} yet: add one with `point3 users add NAME --merchant ID`.",
              file=sys.stderr, flush=True)  # fmt: skip
    scheme = "http" if settings.insecure_loopback_demo else "https (through your TLS proxy)"
    print(f"point3 portal on {settings.host}:{settings.port}, {scheme}; store {settings.db_path}", flush=True)
    uvicorn.run(app, **uvicorn_options(settings))

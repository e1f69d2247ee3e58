"""The DuckDB warehouse: connections, versioned migrations, derived tables, the analysts' copy.

DuckDB lets one process hold a file read-write and refuses every other process, readers
included. So writers hold a connection only for one step (a sync run, a derived refresh, a
report) and, after each successful write, publish a read-only copy
(`<name>.published.duckdb`, replaced atomically) that analysts open with their own tools
while the pipeline runs. A writer that finds the file taken waits for it, bounded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

TIMEZONE = "Asia/Seoul"
DERIVED_TABLES = ("cancellations", "culture_vat_daily", "settlement_balance_history")
_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class WarehouseError(Exception):
    """The warehouse cannot be used as it is (newer schema, locked too long, ...)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The schema's migrations, in order, from the package's sql/migrations folder."""
    found = []
    for entry in resources.files("point3_pipeline.sql").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def derived_sql(name: str) -> str:
    return resources.files("point3_pipeline.sql").joinpath("derived", f"{name}.sql").read_text(encoding="utf-8")


def _is_lock_error(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


class Warehouse:
    """A DuckDB warehouse file. Cheap to construct; every use opens a short connection."""

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 120.0):
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._migrated = False

    @property
    def published_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.published{self.path.suffix or '.duckdb'}")

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        # Another writer (a Dagster run, a CLI sync) may hold the file for a few seconds:
        # wait for it, bounded and logged, instead of failing at once.
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                conn = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    if _is_lock_error(exc):
                        raise WarehouseError(
                            f"{self.path} stayed locked by another process for {self.lock_timeout:.0f} s; "
                            "is another sync running? (analysts should open the published copy)"
                        ) from exc
                    raise
                log.info("warehouse %s is locked by another process; waiting %.2f s", self.path, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        conn.execute(f"SET TimeZone = '{TIMEZONE}'")
        return conn

    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; the schema is created or migrated on first write use."""
        if read_only and not self.path.exists():
            raise WarehouseError(f"{self.path} does not exist yet: run a sync first.")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._open(read_only)
        try:
            if not read_only and not self._migrated:
                migrate(conn)
                self._migrated = True
            elif read_only:
                check_schema(conn)
            yield conn
        finally:
            conn.close()

    def refresh_derived(self, *tables: str) -> dict[str, int]:
        """Rebuild derived tables (all by default) in one transaction; returns their row counts."""
        with self.connect() as conn:
            return refresh_derived(conn, tables or DERIVED_TABLES)

    def publish(self) -> Path:
        """Copy the warehouse to the analysts' read-only file, atomically (temp file + rename).

        An analyst connected to the previous copy keeps reading it (the open file survives
        the rename); new connections see the new one.
        """
        target = self.published_path
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        with self.connect() as conn:
            conn.execute("CHECKPOINT")
            # The copy is taken while we hold the write lock, so no writer changes it underneath.
            shutil.copyfile(self.path, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        return target


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def check_schema(conn: duckdb.DuckDBPyConnection) -> int:
    known = migrations()[-1].version
    version = schema_version(conn)
    if version > known:
        raise WarehouseError(
            f"the warehouse schema is version {version}, newer than this point3-pipeline knows "
            f"({known}); upgrade point3-pipeline before using it."
        )
    return version


def migrate(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply pending migrations, each in its own transaction; returns the versions applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    current = check_schema(conn)
    applied = []
    for migration in migrations():
        if migration.version <= current:
            continue
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now())", [migration.version, migration.name]
            )
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        applied.append(migration.version)
        log.info("warehouse migrated to version %d (%s)", migration.version, migration.name)
    if applied:
        refresh_derived(conn, DERIVED_TABLES)
    return applied


def refresh_derived(conn: duckdb.DuckDBPyConnection, tables: tuple[str, ...] | list[str]) -> dict[str, int]:
    unknown = set(tables) - set(DERIVED_TABLES)
    if unknown:
        raise ValueError(f"not derived tables: {sorted(unknown)}")
    conn.execute("BEGIN TRANSACTION")
    try:
        for table in tables:
            conn.execute(derived_sql(table))
        conn.execute(derived_sql("views"))
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}

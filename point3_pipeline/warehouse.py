"""The DuckDB warehouse: connections, versioned migrations, derived tables, the analysts' copy.

DuckDB lets one process hold a file read-write and refuses every other process, readers
included. So writers hold a connection only for one step (a sync run, a derived refresh, a
report) and, after each successful write, publish a read-only copy
(`<name>.published.duckdb`, replaced atomically) that analysts open with their own tools
while the pipeline runs. A writer that finds the file taken waits for it, bounded.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import errno
import functools
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

import duckdb

from point3_pipeline import config
from point3_pipeline.businesses import Business, load_declarations

log = logging.getLogger(__name__)

TIMEZONE = "Asia/Seoul"
# The one place that orders the derived tables: each table after the tables it reads, mapped
# to them. Rebuilding a table rebuilds the ones that read it, in this order, in one transaction.
DERIVED_INPUTS: dict[str, tuple[str, ...]] = {
    "cancellations": (),
    "payment_tax_split": ("cancellations",),
    "tax_filing_daily": ("payment_tax_split",),
    "culture_vat_daily": ("payment_tax_split",),
    "settlement_balance_history": (),
}
DERIVED_TABLES = tuple(DERIVED_INPUTS)
# The tables built from the businesses file's declarations (loaded just before the first of them).
DECLARATION_READERS = ("payment_tax_split",)
_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# What DuckDB says when a file's bytes are not what it wrote (a block fails its checksum, a
# metadata pointer leads nowhere): the file is damaged, not the query wrong.
_DAMAGE = re.compile(r"checksum|corrupt|failed to load metadata|metadatareader", re.IGNORECASE)
_DISK_FULL = re.compile(r"no space left on device", re.IGNORECASE)
_TEMP_PID = re.compile(r"-(\d+)$")
# DuckDB's worker threads for each database this thread opens; None: DuckDB's own (one per core).
_duckdb_threads: contextvars.ContextVar[int | None] = contextvars.ContextVar("point3_duckdb_threads", default=None)

T = TypeVar("T")


class WarehouseError(Exception):
    """The warehouse cannot be used as it is (newer schema, locked too long, ...)."""


class WarehouseDamaged(WarehouseError):
    """The warehouse file does not read whole: DuckDB finds blocks that fail their checksums."""


class NoSpaceLeft(WarehouseError):
    """A write failed because its disk is full (the warehouse, its copy or a workbook)."""


def first_line(exc: BaseException) -> str:
    """An error's own words without DuckDB's multi-line context, for a one-sentence message."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def no_space_left(folder: Path, exc: BaseException) -> NoSpaceLeft:
    return NoSpaceLeft(f"no space left on device at {folder}: free space there, then run again ({first_line(exc)})")


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return bool(_DISK_FULL.search(str(exc)))


def _pid_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_litter(folder: Path, pattern: str, *, all_of_them: bool = False) -> None:
    """Remove temp files (or folders) matching `pattern` in `folder` that a killed process left.

    Their names end in "-PID". One whose PID is not a running process is litter, and so is one
    with our own PID (an earlier process that had it: this one has not started its own yet).
    `all_of_them` when the caller holds the lock every writer of these files takes.
    """
    for path in Path(folder).glob(pattern):
        match = _TEMP_PID.search(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if all_of_them or pid == os.getpid() or not _pid_is_running(pid):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            log.warning("removed %s, left by an interrupted run", path)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """The schema's migrations, in order, from the package's sql/migrations folder (read once:
    every connection checks the schema against them)."""
    found = []
    for entry in resources.files("point3_pipeline.sql").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return tuple(found)


def duckdb_threads_sharing(databases: int) -> int | None:
    """DuckDB worker threads for each of `databases` open at once in this process: the cores
    shared among them (at least one), or None (DuckDB's default, one per core) for one alone.
    Each database has its own pool; 16 of them with a worker per core on 2 cores spent ~10%
    more CPU handing tiny queries between threads than one thread each (bench/merchants.py)."""
    if databases <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // databases)


def with_duckdb_threads(threads: int | None, work: Callable[..., T], *args, **kwargs) -> T:
    """`work(*args, **kwargs)`, every database it opens (Warehouse) with `threads` DuckDB threads."""
    token = _duckdb_threads.set(threads)
    try:
        return work(*args, **kwargs)
    finally:
        _duckdb_threads.reset(token)


def derived_sql(name: str) -> str:
    return resources.files("point3_pipeline.sql").joinpath("derived", f"{name}.sql").read_text(encoding="utf-8")


def _is_lock_error(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


def is_damage(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and bool(_DAMAGE.search(str(exc)))


def read_whole(conn: duckdb.DuckDBPyConnection, database: str | None = None) -> None:
    """Read every column of every row of every table of `database` (the connection's own by
    default), so DuckDB checks the checksum of every data block (count(*) alone reads only
    metadata); raises its error on the first bad block. One statement for all the tables: a
    statement costs ~1 ms of CPU before it reads a row. A table whose storage holds no row
    (estimated_size counts every stored row, deleted ones too) has no data block to read: its
    metadata was read and checked when the database was opened."""
    tables = [row[0] for row in conn.execute(
        "SELECT database_name || '.' || schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE database_name = coalesce(?, current_database()) AND NOT temporary AND estimated_size > 0 ORDER BY 1",
        [database],
    ).fetchall()]
    if tables:
        each = "SELECT count(*), bit_xor(hash(t)) FROM query_table(?) AS t"
        conn.execute(" UNION ALL ".join([each] * len(tables)), tables).fetchall()


def last_complete_day(path: Path) -> dt.date | None:
    """The last day with a complete window in the warehouse file at `path`, None if it has none
    or cannot be read."""
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute("SELECT max(window_date) FROM sync_windows WHERE is_complete").fetchone()[0]
    except duckdb.Error:
        return None


class Warehouse:
    """A DuckDB warehouse file. Cheap to construct; every use opens a short connection."""

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 120.0,
                 businesses: Sequence[Business] | None = None):
        """`businesses`: the declared businesses the tax split uses; None reads them from
        POINT3_BUSINESSES (config.businesses) at the first refresh, none declared when it is unset."""
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._businesses = None if businesses is None else list(businesses)
        self._migrated = False
        self._held: duckdb.DuckDBPyConnection | None = None

    @property
    def businesses(self) -> list[Business]:
        if self._businesses is None:
            self._businesses = config.businesses()
        return self._businesses

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
        conn.execute("SET TimeZone = ?", [TIMEZONE])
        # DuckDB draws a progress bar on stdout for a statement over 2 s: noise in the CLI's
        # output (which scripts read) and in Dagster's logs.
        conn.execute("SET enable_progress_bar = false")
        threads = _duckdb_threads.get()
        if threads is not None:
            # A setting of the database, not of the connect(): a second connect to a file this
            # process has open must not differ from the first in its configuration.
            conn.execute("SET threads = ?", [threads])
        return conn

    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; the schema is created or migrated on first write use.

        A DuckDB error saying the file is damaged or its disk full, raised while opening or
        inside the with-block, becomes WarehouseDamaged or NoSpaceLeft: one sentence saying
        what to do, whichever command met it.
        """
        if self._held is not None:
            # Inside held(): the file is open and this process holds its write lock.
            read_only = False
        elif read_only and not self.path.exists():
            raise WarehouseError(f"{self.path} does not exist yet: run a sync first.")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._explaining_errors():
            conn = self._open(read_only) if self._held is None else self._cursor(self._held)
            try:
                if not read_only and not self._migrated:
                    migrate(conn)
                    self._migrated = True
                elif read_only:
                    check_schema(conn)
                yield conn
            finally:
                conn.close()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Keep the file open for one operation of several steps (a sync, its derived refresh and
        the publish): each connect() inside is a new connection to the open database rather
        than an open of the file (~20 ms of CPU, and a checkpoint at each close). The write
        lock is held throughout, as a writer holds it for one step; nesting is allowed."""
        if self._held is not None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._explaining_errors():
            # The held connection runs no query: a result left unread on it would keep its
            # transaction open, and DuckDB then refuses the publish's CHECKPOINT.
            anchor = self._open(read_only=False)
            try:
                self._held = anchor
                with self.connect():  # creates or migrates the schema now
                    pass
                yield
            finally:
                self._held = None
                anchor.close()

    @staticmethod
    def _cursor(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        cursor = conn.cursor()
        cursor.execute("SET TimeZone = ?", [TIMEZONE])
        return cursor

    @contextlib.contextmanager
    def _explaining_errors(self) -> Iterator[None]:
        """A DuckDB error saying the file is damaged or its disk full, raised while opening or
        using it, becomes WarehouseDamaged or NoSpaceLeft: one sentence saying what to do."""
        try:
            yield
        except duckdb.Error as exc:
            if is_damage(exc):
                raise self.damaged(first_line(exc)) from exc
            if is_disk_full(exc):
                raise no_space_left(self.path.parent, exc) from exc
            raise

    def damaged(self, detail: str) -> WarehouseDamaged:
        """The error for this file not reading whole, with the steps to restore it."""
        if self.path.stem.endswith(".published"):
            return WarehouseDamaged(
                f"the analysts' copy {self.path} is damaged ({detail}): run `point3 publish` to replace it "
                "with a fresh copy of the warehouse."
            )
        copy = self.published_path
        day = last_complete_day(copy) if copy.exists() else None
        aside = f"move {self.path} (and {self.path.name}.wal, if there is one) aside"
        if day is None:
            return WarehouseDamaged(
                f"{self.path} is damaged ({detail}) and there is no readable analysts' copy to restore from: "
                f"stop the pipeline, {aside} and run `point3 sync --since <POINT3_START_DATE>` to read the "
                "history from point3 again (settlement observations cannot be read again)."
            )
        return WarehouseDamaged(
            f"{self.path} is damaged ({detail}); the analysts' copy {copy} is the backup (a publish never "
            f"replaces it with a damaged file): stop the pipeline, {aside}, copy {copy} to {self.path}, then run "
            f"`point3 sync --since {day}` to fill in what the copy lacks."
        )

    def refresh_derived(self, *tables: str) -> dict[str, int]:
        """Rebuild derived tables (all by default) and those that read them, in one transaction,
        with this warehouse's declared businesses; returns their row counts."""
        businesses = self.businesses  # a bad businesses file stops here, before any write
        with self.connect() as conn:
            return refresh_derived(conn, tables or DERIVED_TABLES, businesses)

    def publish(self) -> Path:
        """Copy the warehouse to the analysts' read-only file, atomically (temp file + rename),
        only once the copy is proven to read whole: the published copy is the backup of a
        damaged warehouse, so a damaged one never replaces it. The copy is the warehouse's
        bytes after a checkpoint, every block read back from disk and checked, so a damaged
        block of the warehouse is found in it (reading the warehouse too would only repeat that).

        An analyst connected to the previous copy keeps reading it (the open file survives
        the rename); new connections see the new one.
        """
        target = self.published_path
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        # All of it under the write lock, which every publish takes: a temp copy found now is
        # a killed publish's, and no writer changes the file while it is copied.
        with self.connect() as conn:
            remove_litter(target.parent, f".{target.name}.tmp-*", all_of_them=True)
            conn.execute("CHECKPOINT")
            try:
                _copy_synced(self.path, tmp)
                self._check_copy(conn, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        return target

    def _check_copy(self, conn: duckdb.DuckDBPyConnection, copy: Path) -> None:
        # Attached, the copy is a database of its own whose blocks no cache holds yet: every one
        # is read from disk and checked, which also covers warehouse blocks damaged on disk while
        # this process held good copies of them in memory. (Half the CPU of a DuckDB of its own.)
        try:
            conn.execute("ATTACH ? AS publish_check (READ_ONLY)", [str(copy)])
            try:
                read_whole(conn, "publish_check")
            finally:
                conn.execute("DETACH publish_check")
        except duckdb.Error as exc:
            raise self.damaged(f"a fresh copy of it does not read whole: {first_line(exc)}") from exc


def _copy_synced(source: Path, target: Path) -> None:
    try:
        shutil.copyfile(source, target)
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
    except OSError as exc:
        if is_disk_full(exc):
            raise no_space_left(target.parent, exc) from exc
        raise


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    # A failed COMMIT (a full disk) has ended the transaction already; the ROLLBACK's own
    # "no transaction is active" must not hide why the COMMIT failed.
    with contextlib.suppress(duckdb.TransactionException):
        conn.execute("ROLLBACK")


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    # duckdb_tables() rather than information_schema.tables: the same answer at a third of the
    # CPU, which every connection pays (a check step opens every merchant's file).
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = 'schema_migrations'"
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
            _rollback(conn)
            raise
        applied.append(migration.version)
        log.info("warehouse migrated to version %d (%s)", migration.version, migration.name)
    if applied:
        refresh_derived(conn, DERIVED_TABLES)
    return applied


def with_readers(tables: Sequence[str]) -> tuple[str, ...]:
    """`tables` and every derived table that reads one of them (directly or not), in build order."""
    unknown = set(tables) - set(DERIVED_TABLES)
    if unknown:
        raise ValueError(f"not derived tables: {sorted(unknown)}")
    chosen = set(tables)
    for table, inputs in DERIVED_INPUTS.items():  # build order: inputs come first
        if chosen.intersection(inputs):
            chosen.add(table)
    return tuple(t for t in DERIVED_TABLES if t in chosen)


def refresh_derived(
    conn: duckdb.DuckDBPyConnection, tables: Sequence[str], businesses: Sequence[Business] | None = None
) -> dict[str, int]:
    """Rebuild `tables`, the tables that read them and the views in one transaction: all or, on
    any error, none (the previous versions stay), with the error naming what could not be rebuilt.

    `businesses` replace the declarations before the tax split is rebuilt; None keeps the
    declarations the warehouse holds (a migration's refresh, which has no settings)."""
    tables = with_readers(tables)
    statements = []
    for table in tables:
        if table in DECLARATION_READERS and businesses is not None:
            statements.append(("the business declarations", functools.partial(load_declarations, businesses=businesses)))
        statements.append((f"the derived table {table}", derived_sql(table)))
    statements.append(("the views over the derived tables", derived_sql("views")))
    conn.execute("BEGIN TRANSACTION")
    step = "the derived tables"
    try:
        for step, work in statements:
            if callable(work):
                work(conn)
            else:
                conn.execute(work)
        step = "the derived tables (their commit)"
        conn.execute("COMMIT")
    except BaseException as exc:
        _rollback(conn)
        # A damaged file or a full disk is the connection's to explain (Warehouse.connect).
        if isinstance(exc, duckdb.Error) and not (is_damage(exc) or is_disk_full(exc)):
            raise WarehouseError(
                f"could not rebuild {step} ({first_line(exc)}); every derived table was left as it was before this refresh."
            ) from exc
        raise
    return row_counts(conn, tables)


def row_counts(conn: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> dict[str, int]:
    """Each table's rows, in one statement (each costs ~1 ms before it reads a row)."""
    if not tables:
        return {}
    counts = conn.execute(
        "SELECT " + ", ".join(["(SELECT count(*) FROM query_table(?))"] * len(tables)), list(tables)).fetchone()
    return dict(zip(tables, counts))

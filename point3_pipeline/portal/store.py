"""The portal's own SQLite store: people, lockouts, sessions and the audit log.

Its own file (POINT3_PORTAL_DB), never a warehouse: analysts open those, and password hashes
must not travel with them. The file is created readable by its owner alone; WAL lets the web
app's threads read while the command line writes (a user added, a lockout lifted). Schema
versions are the files of sql/portal, applied in order and counted in `PRAGMA user_version`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from point3_pipeline.config import ConfigError
from point3_pipeline.models import KST

BUSY_TIMEOUT_MS = 5_000  # a writer holds the file for milliseconds; a wait past this is a fault


def kst_now() -> dt.datetime:
    return dt.datetime.now(KST)


def stamp(moment: dt.datetime) -> str:
    """A time as stored: ISO 8601 in KST to the microsecond, so text order is time order."""
    return moment.astimezone(KST).isoformat(timespec="microseconds")


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("point3_pipeline.sql").joinpath("portal")
    files = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(int(name.split("_", 1)[0]), folder.joinpath(name).read_text(encoding="utf-8")) for name in files]


@dataclass(frozen=True)
class Store:
    """The store's file and the clock its times come from (a test's own clock moves lockouts on)."""

    path: Path
    clock: Callable[[], dt.datetime] = field(default=kst_now, compare=False)

    def now(self) -> dt.datetime:
        return self.clock().astimezone(KST)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction: committed when the block ends, rolled back on error."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()


def open_store(path: Path, clock: Callable[[], dt.datetime] = kst_now) -> Store:
    """The store at `path`, created (mode 600) and brought to the newest schema if needed;
    ConfigError with one sentence when its folder or file cannot be used."""
    path = Path(path)
    try:
        if not path.parent.is_dir():
            raise ConfigError(f"the portal's store {path} cannot be created: its folder {path.parent} does not exist.")
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            _migrate(conn, path)
        finally:
            conn.close()
    except OSError as exc:
        raise ConfigError(f"the portal's store {path} cannot be opened ({exc.strerror}); check POINT3_PORTAL_DB.") from None
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"the portal's store {path} is not a usable SQLite file ({exc}); check POINT3_PORTAL_DB.") from None
    return Store(path, clock)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        known = _migrations()
        if current > (known[-1][0] if known else 0):
            raise ConfigError(f"the portal's store {path} has schema {current}, newer than this program knows: upgrade point3.")
        for version, script in known:
            if version > current:
                for statement in _statements(script):
                    conn.execute(statement)
                # SQLite binds no value in a PRAGMA; the version is one of our own migrations' ints.
                conn.execute(f"PRAGMA user_version = {int(version)}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """The script's statements (executescript would commit the migration's transaction)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

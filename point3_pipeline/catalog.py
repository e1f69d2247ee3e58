"""The firm's combined, read-only catalog: every merchant's published copy behind union views
that add a `merchant_id` column, for the firm's own analysts (a merchant's people get only
their merchant's folder).

DuckDB does not keep ATTACH in a database file: attachments belong to a session and must be
made again in every new one (duckdb.org, "ATTACH and DETACH Statements": "attachment
definitions are not persisted between sessions"). Views that name an attached database are
kept, as text, and resolve once that database is attached again under the same alias. So the
catalog is two files in one folder, each replaced atomically:

- `catalog.duckdb`: the union views (one per table or view of the copies, e.g. `payments`)
  over aliases `m_<merchant id>`, and `meta.merchants` / `meta.build` saying what it holds;
- `catalog.sql`: the session set-up that attaches every published copy and the catalog, read
  only, then makes the catalog the default database. Open the catalog with it:
  `duckdb -init <root>/catalog.sql`, or in Python `catalog.connect(<root>)`.

Views rather than a copy of the data: the published copies are replaced after every run, so a
copy of their rows would be stale an hour later and would cost a full rewrite each time
(bench/catalog.py measures both), while views read the current copies and only change when
the set of merchants or a copy's schema does. A fingerprint of exactly those (ids, names,
paths, each copy's tables and column types) is kept in both files; `ensure_catalog` rebuilds
only when it differs. An analyst session keeps reading the copies it attached until it
attaches again (a replaced copy stays readable through the open file).

The view text is generated: DDL cannot take bound parameters, so merchant ids (validated
slugs), table and column names and paths go through `_identifier` and `_literal`, which
quote them, and through nothing else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from point3_pipeline.merchants import Merchant
from point3_pipeline.warehouse import first_line, remove_litter

log = logging.getLogger(__name__)

CATALOG_NAME = "catalog.duckdb"
INIT_NAME = "catalog.sql"
CATALOG_ALIAS = "point3_catalog"
# Changes whenever the layout of the catalog itself changes, so old catalogs are rebuilt.
FORMAT = 1
_FINGERPRINT_LINE = "-- point3 catalog fingerprint: "
# Builds in one process take turns: each clears temp files its own PID left (see remove_litter).
_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Source:
    """One merchant as the catalog sees it: its copy's relations, or why it is left out."""

    merchant: Merchant
    relations: dict[str, list[tuple[str, str]]]  # relation -> [(column, type)], in column order
    kinds: dict[str, str]  # relation -> 'BASE TABLE' or 'VIEW'
    reason: str | None = None  # why the merchant is not in the views (no copy yet, unreadable)

    @property
    def alias(self) -> str:
        return f"m_{self.merchant.id}"


@dataclass(frozen=True)
class CatalogResult:
    path: Path
    init_script: Path
    rebuilt: bool
    fingerprint: str
    included: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...]  # (merchant id, reason)
    views: int
    seconds: float


def _sql(name: str) -> str:
    return resources.files("point3_pipeline.sql").joinpath("catalog", f"{name}.sql").read_text(encoding="utf-8")


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_source(merchant: Merchant) -> Source:
    """The relations of the merchant's published copy; a missing or unreadable copy leaves the
    merchant out of the views with its reason, and never stops the others."""
    path = merchant.published_path
    if not path.exists():
        return Source(merchant, {}, {}, "no published copy yet: run a sync for it")
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            rows = conn.execute(_sql("relations")).fetchall()
    except duckdb.Error as exc:
        return Source(merchant, {}, {}, f"its published copy {path} cannot be read ({first_line(exc)})")
    relations: dict[str, list[tuple[str, str]]] = {}
    kinds: dict[str, str] = {}
    for table, kind, column, data_type in rows:
        relations.setdefault(table, []).append((column, data_type))
        kinds[table] = kind
    return Source(merchant, relations, kinds)


def fingerprint(sources: Sequence[Source]) -> str:
    """What the catalog depends on: each merchant's id, name, copy and its schema (or reason)."""
    described = [
        [s.merchant.id, s.merchant.name, str(s.merchant.published_path.absolute()), s.reason,
         sorted((name, columns) for name, columns in s.relations.items())]
        for s in sorted(sources, key=lambda s: s.merchant.id)
    ]  # fmt: skip
    return hashlib.sha256(json.dumps([FORMAT, described], ensure_ascii=False).encode()).hexdigest()


def current_fingerprint(folder: Path) -> str | None:
    """The fingerprint both catalog files agree on, or None (missing, unreadable or a mismatch,
    e.g. after a crash between the two renames)."""
    script = folder / INIT_NAME
    try:
        first = script.read_text(encoding="utf-8").splitlines()[0]
        with duckdb.connect(str(folder / CATALOG_NAME), read_only=True) as conn:
            stored = conn.execute("SELECT fingerprint FROM meta.build").fetchone()[0]
    except (OSError, IndexError, UnicodeDecodeError, duckdb.Error, TypeError):
        return None
    return stored if first == _FINGERPRINT_LINE + stored else None


def ensure_catalog(merchants: Sequence[Merchant], folder: Path, *, force: bool = False) -> CatalogResult:
    """The catalog in `folder` for `merchants`, rebuilt only if its fingerprint changed."""
    started = time.perf_counter()
    sources = [read_source(m) for m in merchants]
    wanted = fingerprint(sources)
    rebuilt = force or current_fingerprint(folder) != wanted
    if rebuilt:
        with _BUILD_LOCK:
            views = _write(sources, folder, wanted)
    else:
        views = _view_count(folder)
    return CatalogResult(
        path=folder / CATALOG_NAME, init_script=folder / INIT_NAME, rebuilt=rebuilt, fingerprint=wanted,
        included=tuple(s.merchant.id for s in sources if s.reason is None),
        left_out=tuple((s.merchant.id, s.reason) for s in sources if s.reason is not None),
        views=views, seconds=time.perf_counter() - started,
    )  # fmt: skip


def _view_count(folder: Path) -> int:
    with duckdb.connect(str(folder / CATALOG_NAME), read_only=True) as conn:
        return conn.execute("SELECT views FROM meta.build").fetchone()[0]


def _write(sources: Sequence[Source], folder: Path, wanted: str) -> int:
    """Build both files under temp names, then rename each over the old one: a reader sees
    the old catalog or the new, never half of one."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_litter(folder, f".{CATALOG_NAME}.*.tmp-*")
    remove_litter(folder, f".{INIT_NAME}.*.tmp-*")
    database = folder / f".{CATALOG_NAME}.new.tmp-{os.getpid()}"
    script = folder / f".{INIT_NAME}.new.tmp-{os.getpid()}"
    try:
        attach = _attachments(sources)
        views = _build_database(database, sources, attach, wanted)
        _write_synced(script, _init_script(wanted, attach, folder / CATALOG_NAME))
        _fsync(database)
        os.replace(database, folder / CATALOG_NAME)
        os.replace(script, folder / INIT_NAME)
        _fsync(folder)
    finally:
        for leftover in (database, database.with_name(database.name + ".wal"), script):
            leftover.unlink(missing_ok=True)
    log.info("catalog %s rebuilt: %d views over %d merchants", folder / CATALOG_NAME, views,
             sum(s.reason is None for s in sources))
    return views


def _attachments(sources: Sequence[Source]) -> list[str]:
    return [
        f"ATTACH {_literal(str(s.merchant.published_path.absolute()))} AS {_identifier(s.alias)} (READ_ONLY);"
        for s in sources if s.reason is None
    ]  # fmt: skip


def _union_views(sources: Sequence[Source]) -> list[str]:
    """One CREATE VIEW per relation name found in any copy, over the copies that have it; by
    name, so a copy a migration behind gives NULL in the columns it lacks."""
    included = [s for s in sources if s.reason is None]
    names = sorted({name for s in included for name in s.relations})
    statements = []
    for name in names:
        parts = [
            f"SELECT {_literal(s.merchant.id)} AS merchant_id, * FROM {_identifier(s.alias)}.main.{_identifier(name)}"
            for s in included if name in s.relations
        ]  # fmt: skip
        statements.append(f"CREATE VIEW main.{_identifier(name)} AS " + " UNION ALL BY NAME ".join(parts))
    return statements


def _build_database(path: Path, sources: Sequence[Source], attach: list[str], wanted: str) -> int:
    path.unlink(missing_ok=True)
    views = _union_views(sources)
    with duckdb.connect(str(path)) as conn:
        for statement in attach:
            conn.execute(statement)
        conn.execute(_sql("meta"))
        for statement in views:
            conn.execute(statement)
        if sources:  # DuckDB's executemany refuses an empty list: a firm whose every entry failed
            conn.executemany(
                "INSERT INTO meta.merchants VALUES (?, ?, ?, ?, ?)",
                [(s.merchant.id, s.merchant.name, str(s.merchant.published_path.absolute()), s.reason is None, s.reason)
                 for s in sources],
            )  # fmt: skip
        conn.execute("INSERT INTO meta.build VALUES (?, ?, ?)", [wanted, dt.datetime.now(dt.UTC), len(views)])
        conn.execute("CHECKPOINT")
    return len(views)


def _init_script(wanted: str, attach: list[str], database: Path) -> str:
    lines = [
        _FINGERPRINT_LINE + wanted,
        "-- Attaches every merchant's published copy and the catalog, read only (DuckDB keeps no",
        "-- attachment between sessions): duckdb -init catalog.sql, or point3_pipeline.catalog.connect().",
        *attach,
        f"ATTACH {_literal(str(database.absolute()))} AS {CATALOG_ALIAS} (READ_ONLY);",
        f"USE {CATALOG_ALIAS};",
    ]
    return "\n".join(lines) + "\n"


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def connect(folder: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory session with the catalog of `folder` set up, as an analyst's would be."""
    script = (Path(folder) / INIT_NAME).read_text(encoding="utf-8")
    conn = duckdb.connect()
    try:
        conn.execute(script)
    except BaseException:
        conn.close()
        raise
    return conn

"""Report versions: a period's workbook is rewritten only when what it shows changed.

Versions are keyed by (kind, period label): 'tax' is the month's tax workbook, 'vat' the
quarter's, half-year's or year's VAT workbook, 'reconciliation' the month's settlement
reconciliation. The fingerprint hashes everything a workbook shows except the time it was
generated and the sync times themselves (a re-sync that found nothing new is not a new report).

A tax or VAT workbook shows its period's filing movements (data.prepare_filing): sales in it
and the cancellations that belong to it. A cancellation seen later belongs to a later period,
so once a period's days are all synced its fingerprint moves only when records appear for it
late (a gap filled, a first-seen-cancelled record) or a person's or the businesses file's word
changes a class; each version keeps its movements (report_filing_snapshots) so the next one
lists exactly what changed and why. The reconciliation keeps its payments instead.

A period is final when every day has a complete sync and (tax and VAT) no payment in it is
unclassified: a person's classification clears it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from point3_pipeline.models import KST
from point3_pipeline.periods import KINDS, MONTH, Period
from point3_pipeline.reports import data
from point3_pipeline.reports.data import Coverage, report_sql
from point3_pipeline.reports.workbook import sheet_files_in
from point3_pipeline.warehouse import Warehouse, is_disk_full, no_space_left, remove_litter

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp-"  # a workbook being written: .<name>.tmp-PID next to where it will be
SHEET_FILES = ".sheet-files-"  # openpyxl's temp files of a render, reports/.sheet-files-PID/
FILING_KINDS = ("tax", "vat")  # the workbooks of the filing view
UNCLASSIFIED_COUNT = "unclassified_count"  # the totals key that keeps a filing period from being final


def filing_kind(period: Period) -> str:
    """The tax workbook's kind for a period: 'tax' for a month, 'vat' for a VAT period."""
    return "tax" if period.kind == MONTH else "vat"


@dataclass(frozen=True)
class ReportResult:
    kind: str
    period: str  # the period's label: 2026-11, 2026-Q3, 2026-H2, 2026
    version: int
    path: Path
    created: bool
    as_of: dt.datetime | None
    days_synced: int
    days_in_period: int
    is_final: bool
    totals: dict[str, int] = field(default_factory=dict)
    changes: int = 0


@dataclass(frozen=True)
class PreviousVersion:
    version: int
    fingerprint: str
    file_name: str
    created_at: dt.datetime
    as_of: dt.datetime | None
    days_synced: int
    days_in_period: int
    is_final: bool
    changes: int
    totals: dict[str, int]


@dataclass
class ReportContext:
    """What a workbook writer needs: one open connection (one consistent view) and the period's
    facts. For the tax and VAT kinds the connection holds the period's filing temp tables."""

    conn: duckdb.DuckDBPyConnection
    kind: str
    period: Period
    version: int
    generated_at: dt.datetime
    coverage: Coverage
    totals: dict[str, int]
    previous: PreviousVersion | None
    changes: int
    is_final: bool = False


def file_name(kind: str, period: Period, version: int) -> str:
    return f"{period.label}/point3-{kind}-{period.label}-v{version}.xlsx"


def _bounds(period: Period) -> dict:
    return {"first": period.first, "last": period.last}


def _one(conn: duckdb.DuckDBPyConnection, name: str, params: dict):
    return conn.execute(report_sql(name), params).fetchone()[0]


def fingerprint(conn: duckdb.DuckDBPyConnection, kind: str, period: Period, coverage: Coverage) -> str:
    parts = [kind, ",".join(d.isoformat() for d in sorted(coverage.synced))]
    if kind in FILING_KINDS:
        data.prepare_filing(conn, period)
        parts.append(_one(conn, "filing_fingerprint", {}))
        parts.append(_one(conn, "checks_fingerprint", _bounds(period)))
    else:
        parts.append(_one(conn, "payment_fingerprint", _bounds(period)))
        parts.append(_one(conn, "cancellation_fingerprint", _bounds(period)))
        parts.append(_one(conn, "observations_fingerprint", {"start": period.start, "end": period.end}))
    return conn.execute("SELECT md5(?)", ["\n".join(parts)]).fetchone()[0]


def latest_version(conn: duckdb.DuckDBPyConnection, kind: str, period: Period) -> PreviousVersion | None:
    row = conn.execute(report_sql("version_latest"), {"kind": kind, "period": period.label}).fetchone()
    if row is None:
        return None
    return PreviousVersion(*row[:9], totals=json.loads(row[9]))


def has_filing_snapshot(previous: PreviousVersion) -> bool:
    """Versions written before the filing view (migration 006) kept payments, not movements."""
    return "taxable_supply" in previous.totals


def _changes_params(ctx_kind: str, period: Period, previous: PreviousVersion) -> dict:
    return {"kind": ctx_kind, "period": period.label, "version": previous.version}


def changed_movements_sql(ctx: ReportContext) -> tuple[str, dict]:
    """The query listing the filing movements changed since the previous version, with why."""
    assert ctx.previous is not None
    return report_sql("filing_changes"), _changes_params(ctx.kind, ctx.period, ctx.previous)


def changed_payments_sql(ctx: ReportContext) -> tuple[str, dict]:
    """The query listing the payments changed since the previous version (reconciliation)."""
    assert ctx.previous is not None
    return report_sql("payment_changes"), _changes_params(ctx.kind, ctx.period, ctx.previous) | _bounds(ctx.period)


def _count_changes(conn, kind: str, period: Period, previous: PreviousVersion | None) -> int:
    if previous is None:
        return 0
    if kind in FILING_KINDS:
        if not has_filing_snapshot(previous):
            return 0
        sql, params = report_sql("filing_changes"), _changes_params(kind, period, previous)
    else:
        sql, params = report_sql("payment_changes"), _changes_params(kind, period, previous) | _bounds(period)
    return sum(1 for _ in data.stream(conn, sql, params))


def render(
    kind: str,
    warehouse: Warehouse,
    period_text: str,
    reports_dir: Path,
    now: dt.datetime | None,
    totals_of: Callable[[duckdb.DuckDBPyConnection, Period, Coverage], dict[str, int]],
    write: Callable[[ReportContext, Path], None],
    fingerprint_parts: Callable[[duckdb.DuckDBPyConnection, Period], list[str]] | None = None,
) -> ReportResult:
    """Write the next version of a period's workbook if what it shows changed since the latest one.
    `fingerprint_parts`: what else the workbook shows (beyond the period's own rows), as its kind knows it."""
    period = Period.parse(period_text)
    now = (now or dt.datetime.now(KST)).astimezone(KST)
    reports_dir = Path(reports_dir)
    # One connection and one transaction: the fingerprint, the figures and the rows all see
    # the same warehouse state, and the version is recorded only if the file was written.
    with warehouse.connect() as conn:
        conn.execute(report_sql("limit_memory"))
        conn.execute("BEGIN TRANSACTION")
        try:
            cover = data.coverage(conn, period, now.date())
            print_ = fingerprint(conn, kind, period, cover)
            if fingerprint_parts is not None:
                print_ = conn.execute("SELECT md5(?)", ["\n".join([print_, *fingerprint_parts(conn, period)])]).fetchone()[0]
            previous = latest_version(conn, kind, period)
            # Unchanged data and its workbook still there: nothing to write. (A workbook gone
            # from this folder, or a folder changed, gets a fresh version.)
            if previous is not None and previous.fingerprint == print_ and (reports_dir / previous.file_name).exists():
                conn.execute("ROLLBACK")
                return ReportResult(
                    kind, period.label, previous.version, reports_dir / previous.file_name, False,
                    previous.as_of, previous.days_synced, previous.days_in_period, previous.is_final,
                    previous.totals, previous.changes,
                )  # fmt: skip
            ctx = _new_version(conn, kind, period, now, cover, previous, totals_of)
            path = reports_dir / file_name(kind, period, ctx.version)
            _keep_orphan(path, now)
            _write_version(conn, ctx, write, reports_dir, file_name(kind, period, ctx.version), print_)
            try:
                conn.execute("COMMIT")
            except Exception:
                path.unlink(missing_ok=True)
                raise
        except Exception:
            with contextlib.suppress(duckdb.Error):  # nothing to roll back once COMMIT ran
                conn.execute("ROLLBACK")
            raise
    return ReportResult(
        kind, period.label, ctx.version, path, True, cover.as_of, cover.days_synced, cover.days_in_period,
        ctx.is_final, ctx.totals, ctx.changes,
    )  # fmt: skip


def _new_version(conn, kind: str, period: Period, now: dt.datetime, cover: Coverage,
                 previous: PreviousVersion | None, totals_of) -> ReportContext:  # fmt: skip
    totals = totals_of(conn, period, cover)
    return ReportContext(
        conn, kind, period, previous.version + 1 if previous else 1, now, cover, totals, previous,
        _count_changes(conn, kind, period, previous),
        is_final=cover.is_final and totals.get(UNCLASSIFIED_COUNT, 0) == 0,
    )  # fmt: skip


def _keep_orphan(path: Path, now: dt.datetime) -> None:
    """A render that died between writing the file and committing its record leaves it behind
    (or the folder belongs to another warehouse): keep it, renamed, so nothing is lost and the
    period does not stay stuck."""
    if path.exists():
        orphan = path.with_name(f"{path.stem}.orphaned-{now:%Y%m%dT%H%M%S}{path.suffix}")
        os.replace(path, orphan)
        log.warning("%s had no record in the warehouse; kept as %s", path, orphan.name)


def _write_version(
    conn: duckdb.DuckDBPyConnection, ctx: ReportContext, write: Callable[[ReportContext, Path], None],
    reports_dir: Path, name: str, version_fingerprint: str,
) -> None:
    """Write the workbook and record its version in the caller's transaction. The file
    appears under its name (renamed from a temp file) only once both are done."""
    cover = ctx.coverage
    path = reports_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMP_SUFFIX}{os.getpid()}")
    try:
        _write_workbook(ctx, write, reports_dir, tmp)
        conn.execute(report_sql("version_insert"), {
            "kind": ctx.kind, "period": ctx.period.label, "first": ctx.period.first, "last": ctx.period.last,
            "version": ctx.version, "fingerprint": version_fingerprint, "file_name": name,
            "created_at": ctx.generated_at, "as_of": cover.as_of, "newest_sync_at": cover.newest_sync_at,
            "days_synced": cover.days_synced, "days_in_period": cover.days_in_period, "is_final": ctx.is_final,
            "changes": ctx.changes,
            # the standard json: orjson refuses integers beyond 64 bits, which a HUGEINT sum can be
            "totals": json.dumps(ctx.totals),
        })  # fmt: skip
        keys = {"kind": ctx.kind, "period": ctx.period.label, "version": ctx.version}
        if ctx.kind in FILING_KINDS:
            conn.execute(report_sql("filing_snapshot_insert"), keys)
        else:
            conn.execute(report_sql("payment_snapshot_insert"), keys | _bounds(ctx.period))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_workbook(ctx: ReportContext, write: Callable[[ReportContext, Path], None], reports_dir: Path, tmp: Path) -> None:
    # A killed render leaves its temp workbook and openpyxl's sheet files behind: clear them
    # first, so they neither fill the disk nor look like reports.
    remove_litter(reports_dir, f"*/.point3-*.xlsx{TEMP_SUFFIX}*")
    remove_litter(reports_dir, f"{SHEET_FILES}*")
    sheet_files = reports_dir / f"{SHEET_FILES}{os.getpid()}"
    try:
        with sheet_files_in(sheet_files):
            write(ctx, tmp)
    except OSError as exc:
        if is_disk_full(exc):
            raise no_space_left(reports_dir, exc) from exc
        raise
    finally:
        shutil.rmtree(sheet_files, ignore_errors=True)


def period_of(first: dt.date, days: int) -> Period:
    """The period starting on `first` that is `days` long (the kinds' lengths never overlap)."""
    for kind in KINDS:
        period = Period.containing(kind, first)
        if period.first == first and len(period.days) == days:
            return period
    raise ValueError(f"no report period starts on {first} and lasts {days} days")


def all_versions(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Every recorded version, newest period first: (kind, period_first, version, file_name,
    created_at, as_of, newest_sync_at, days_synced, days_in_period, is_final, changes, totals);
    period_of(period_first, days_in_period) is its period."""
    rows = conn.execute(report_sql("versions_all")).fetchall()
    return [(*row[:11], json.loads(row[11])) for row in rows]

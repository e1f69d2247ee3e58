"""Report versions: a month's workbook is rewritten only when its data changed.

The fingerprint hashes everything a workbook shows except the time it was generated and the
sync times themselves (a re-sync that found nothing new is not a new report). Each version
keeps a snapshot of the month's payments so the next one can list what changed.
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
from point3_pipeline.reports import data
from point3_pipeline.periods import Period
from point3_pipeline.reports.data import Coverage
from point3_pipeline.reports.workbook import sheet_files_in
from point3_pipeline.warehouse import Warehouse, is_disk_full, no_space_left, remove_litter

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp-"  # a workbook being written: .<name>.tmp-PID next to where it will be
SHEET_FILES = ".sheet-files-"  # openpyxl's temp files of a render, reports/.sheet-files-PID/


@dataclass(frozen=True)
class ReportResult:
    kind: str
    month: str
    version: int
    path: Path
    created: bool
    as_of: dt.datetime | None
    days_synced: int
    days_in_month: int
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
    days_in_month: int
    is_final: bool
    changes: int
    totals: dict[str, int]


@dataclass
class ReportContext:
    """What a workbook writer needs: one open connection (one consistent view) and the month's facts."""

    conn: duckdb.DuckDBPyConnection
    kind: str
    period: Period
    version: int
    generated_at: dt.datetime
    coverage: Coverage
    totals: dict[str, int]
    previous: PreviousVersion | None
    changes: int


def file_name(kind: str, month: Period, version: int) -> str:
    return f"{month.label}/point3-{kind}-{month.label}-v{version}.xlsx"


# What the month's payment rows look like, in a stable order; the same text feeds the
# fingerprint of both kinds.
_PAYMENTS_FINGERPRINT = """
    SELECT coalesce(md5(string_agg(
        concat_ws('|', signature, payment_date, accepted_at, total_charge, tax_free_amount, vat,
                  culture_expense_type, payment_method_type, is_canceled, canceled_detected_at,
                  order_id_from_client, purchasing_product_name, client_nickname, client_identification),
        chr(10) ORDER BY signature)), '')
    FROM payments WHERE payment_date BETWEEN ? AND ?
"""
_CANCELLATIONS_FINGERPRINT = """
    SELECT coalesce(md5(string_agg(
        concat_ws('|', signature, payment_date, detected_at, canceled_after, is_canceled_now, is_anomaly,
                  total_charge, tax_free_amount, vat),
        chr(10) ORDER BY signature)), '')
    FROM cancellations
    WHERE payment_date BETWEEN ? AND ? OR detected_date BETWEEN ? AND ?
"""
_REJECTED_FINGERPRINT = """
    SELECT coalesce(md5(string_agg(concat_ws('|', record_hash, reason, copies), chr(10) ORDER BY record_hash)), '')
    FROM rejected_records WHERE window_date BETWEEN ? AND ?
"""
_ORDER_ID_FINGERPRINT = """
    -- repeated orderIds are checked against all payments, so earlier months matter too
    SELECT coalesce(md5(string_agg(concat_ws('|', order_id_from_client, n), chr(10) ORDER BY order_id_from_client)), '')
    FROM (SELECT order_id_from_client, count(*) AS n FROM payments
          WHERE order_id_from_client IN (SELECT order_id_from_client FROM payments WHERE payment_date BETWEEN ? AND ?)
          GROUP BY ALL)
"""
_OBSERVATIONS_FINGERPRINT = """
    SELECT coalesce(md5(string_agg(concat_ws('|', observed_at, balance), chr(10) ORDER BY observed_at)), '')
    FROM settlement_observations
    WHERE observed_at < ? AND observed_at >= coalesce(
        (SELECT max(observed_at) FROM settlement_observations WHERE observed_at < ?), ?)
"""


def fingerprint(conn: duckdb.DuckDBPyConnection, kind: str, month: Period, coverage: Coverage) -> str:
    days = [month.first, month.last]
    parts = [
        kind,
        ",".join(d.isoformat() for d in sorted(coverage.synced)),
        conn.execute(_PAYMENTS_FINGERPRINT, days).fetchone()[0],
        conn.execute(_CANCELLATIONS_FINGERPRINT, days + days).fetchone()[0],
    ]
    if kind == "tax":
        parts.append(conn.execute(_REJECTED_FINGERPRINT, days).fetchone()[0])
        parts.append(conn.execute(_ORDER_ID_FINGERPRINT, days).fetchone()[0])
    else:
        parts.append(conn.execute(_OBSERVATIONS_FINGERPRINT, [month.end, month.start, month.start]).fetchone()[0])
    return conn.execute("SELECT md5(?)", ["\n".join(parts)]).fetchone()[0]


def latest_version(conn: duckdb.DuckDBPyConnection, kind: str, month: Period) -> PreviousVersion | None:
    row = conn.execute(
        """
        SELECT version, fingerprint, file_name, created_at, as_of, days_synced, days_in_month,
               is_final, changes, CAST(totals AS VARCHAR)
        FROM report_versions WHERE kind = ? AND month = ? ORDER BY version DESC LIMIT 1
        """,
        [kind, month.first],
    ).fetchone()
    if row is None:
        return None
    return PreviousVersion(*row[:9], totals=json.loads(row[9]))


_CHANGED = """
    WITH cur AS (
        SELECT signature, payment_date, total_charge, tax_free_amount, vat, culture_expense_type, is_canceled,
               order_id_from_client, purchasing_product_name
        FROM payments WHERE payment_date BETWEEN ? AND ?
    ),
    prev AS (
        SELECT * FROM report_payment_snapshots WHERE kind = ? AND month = ? AND version = ?
    ),
    joined AS (
        SELECT
            CASE
                WHEN prev.signature IS NULL THEN '신규 new'
                WHEN cur.signature IS NULL THEN '이 달에서 빠짐 removed'
                WHEN cur.is_canceled AND NOT prev.is_canceled THEN '취소 canceled'
                WHEN prev.is_canceled AND NOT cur.is_canceled THEN '취소 철회 uncanceled'
                WHEN (cur.total_charge, cur.tax_free_amount, cur.vat)
                     IS DISTINCT FROM (prev.total_charge, prev.tax_free_amount, prev.vat) THEN '금액 변경 amount changed'
                ELSE '문화비 유형 변경 culture type changed'
            END AS change,
            coalesce(cur.signature, prev.signature) AS signature,
            coalesce(cur.payment_date, prev.payment_date) AS payment_date,
            cur.order_id_from_client, cur.purchasing_product_name,
            prev.total_charge AS before_total, cur.total_charge AS after_total,
            prev.tax_free_amount AS before_supply, cur.tax_free_amount AS after_supply,
            prev.vat AS before_vat, cur.vat AS after_vat,
            CASE WHEN prev.signature IS NULL THEN NULL WHEN prev.is_canceled THEN '취소' ELSE '정상' END AS before_status,
            CASE WHEN cur.signature IS NULL THEN NULL WHEN cur.is_canceled THEN '취소' ELSE '정상' END AS after_status,
            prev.culture_expense_type AS before_type, cur.culture_expense_type AS after_type
        FROM cur FULL OUTER JOIN prev ON cur.signature = prev.signature
        WHERE prev.signature IS NULL OR cur.signature IS NULL
           OR cur.is_canceled IS DISTINCT FROM prev.is_canceled
           OR (cur.total_charge, cur.tax_free_amount, cur.vat)
              IS DISTINCT FROM (prev.total_charge, prev.tax_free_amount, prev.vat)
           OR cur.culture_expense_type IS DISTINCT FROM prev.culture_expense_type
    )
    SELECT * FROM joined
"""


def changed_payments_sql(ctx: ReportContext) -> tuple[str, list]:
    """The query listing payments changed since the previous version (ordered for the sheet)."""
    assert ctx.previous is not None
    params = [ctx.period.first, ctx.period.last, ctx.kind, ctx.period.first, ctx.previous.version]
    return _CHANGED + " ORDER BY change, payment_date, signature", params


def _count_changes(conn, kind: str, month: Period, previous: PreviousVersion | None) -> int:
    if previous is None:
        return 0
    params = [month.first, month.last, kind, month.first, previous.version]
    return conn.execute(f"SELECT count(*) FROM ({_CHANGED})", params).fetchone()[0]


def render(
    kind: str,
    warehouse: Warehouse,
    month_text: str,
    reports_dir: Path,
    now: dt.datetime | None,
    totals_of: Callable[[duckdb.DuckDBPyConnection, Period, Coverage], dict[str, int]],
    write: Callable[[ReportContext, Path], None],
    fingerprint_parts: Callable[[duckdb.DuckDBPyConnection, Period], list[str]] | None = None,
) -> ReportResult:
    """Write the next version of a month's workbook if its data changed since the latest one.
    `fingerprint_parts`: what else the workbook shows (beyond the month's own rows), as its kind knows it."""
    month = Period.parse(month_text)
    now = (now or dt.datetime.now(KST)).astimezone(KST)
    reports_dir = Path(reports_dir)
    # One connection and one transaction: the fingerprint, the figures and the rows all see
    # the same warehouse state, and the version is recorded only if the file was written.
    with warehouse.connect() as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            cover = data.coverage(conn, month, now.date())
            print_ = fingerprint(conn, kind, month, cover)
            if fingerprint_parts is not None:
                print_ = conn.execute("SELECT md5(?)", ["\n".join([print_, *fingerprint_parts(conn, month)])]).fetchone()[0]
            previous = latest_version(conn, kind, month)
            # Unchanged data and its workbook still there: nothing to write. (A workbook gone
            # from this folder, or a folder changed, gets a fresh version.)
            if (
                previous is not None
                and previous.fingerprint == print_
                and (reports_dir / previous.file_name).exists()
            ):
                conn.execute("ROLLBACK")
                return ReportResult(
                    kind, month.label, previous.version, reports_dir / previous.file_name, False,
                    previous.as_of, previous.days_synced, previous.days_in_month, previous.is_final,
                    previous.totals, previous.changes,
                )  # fmt: skip
            version = previous.version + 1 if previous else 1
            name = file_name(kind, month, version)
            path = reports_dir / name
            if path.exists():
                # A render that died between writing the file and committing its record leaves
                # it behind (or the folder belongs to another warehouse): keep it, renamed, so
                # nothing is lost and the month does not stay stuck.
                orphan = path.with_name(f"{path.stem}.orphaned-{now:%Y%m%dT%H%M%S}{path.suffix}")
                os.replace(path, orphan)
                log.warning("%s had no record in the warehouse; kept as %s", path, orphan.name)
            totals = totals_of(conn, month, cover)
            ctx = ReportContext(
                conn, kind, month, version, now, cover, totals, previous,
                _count_changes(conn, kind, month, previous),
            )  # fmt: skip
            _write_version(conn, ctx, write, reports_dir, name, print_)
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
        kind, month.label, version, path, True, cover.as_of, cover.days_synced, cover.days_in_month,
        cover.is_final, totals, ctx.changes,
    )  # fmt: skip


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
        conn.execute(
            "INSERT INTO report_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ctx.kind, ctx.period.first, ctx.version, version_fingerprint, name, ctx.generated_at, cover.as_of,
                cover.newest_sync_at, cover.days_synced, cover.days_in_month, cover.is_final, ctx.changes,
                # the standard json: orjson refuses integers beyond 64 bits, which a HUGEINT sum can be
                json.dumps(ctx.totals),
            ],
        )  # fmt: skip
        conn.execute(
            """
            INSERT INTO report_payment_snapshots
            SELECT ?, ?, ?, signature, payment_date, total_charge, tax_free_amount, vat,
                   culture_expense_type, is_canceled
            FROM payments WHERE payment_date BETWEEN ? AND ?
            """,
            [ctx.kind, ctx.period.first, ctx.version, ctx.period.first, ctx.period.last],
        )
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


def all_versions(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Every recorded version, newest month first: (kind, month, version, file_name, created_at,
    as_of, newest_sync_at, days_synced, days_in_month, is_final, changes, totals)."""
    rows = conn.execute(
        """
        SELECT kind, month, version, file_name, created_at, as_of, newest_sync_at, days_synced,
               days_in_month, is_final, changes, CAST(totals AS VARCHAR)
        FROM report_versions ORDER BY month DESC, kind DESC, version DESC
        """
    ).fetchall()
    return [(*row[:11], json.loads(row[11])) for row in rows]

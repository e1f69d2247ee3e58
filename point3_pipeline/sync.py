"""Incremental sync of point3's date endpoint into the warehouse, one KST day window at a time.

Correctness does not depend on what the date endpoint leaves undocumented:
- windows overlap at midnight (startDate = day 00:00:00, endDate = next day 00:00:00) and
  rows are keyed by signature, so inclusive or exclusive ends both give one row per payment;
- a walk whose pages shifted (a signature seen twice: payments arrived while paging, in either
  sort order) is walked again until a walk brings nothing new, up to `max_walks`;
- each window is written in one transaction, so a crash leaves that window as it was and a
  re-run converges to the same rows;
- the window containing "now" (plus a settle margin for the 30-second confirm and the
  5-minute cancellation batch) is never marked complete, so the next run reads it again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import duckdb
import orjson
import pyarrow as pa

from point3_pipeline.client import Point3Client, RejectedRecord
from point3_pipeline.models import KST, Order, kst_day_start
from point3_pipeline.warehouse import Warehouse

log = logging.getLogger(__name__)

DATE_ENDPOINT = "/api/payments/date"
SETTLE_MARGIN = dt.timedelta(minutes=30)
DEFAULT_LOOKBACK_DAYS = 2
DEFAULT_SWEEP_DAYS = 35

Clock = Callable[[], dt.datetime]


def kst_now() -> dt.datetime:
    return dt.datetime.now(KST)


@dataclass(frozen=True)
class WindowResult:
    window_date: dt.date
    walks: int
    pages: int
    records_read: int
    distinct_payments: int
    payments_new: int
    payments_changed: int
    newly_canceled: int
    rejected: int
    retries: int
    is_complete: bool
    incomplete_reason: str | None
    seconds: float


@dataclass
class SyncResult:
    run_id: int
    mode: str
    first_day: dt.date
    last_day: dt.date
    windows: list[WindowResult] = field(default_factory=list)
    status: str = "running"
    seconds: float = 0.0

    def total(self, name: str) -> int:
        return sum(getattr(w, name) for w in self.windows)

    @property
    def incomplete_days(self) -> list[dt.date]:
        return [w.window_date for w in self.windows if not w.is_complete]

    def summary(self) -> dict[str, int]:
        names = ("pages", "records_read", "payments_new", "payments_changed", "newly_canceled", "rejected", "retries")
        return {"windows": len(self.windows), **{n: self.total(n) for n in names}}


@dataclass(frozen=True)
class SettlementObservation:
    observed_at: dt.datetime
    balance: int
    change_since_previous: int | None


ProgressCallback = Callable[[int, int, WindowResult], None]


def days_between(first_day: dt.date, last_day: dt.date) -> list[dt.date]:
    return [first_day + dt.timedelta(days=i) for i in range((last_day - first_day).days + 1)]


def plan_incremental(
    warehouse: Warehouse, start_date: dt.date, today: dt.date, lookback_days: int = DEFAULT_LOOKBACK_DAYS
) -> tuple[dt.date, dt.date]:
    """First and last day for an incremental run: from the earliest day not yet complete, or
    the last complete day minus the lookback, whichever is earlier, through today."""
    with warehouse.connect() as conn:
        complete = {
            row[0]
            for row in conn.execute(
                "SELECT window_date FROM sync_coverage WHERE is_complete AND window_date BETWEEN ? AND ?",
                [start_date, today],
            ).fetchall()
        }
    if not complete:
        return start_date, today
    first_gap = next((d for d in days_between(start_date, today) if d not in complete), today)
    first = min(first_gap, max(complete) - dt.timedelta(days=lookback_days))
    return max(first, start_date), today


def sync_incremental(
    client: Point3Client,
    warehouse: Warehouse,
    *,
    start_date: dt.date,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    clock: Clock = kst_now,
    progress: ProgressCallback | None = None,
) -> SyncResult:
    """`point3 sync`: from the last complete window minus a lookback (or the first gap) through now."""
    first, last = plan_incremental(warehouse, start_date, clock().date(), lookback_days)
    return sync_range(client, warehouse, first, last, mode="incremental", clock=clock, progress=progress)


def sweep(
    client: Point3Client,
    warehouse: Warehouse,
    *,
    days: int = DEFAULT_SWEEP_DAYS,
    clock: Clock = kst_now,
    progress: ProgressCallback | None = None,
) -> SyncResult:
    """`point3 sweep`: re-read the last `days` days to catch late cancellations of older payments."""
    today = clock().date()
    return sync_range(
        client, warehouse, today - dt.timedelta(days=days - 1), today, mode="sweep", clock=clock, progress=progress
    )


def sync_range(
    client: Point3Client,
    warehouse: Warehouse,
    first_day: dt.date,
    last_day: dt.date,
    *,
    mode: str = "range",
    clock: Clock = kst_now,
    progress: ProgressCallback | None = None,
    max_walks: int = 3,
) -> SyncResult:
    """Sync every KST day window from first_day to last_day (inclusive), each in one transaction."""
    if last_day < first_day:
        raise ValueError(f"last day {last_day} is before first day {first_day}")
    today = clock().date()
    days = [d for d in days_between(first_day, last_day) if d <= today]
    started = time.perf_counter()
    run_id = _start_run(warehouse, mode, first_day, last_day, len(days), clock())
    result = SyncResult(run_id=run_id, mode=mode, first_day=first_day, last_day=last_day)
    try:
        for done, day in enumerate(days, start=1):
            window = _sync_window(client, warehouse, run_id, day, clock, max_walks)
            result.windows.append(window)
            if progress is not None:
                progress(done, len(days), window)
    except BaseException as exc:
        result.status = "failed"
        _finish_run(warehouse, run_id, "failed", clock(), f"{type(exc).__name__}: {exc}")
        raise
    result.status = "succeeded"
    result.seconds = time.perf_counter() - started
    _finish_run(warehouse, run_id, "succeeded", clock(), None)
    return result


def observe_settlement(client: Point3Client, warehouse: Warehouse, *, clock: Clock = kst_now) -> SettlementObservation:
    """Take one observation of the settlement balance (point3 keeps no history of it)."""
    balance = client.settlement_balance()
    observed_at = clock()
    with warehouse.connect() as conn:
        previous = conn.execute(
            "SELECT balance FROM settlement_observations WHERE observed_at < ? ORDER BY observed_at DESC LIMIT 1",
            [observed_at],
        ).fetchone()
        conn.execute(
            "INSERT INTO settlement_observations VALUES (?, ?) ON CONFLICT (observed_at) DO UPDATE SET balance = excluded.balance",
            [observed_at, balance],
        )
    return SettlementObservation(observed_at, balance, None if previous is None else balance - previous[0])


def _start_run(warehouse: Warehouse, mode: str, first_day: dt.date, last_day: dt.date, planned: int, now: dt.datetime) -> int:
    with warehouse.connect() as conn:
        # One writer at a time is the deployment's rule, so a run still 'running' died mid-way.
        conn.execute(
            "UPDATE sync_runs SET status = 'interrupted', error = 'the process ended before the run finished' "
            "WHERE status = 'running'"
        )
        return conn.execute(
            "INSERT INTO sync_runs (run_id, mode, first_day, last_day, started_at, status, windows_planned) "
            "VALUES (nextval('sync_run_ids'), ?, ?, ?, ?, 'running', ?) RETURNING run_id",
            [mode, first_day, last_day, now, planned],
        ).fetchone()[0]


def _finish_run(warehouse: Warehouse, run_id: int, status: str, now: dt.datetime, error: str | None) -> None:
    with warehouse.connect() as conn:
        conn.execute(
            "UPDATE sync_runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
            [status, now, error, run_id],
        )


@dataclass
class _WindowRead:
    orders: dict[str, Order]
    rejected: dict[str, tuple[int, RejectedRecord]]
    walks: int
    pages: int
    records_read: int
    settled: bool


def _read_window(client: Point3Client, start: dt.datetime, end: dt.datetime, max_walks: int) -> _WindowRead:
    read = _WindowRead(orders={}, rejected={}, walks=0, pages=0, records_read=0, settled=False)
    while read.walks < max_walks:
        read.walks += 1
        seen_this_walk: set[str] = set()
        shifted = False
        new = 0
        for page in client.iter_payment_pages(start, end):
            read.pages += 1
            read.records_read += page.record_count
            for order in page.orders:
                if order.signature in seen_this_walk:
                    shifted = True
                seen_this_walk.add(order.signature)
                if order.signature not in read.orders:
                    new += 1
                read.orders[order.signature] = order
            for rejected in page.rejected:
                read.rejected[hashlib.md5(rejected.raw_text.encode()).hexdigest()] = (page.page, rejected)
        # A clean first walk stands; after pages shifted, walk again until a walk adds nothing.
        if (read.walks == 1 and not shifted) or (read.walks > 1 and new == 0):
            read.settled = True
            break
    return read


def _sync_window(
    client: Point3Client, warehouse: Warehouse, run_id: int, day: dt.date, clock: Clock, max_walks: int
) -> WindowResult:
    started = time.perf_counter()
    start, end = kst_day_start(day), kst_day_start(day + dt.timedelta(days=1))
    retries_before = client.stats.retries
    observed_at = clock()
    read = _read_window(client, start, end, max_walks)
    finished_at = clock()
    if not read.settled:
        reason = f"pages kept shifting over {read.walks} walks"
    elif finished_at < end + SETTLE_MARGIN:
        reason = "window not yet closed (contains now or ended less than 30 minutes ago)"
    else:
        reason = None
    retries = client.stats.retries - retries_before
    with warehouse.connect() as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            counts = _write_payments(conn, run_id, day, read.orders.values(), observed_at)
            _write_rejected(conn, run_id, day, read.rejected.values(), observed_at)
            window = WindowResult(
                window_date=day,
                walks=read.walks,
                pages=read.pages,
                records_read=read.records_read,
                distinct_payments=len(read.orders),
                rejected=len(read.rejected),
                retries=retries,
                is_complete=reason is None,
                incomplete_reason=reason,
                seconds=time.perf_counter() - started,
                **counts,
            )
            _write_window_log(conn, run_id, window, start, end, observed_at, finished_at)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if retries:
        log.warning("window %s needed %d retries", day, retries)
    return window


_ARROW_SCHEMA = pa.schema([
    ("signature", pa.string()),
    ("payment_date", pa.date32()),
    ("accepted_at", pa.timestamp("us", tz="Asia/Seoul")),
    ("requested_at", pa.timestamp("us", tz="Asia/Seoul")),
    ("total_charge", pa.int64()),
    ("tax_free_amount", pa.int64()),
    ("vat", pa.int64()),
    ("culture_expense_type", pa.string()),
    ("payment_method_type", pa.string()),
    ("is_canceled", pa.bool_()),
    ("order_id_from_client", pa.string()),
    ("purchasing_product_name", pa.string()),
    ("user_id", pa.string()),
    ("client_generated_user_id", pa.string()),
    ("client_nickname", pa.string()),
    ("client_identification", pa.string()),
    ("raw_record", pa.string()),
])


def _orders_table(orders: Iterable[Order], window_date: dt.date) -> pa.Table:
    columns: dict[str, list] = {name: [] for name in _ARROW_SCHEMA.names}
    for order in orders:
        columns["signature"].append(order.signature)
        columns["payment_date"].append(order.accepted_at.date() if order.accepted_at else window_date)
        columns["accepted_at"].append(order.accepted_at)
        columns["requested_at"].append(order.requested_at)
        columns["total_charge"].append(order.total_charge)
        columns["tax_free_amount"].append(order.tax_free_amount)
        columns["vat"].append(order.vat)
        columns["culture_expense_type"].append(order.culture_expense_type)
        columns["payment_method_type"].append(order.payment_method_type)
        columns["is_canceled"].append(order.is_canceled)
        columns["order_id_from_client"].append(order.order_id_from_client)
        columns["purchasing_product_name"].append(order.purchasing_product_name)
        columns["user_id"].append(order.user_id)
        columns["client_generated_user_id"].append(order.client_generated_user_id)
        columns["client_nickname"].append(order.client_nickname)
        columns["client_identification"].append(order.client_identification)
        columns["raw_record"].append(orjson.dumps(order.raw, option=orjson.OPT_SORT_KEYS).decode())
    return pa.table(columns, schema=_ARROW_SCHEMA)


def _write_payments(
    conn: duckdb.DuckDBPyConnection, run_id: int, day: dt.date, orders: Iterable[Order], observed_at: dt.datetime
) -> dict[str, int]:
    incoming = _orders_table(orders, day)
    if incoming.num_rows == 0:
        return {"payments_new": 0, "payments_changed": 0, "newly_canceled": 0}
    conn.register("incoming", incoming)
    try:
        conn.execute(
            """
            CREATE OR REPLACE TEMP TABLE window_changes AS
            SELECT
                i.signature,
                i.is_canceled,
                md5(i.raw_record) AS record_hash,
                p.signature IS NULL AS is_new,
                p.is_canceled AS was_canceled,
                p.record_hash AS previous_hash,
                p.last_seen_at AS previous_seen_at,
                p.last_seen_active_at AS previous_active_at,
                p.raw_record AS previous_record
            FROM incoming AS i
            LEFT JOIN payments AS p ON p.signature = i.signature
            """
        )
        new, changed, canceled = conn.execute(
            """
            SELECT
                count(*) FILTER (WHERE is_new),
                count(*) FILTER (WHERE NOT is_new AND record_hash <> previous_hash),
                count(*) FILTER (WHERE is_canceled AND (is_new OR NOT was_canceled))
            FROM window_changes
            """
        ).fetchone()
        conn.execute(
            """
            INSERT INTO payment_events
            SELECT
                signature,
                $run_id,
                $observed_at,
                CASE
                    WHEN is_new THEN 'first_seen'
                    WHEN is_canceled AND NOT was_canceled THEN 'canceled'
                    WHEN was_canceled AND NOT is_canceled THEN 'uncanceled'
                    ELSE 'changed'
                END,
                is_canceled,
                previous_seen_at,
                previous_active_at,
                previous_record
            FROM window_changes
            WHERE is_new OR record_hash <> previous_hash
            """,
            {"run_id": run_id, "observed_at": observed_at},
        )
        # A record without an accept time belongs to the window that returned it; when two
        # windows return it (a payment at exactly midnight), the later day is the right one.
        conn.execute(
            """
            INSERT INTO payments BY NAME
            SELECT
                i.* EXCLUDE (raw_record),
                CAST(i.raw_record AS JSON) AS raw_record,
                md5(i.raw_record) AS record_hash,
                $observed_at AS first_seen_at,
                $observed_at AS last_seen_at,
                CASE WHEN NOT i.is_canceled THEN $observed_at END AS last_seen_active_at,
                CASE WHEN i.is_canceled THEN $observed_at END AS canceled_detected_at,
                $run_id AS first_seen_run_id,
                $run_id AS last_seen_run_id
            FROM incoming AS i
            ON CONFLICT (signature) DO UPDATE SET
                payment_date = CASE
                    WHEN excluded.accepted_at IS NULL THEN greatest(payments.payment_date, excluded.payment_date)
                    ELSE excluded.payment_date
                END,
                accepted_at = excluded.accepted_at,
                requested_at = excluded.requested_at,
                total_charge = excluded.total_charge,
                tax_free_amount = excluded.tax_free_amount,
                vat = excluded.vat,
                culture_expense_type = excluded.culture_expense_type,
                payment_method_type = excluded.payment_method_type,
                is_canceled = excluded.is_canceled,
                canceled_detected_at = CASE
                    WHEN excluded.is_canceled THEN coalesce(payments.canceled_detected_at, excluded.last_seen_at)
                END,
                order_id_from_client = excluded.order_id_from_client,
                purchasing_product_name = excluded.purchasing_product_name,
                user_id = excluded.user_id,
                client_generated_user_id = excluded.client_generated_user_id,
                client_nickname = excluded.client_nickname,
                client_identification = excluded.client_identification,
                last_seen_at = excluded.last_seen_at,
                last_seen_active_at = CASE
                    WHEN excluded.is_canceled THEN payments.last_seen_active_at
                    ELSE excluded.last_seen_at
                END,
                last_seen_run_id = excluded.last_seen_run_id,
                record_hash = excluded.record_hash,
                raw_record = excluded.raw_record
            """,
            {"run_id": run_id, "observed_at": observed_at},
        )
        conn.execute("DROP TABLE window_changes")
    finally:
        conn.unregister("incoming")
    return {"payments_new": new, "payments_changed": changed, "newly_canceled": canceled}


def _write_rejected(
    conn: duckdb.DuckDBPyConnection,
    run_id: int,
    day: dt.date,
    rejected: Iterable[tuple[int, RejectedRecord]],
    observed_at: dt.datetime,
) -> None:
    rows = [
        (hashlib.md5(r.raw_text.encode()).hexdigest(), r.signature, r.reason, r.raw_text, DATE_ENDPOINT, day, page,
         run_id, run_id, observed_at, observed_at, 1)
        for page, r in rejected
    ]
    if not rows:
        return
    table = pa.table(
        list(zip(*rows)),
        names=["record_hash", "signature", "reason", "raw_text", "endpoint", "window_date", "page", "first_run_id",
               "last_run_id", "first_rejected_at", "last_rejected_at", "times_seen"],
    )
    conn.register("incoming_rejected", table)
    try:
        conn.execute(
            """
            INSERT INTO rejected_records BY NAME SELECT * FROM incoming_rejected
            ON CONFLICT (record_hash) DO UPDATE SET
                reason = excluded.reason,
                window_date = excluded.window_date,
                page = excluded.page,
                last_run_id = excluded.last_run_id,
                last_rejected_at = excluded.last_rejected_at,
                times_seen = rejected_records.times_seen + 1
            """
        )
    finally:
        conn.unregister("incoming_rejected")


def _write_window_log(
    conn: duckdb.DuckDBPyConnection,
    run_id: int,
    window: WindowResult,
    start: dt.datetime,
    end: dt.datetime,
    started_at: dt.datetime,
    finished_at: dt.datetime,
) -> None:
    conn.execute(
        "INSERT INTO sync_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, window.window_date, start, end, started_at, finished_at, window.walks, window.pages,
         window.records_read, window.distinct_payments, window.payments_new, window.payments_changed,
         window.newly_canceled, window.rejected, window.retries, window.is_complete, window.incomplete_reason],
    )
    conn.execute(
        """
        UPDATE sync_runs SET
            windows_done = windows_done + 1,
            pages = pages + ?,
            records_read = records_read + ?,
            payments_new = payments_new + ?,
            payments_changed = payments_changed + ?,
            newly_canceled = newly_canceled + ?,
            rejected = rejected + ?,
            retries = retries + ?
        WHERE run_id = ?
        """,
        [window.pages, window.records_read, window.payments_new, window.payments_changed, window.newly_canceled,
         window.rejected, window.retries, run_id],
    )

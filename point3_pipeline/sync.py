"""Incremental sync of point3's date endpoint into the warehouse, one KST day window at a time.

Correctness does not depend on what the date endpoint leaves undocumented:
- windows overlap at midnight (startDate = day 00:00:00, endDate = next day 00:00:00) and
  rows are keyed by signature, so inclusive or exclusive ends both give one row per payment;
- a walk whose pages shifted (a signature seen twice: payments arrived while paging, in either
  sort order) is walked again until a walk brings nothing new, up to `max_walks`;
- a window's rows, events and log are written in one transaction (several whole windows
  share one when they come fast, to spare DuckDB per-statement costs), so a crash leaves
  every unfinished window as it was and a re-run converges to the same rows;
- the window containing "now" (plus a settle margin for the 30-second confirm and the
  5-minute cancellation batch) is never marked complete, so the next run reads it again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
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
# Windows read quickly are committed together; a slow API commits every window on its own.
BATCH_MAX_RECORDS = 20_000
BATCH_MAX_SECONDS = 2.0
# How far (in days) a stored payment's date may sit from the window that returns it: a
# payment filtered on its request time can be accepted the next day. Rows outside this
# neighbourhood are still found, by the exact fallback, just more slowly.
NEIGHBOURHOOD_DAYS = 2

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
    """Sync every KST day window from first_day to last_day (inclusive)."""
    if last_day < first_day:
        raise ValueError(f"last day {last_day} is before first day {first_day}")
    today = clock().date()
    days = [d for d in days_between(first_day, last_day) if d <= today]
    started = time.perf_counter()
    # One connection for the run: opening and closing a DuckDB file costs tens of ms, and
    # analysts read the published copy, so holding the file is fine. Batches are written on
    # one writer thread while the next windows are read (DuckDB releases the GIL), with at
    # most one batch in flight, so commits stay in window order.
    with warehouse.connect() as conn, ThreadPoolExecutor(max_workers=1, thread_name_prefix="point3-writer") as writer:
        # Checkpoint once when the run closes the file, not every 16 MB of WAL on the way
        # (measured: a third of a 200,000-payment backfill went to repeated checkpoints).
        # The WAL is as durable; a crash replays the committed windows from it.
        conn.execute("SET checkpoint_threshold = '1GB'")
        run_id = _start_run(conn, mode, first_day, last_day, len(days), clock())
        result = SyncResult(run_id=run_id, mode=mode, first_day=first_day, last_day=last_day)
        in_flight: Future[list[WindowResult]] | None = None

        def collect(future: Future[list[WindowResult]] | None) -> None:
            for window in future.result() if future is not None else ():
                result.windows.append(window)
                if progress is not None:
                    progress(len(result.windows), len(days), window)

        pending: list[_WindowRead] = []
        try:
            for number, day in enumerate(days, start=1):
                pending.append(_read_window(client, day, clock, max_walks))
                if in_flight is not None and in_flight.done():
                    collect(in_flight)
                    in_flight = None
                records = sum(len(r.orders) for r in pending)
                age = time.perf_counter() - pending[0].started
                if number == len(days) or records >= BATCH_MAX_RECORDS or age >= BATCH_MAX_SECONDS:
                    collect(in_flight)
                    in_flight, pending = writer.submit(_commit_windows, conn, run_id, pending), []
            collect(in_flight)
        except BaseException as exc:
            if in_flight is not None:
                wait([in_flight])  # the connection is the writer's until its batch ends
            result.status = "failed"
            _finish_run(conn, run_id, "failed", clock(), f"{type(exc).__name__}: {exc}")
            raise
        result.status = "succeeded"
        result.seconds = time.perf_counter() - started
        _finish_run(conn, run_id, "succeeded", clock(), None)
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


def _start_run(
    conn: duckdb.DuckDBPyConnection, mode: str, first_day: dt.date, last_day: dt.date, planned: int, now: dt.datetime
) -> int:
    # One writer at a time is the deployment's rule (and DuckDB's lock), so a run still
    # 'running' when another starts died mid-way.
    conn.execute(
        "UPDATE sync_runs SET status = 'interrupted', error = 'the process ended before the run finished' "
        "WHERE status = 'running'"
    )
    return conn.execute(
        "INSERT INTO sync_runs (run_id, mode, first_day, last_day, started_at, status, windows_planned) "
        "VALUES (nextval('sync_run_ids'), ?, ?, ?, ?, 'running', ?) RETURNING run_id",
        [mode, first_day, last_day, now, planned],
    ).fetchone()[0]


def _finish_run(conn: duckdb.DuckDBPyConnection, run_id: int, status: str, now: dt.datetime, error: str | None) -> None:
    conn.execute(
        "UPDATE sync_runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
        [status, now, error, run_id],
    )


@dataclass
class _WindowRead:
    day: dt.date
    start: dt.datetime
    end: dt.datetime
    started: float
    observed_at: dt.datetime
    orders: dict[str, Order] = field(default_factory=dict)
    # record hash -> (page, record, copies returned by the latest walk)
    rejected: dict[str, tuple[int, RejectedRecord, int]] = field(default_factory=dict)
    walks: int = 0
    pages: int = 0
    records_read: int = 0
    retries: int = 0
    finished_at: dt.datetime | None = None
    incomplete_reason: str | None = None


def _read_window(client: Point3Client, day: dt.date, clock: Clock, max_walks: int) -> _WindowRead:
    start, end = kst_day_start(day), kst_day_start(day + dt.timedelta(days=1))
    read = _WindowRead(day=day, start=start, end=end, started=time.perf_counter(), observed_at=clock())
    retries_before = client.stats.retries
    settled = False
    previous_rejected: Counter[str] = Counter()
    while read.walks < max_walks and not settled:
        read.walks += 1
        seen_this_walk: set[str] = set()
        rejected_this_walk: Counter[str] = Counter()
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
                record_hash = hashlib.md5(rejected.raw_text.encode()).hexdigest()
                rejected_this_walk[record_hash] += 1
                read.rejected[record_hash] = (page.page, rejected, rejected_this_walk[record_hash])
        # A clean first walk stands; after pages shifted, walk again until a walk adds nothing.
        # A bad record seen twice in one walk is two copies, or one record a shift pushed
        # across a page boundary: a walk without repeats, or one counting as the last did,
        # tells them apart.
        repeated = any(n > 1 for n in rejected_this_walk.values())
        if read.walks == 1:
            settled = not shifted and not repeated
        else:
            settled = new == 0 and (not repeated or rejected_this_walk == previous_rejected)
        previous_rejected = rejected_this_walk
    read.retries = client.stats.retries - retries_before
    read.finished_at = clock()
    if not settled:
        read.incomplete_reason = f"pages kept shifting over {read.walks} walks"
    elif read.finished_at < end + SETTLE_MARGIN:
        read.incomplete_reason = "window not yet closed (contains now or ended less than 30 minutes ago)"
    if read.retries:
        log.warning("window %s needed %d retries", day, read.retries)
    return read


def _commit_windows(conn: duckdb.DuckDBPyConnection, run_id: int, reads: list[_WindowRead]) -> list[WindowResult]:
    """Write whole windows in one transaction. The fast path looks stored payments up only
    near the windows' days; if that misses a stored one (the insert then hits the primary
    key), the transaction is redone with an exact lookup over the whole table."""
    # Copied into DuckDB once, outside the transaction (DuckDB refuses to unregister inside
    # an aborted one): scanning a Python-held Arrow table takes the GIL from the reading
    # thread, and the statements below read the batch several times.
    conn.register("incoming_arrow", _incoming_table(reads))
    try:
        conn.execute("CREATE OR REPLACE TEMP TABLE incoming AS SELECT * FROM incoming_arrow")
    finally:
        conn.unregister("incoming_arrow")
    try:
        return _write_batch(conn, run_id, reads)
    finally:
        conn.execute("DROP TABLE incoming")


def _write_batch(
    conn: duckdb.DuckDBPyConnection, run_id: int, reads: list[_WindowRead]
) -> list[WindowResult]:
    for restrict in (True, False):
        conn.execute("BEGIN TRANSACTION")
        try:
            counts = _write_payments(conn, run_id, reads, restrict=restrict)
            _write_rejected(conn, run_id, reads)
            windows = [_window_result(read, counts.get(read.day, (0, 0, 0))) for read in reads]
            _write_window_log(conn, run_id, reads, windows)
            conn.execute("COMMIT")
            return windows
        except duckdb.ConstraintException:
            conn.execute("ROLLBACK")
            if not restrict:
                raise
            log.warning("a payment stored far from its window's day; redoing %s..%s with an exact lookup",
                        reads[0].day, reads[-1].day)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    raise AssertionError("unreachable")


def _window_result(read: _WindowRead, counts: tuple[int, int, int]) -> WindowResult:
    new, changed, canceled = counts
    return WindowResult(
        window_date=read.day,
        walks=read.walks,
        pages=read.pages,
        records_read=read.records_read,
        distinct_payments=len(read.orders),
        payments_new=new,
        payments_changed=changed,
        newly_canceled=canceled,
        rejected=sum(copies for _, _, copies in read.rejected.values()),
        retries=read.retries,
        is_complete=read.incomplete_reason is None,
        incomplete_reason=read.incomplete_reason,
        seconds=time.perf_counter() - read.started,
    )


_ARROW_SCHEMA = pa.schema([
    ("signature", pa.string()),
    ("source_day", pa.date32()),
    ("observed_at", pa.timestamp("us", tz="Asia/Seoul")),
    ("active_seen_at", pa.timestamp("us", tz="Asia/Seoul")),
    ("is_canceled", pa.bool_()),
    ("lacks_accept_time", pa.bool_()),
    ("raw_record", pa.string()),
])


def _incoming_table(reads: list[_WindowRead]) -> pa.Table:
    """One row per signature over the batch: its keys and its record as validated JSON (DuckDB
    takes the fields out of it, far faster than building a Python column per field). A
    payment returned by two windows (exactly at midnight) is kept from the later one; without
    an accept time it belongs to that day."""
    owner: dict[str, _WindowRead] = {}
    for read in reads:
        for signature in read.orders:
            owner[signature] = read
    columns: list[list] = [[] for _ in _ARROW_SCHEMA.names]
    for read in reads:
        orders = [order for signature, order in read.orders.items() if owner[signature] is read]
        n = len(orders)
        # A page is fetched between the window read's start and end: a state change is dated
        # by the end (detection, an upper bound), being active by the start (a lower bound).
        values = (
            [o.signature for o in orders], [read.day] * n, [read.finished_at] * n, [read.observed_at] * n,
            [o.is_canceled for o in orders], [o.accepted_text is None for o in orders], [o.raw_json for o in orders],
        )
        for column, more in zip(columns, values):
            column.extend(more)
    return pa.table(columns, schema=_ARROW_SCHEMA)


# The record's fields as parse_order checked them, for DuckDB's from_json: every one either
# absent/null or of this type, so the extraction cannot fail or differ from the Order.
_RECORD_STRUCTURE = orjson.dumps({
    "totalCharge": "BIGINT", "taxFreeAmount": "BIGINT", "vat": "BIGINT", "isCanceled": "BOOLEAN",
    "userId": "VARCHAR", "clientNickname": "VARCHAR", "purchasingProductName": "VARCHAR",
    "orderIdFromClient": "VARCHAR", "clientIdentification": "VARCHAR", "clientGeneratedUserId": "VARCHAR",
    "paymentMethodType": "VARCHAR", "cultureExpenseType": "VARCHAR",
    "timeStampOnRequest": "VARCHAR", "timeStampOnAccept": "VARCHAR",
}).decode()

_PAYMENT_COLUMNS = (
    "payment_date", "accepted_at", "requested_at", "total_charge", "tax_free_amount", "vat", "culture_expense_type",
    "payment_method_type", "is_canceled", "order_id_from_client", "purchasing_product_name", "user_id",
    "client_generated_user_id", "client_nickname", "client_identification",
)


def _write_payments(
    conn: duckdb.DuckDBPyConnection, run_id: int, reads: list[_WindowRead], *, restrict: bool
) -> dict[dt.date, tuple[int, int, int]]:
    """From the `incoming` batch: classify, log events, insert new payments and
    update seen ones; counts per window day."""
    # The neighbourhood filter is fixed SQL text (no data in it); its bounds are parameters.
    # DuckDB prunes row groups by payment_date, so the cost follows the batch, not the history.
    near = "p.payment_date BETWEEN $low AND $high" if restrict else "true"
    params = {
        "low": reads[0].day - dt.timedelta(days=NEIGHBOURHOOD_DAYS),
        "high": reads[-1].day + dt.timedelta(days=NEIGHBOURHOOD_DAYS),
    } if restrict else {}
    # The columns, typed in DuckDB (vectorised) from the validated JSON; '' counts as absent
    # for the code and the timestamps, as in parse_order.
    # (A view takes no parameters: the structure is this module's constant, not data.)
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW typed_incoming AS
        WITH parsed AS (
            SELECT * EXCLUDE (is_canceled, lacks_accept_time), from_json(raw_record, '{_RECORD_STRUCTURE}') AS r
            FROM incoming
        ),
        timed AS (
            SELECT
                *,
                strptime(nullif(r.timeStampOnAccept, ''), '%Y%m%d%H%M%S') AS accepted_local,
                strptime(nullif(r.timeStampOnRequest, ''), '%Y%m%d%H%M%S') AS requested_local
            FROM parsed
        )
        SELECT
            signature, source_day, observed_at, active_seen_at, raw_record,
            coalesce(CAST(accepted_local AS DATE), source_day) AS payment_date,
            timezone('Asia/Seoul', accepted_local) AS accepted_at,
            timezone('Asia/Seoul', requested_local) AS requested_at,
            r.totalCharge AS total_charge,
            r.taxFreeAmount AS tax_free_amount,
            r.vat AS vat,
            nullif(r.cultureExpenseType, '') AS culture_expense_type,
            r.paymentMethodType AS payment_method_type,
            r.isCanceled AS is_canceled,
            r.orderIdFromClient AS order_id_from_client,
            r.purchasingProductName AS purchasing_product_name,
            r.userId AS user_id,
            r.clientGeneratedUserId AS client_generated_user_id,
            r.clientNickname AS client_nickname,
            r.clientIdentification AS client_identification
        FROM timed
        """
    )
    # What each incoming payment is to the warehouse: new, changed (and how) or seen again.
    # Narrow on purpose: the wide columns stay in `incoming` and are read once, by the insert.
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE batch_changes AS
        WITH incoming AS (
            SELECT signature, source_day, observed_at, active_seen_at, is_canceled, lacks_accept_time,
                   md5(raw_record) AS record_hash
            FROM incoming
        ),
        stored AS (
            SELECT signature, is_canceled, record_hash, last_seen_at, last_seen_active_at
            FROM payments AS p
            WHERE {near}
        ),
        final AS (
            SELECT
                i.*,
                s.signature IS NULL AS is_new,
                s.is_canceled AS was_canceled,
                s.record_hash AS previous_hash,
                s.last_seen_at AS previous_seen_at,
                s.last_seen_active_at AS previous_active_at
            FROM incoming AS i
            LEFT JOIN stored AS s USING (signature)
        )
        SELECT * FROM final
        """,
        params,
    )
    counts = {
        row[0]: tuple(row[1:])
        for row in conn.execute(
            """
            SELECT
                source_day,
                count(*) FILTER (WHERE is_new),
                count(*) FILTER (WHERE NOT is_new AND record_hash <> previous_hash),
                count(*) FILTER (WHERE is_canceled AND (is_new OR NOT was_canceled))
            FROM batch_changes
            GROUP BY source_day
            """
        ).fetchall()
    }
    conn.execute(
        f"""
        INSERT INTO payment_events
        WITH previous AS (
            SELECT signature, raw_record
            FROM payments AS p
            WHERE {near} AND signature IN (
                SELECT signature FROM batch_changes WHERE NOT is_new AND record_hash <> previous_hash
            )
        )
        SELECT
            c.signature,
            $run_id,
            c.observed_at,
            CASE
                WHEN c.is_new THEN 'first_seen'
                WHEN c.is_canceled AND NOT c.was_canceled THEN 'canceled'
                WHEN c.was_canceled AND NOT c.is_canceled THEN 'uncanceled'
                ELSE 'changed'
            END,
            c.is_canceled,
            c.previous_seen_at,
            c.previous_active_at,
            previous.raw_record
        FROM batch_changes AS c
        LEFT JOIN previous USING (signature)
        WHERE c.is_new OR c.record_hash <> c.previous_hash
        """,
        {"run_id": run_id, **params},
    )
    columns = ", ".join(f"i.{name}" for name in _PAYMENT_COLUMNS)
    conn.execute(
        f"""
        INSERT INTO payments BY NAME
        SELECT
            i.signature, {columns}, c.record_hash,
            CAST(i.raw_record AS JSON) AS raw_record,
            i.observed_at AS first_seen_at,
            i.observed_at AS last_seen_at,
            CASE WHEN NOT i.is_canceled THEN i.active_seen_at END AS last_seen_active_at,
            CASE WHEN i.is_canceled THEN i.observed_at END AS canceled_detected_at,
            $run_id AS first_seen_run_id,
            $run_id AS last_seen_run_id
        FROM typed_incoming AS i
        JOIN batch_changes AS c USING (signature)
        WHERE c.is_new
        """,
        {"run_id": run_id},
    )
    # Every payment seen again gets its last-seen marks; changed ones get their new content.
    conn.execute(
        f"""
        UPDATE payments AS p SET
            last_seen_at = c.observed_at,
            last_seen_run_id = $run_id,
            last_seen_active_at = CASE WHEN c.is_canceled THEN p.last_seen_active_at ELSE c.active_seen_at END,
            -- a record without an accept time returned by two windows (exactly at midnight)
            -- belongs to the later day, whichever batch brought it
            payment_date = CASE
                WHEN c.lacks_accept_time THEN greatest(p.payment_date, c.source_day)
                ELSE p.payment_date
            END
        FROM batch_changes AS c
        WHERE p.signature = c.signature AND NOT c.is_new AND {near}
        """,
        {"run_id": run_id, **params},
    )
    updates = ",\n".join(f"{name} = i.{name}" for name in _PAYMENT_COLUMNS if name != "payment_date")
    conn.execute(
        f"""
        UPDATE payments AS p SET
            {updates},
            payment_date = CASE
                WHEN i.accepted_at IS NULL THEN greatest(p.payment_date, i.payment_date)
                ELSE i.payment_date
            END,
            canceled_detected_at = CASE
                WHEN i.is_canceled THEN coalesce(p.canceled_detected_at, i.observed_at)
            END,
            record_hash = i.record_hash,
            raw_record = CAST(i.raw_record AS JSON)
        FROM (
            SELECT typed_incoming.*, c.record_hash
            FROM typed_incoming
            JOIN batch_changes AS c USING (signature)
            WHERE NOT c.is_new AND c.record_hash <> c.previous_hash
        ) AS i
        WHERE p.signature = i.signature AND {near}
        """,
        params,
    )
    conn.execute("DROP TABLE batch_changes")
    conn.execute("DROP VIEW typed_incoming")
    return counts


def _write_rejected(conn: duckdb.DuckDBPyConnection, run_id: int, reads: list[_WindowRead]) -> None:
    rows = [
        (record_hash, r.signature, r.reason, r.raw_text, DATE_ENDPOINT, read.day, page, run_id, run_id,
         read.observed_at, read.observed_at, 1, copies)
        for read in reads
        for record_hash, (page, r, copies) in read.rejected.items()
    ]
    if not rows:
        return
    # The same record rejected by two windows of the batch (midnight) counts once.
    rows = list({row[0]: row for row in rows}.values())
    table = pa.table(
        list(zip(*rows)),
        names=["record_hash", "signature", "reason", "raw_text", "endpoint", "window_date", "page", "first_run_id",
               "last_run_id", "first_rejected_at", "last_rejected_at", "times_seen", "copies"],
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
                times_seen = rejected_records.times_seen + 1,
                copies = excluded.copies
            """
        )
    finally:
        conn.unregister("incoming_rejected")


def _write_window_log(
    conn: duckdb.DuckDBPyConnection, run_id: int, reads: list[_WindowRead], windows: list[WindowResult]
) -> None:
    # One statement for the batch: DuckDB's executemany runs a statement per row.
    rows = [
        (run_id, w.window_date, r.start, r.end, r.observed_at, r.finished_at, w.walks, w.pages, w.records_read,
         w.distinct_payments, w.payments_new, w.payments_changed, w.newly_canceled, w.rejected, w.retries,
         w.is_complete, w.incomplete_reason)
        for r, w in zip(reads, windows)
    ]
    placeholders = ", ".join(["(" + ", ".join(["?"] * 17) + ")"] * len(rows))
    conn.execute(f"INSERT INTO sync_windows VALUES {placeholders}", [value for row in rows for value in row])
    conn.execute(
        """
        UPDATE sync_runs SET
            windows_done = windows_done + ?,
            pages = pages + ?,
            records_read = records_read + ?,
            payments_new = payments_new + ?,
            payments_changed = payments_changed + ?,
            newly_canceled = newly_canceled + ?,
            rejected = rejected + ?,
            retries = retries + ?
        WHERE run_id = ?
        """,
        [len(windows)] + [sum(getattr(w, name) for w in windows) for name in (
            "pages", "records_read", "payments_new", "payments_changed", "newly_canceled", "rejected", "retries")]
        + [run_id],
    )

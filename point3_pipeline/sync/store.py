"""Storing window reads: one transaction per batch of whole windows.

`BatchStore` owns the batch's temp tables (`incoming`: the batch typed once, as its windows are
read; `batch_changes`: what each payment is to the warehouse) and runs one statement of
point3_pipeline/sql/sync/ per method. The fast path looks stored payments up only near the
batch's days; if that misses a stored one (the insert then hits the primary key), the
transaction is redone with an exact lookup over the whole table. A failing ROLLBACK (a full
disk) never hides the error that caused it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import duckdb
import pyarrow as pa

from point3_pipeline import quarantine
from point3_pipeline.models import KST
from point3_pipeline.sync.results import RUN_TOTALS, WindowResult
from point3_pipeline.sync.statements import sql
from point3_pipeline.client import DATE_ENDPOINT
from point3_pipeline.sync.window import WindowRead

log = logging.getLogger(__name__)

# How far (in days) a stored payment's date may sit from the window that returns it: a
# payment filtered on its request time can be accepted the next day. Rows outside this
# neighbourhood are still found, by the exact fallback, just more slowly.
NEIGHBOURHOOD_DAYS = 2

_INCOMING_SCHEMA = pa.schema([
    ("signature", pa.string()),
    ("source_day", pa.date32()),
    ("observed_at", pa.timestamp("us", tz=KST.key)),
    ("active_seen_at", pa.timestamp("us", tz=KST.key)),
    ("raw_record", pa.json_()),  # the checked record (see window.STORED_SCHEMA)
])


def rollback(conn: duckdb.DuckDBPyConnection, cause: BaseException) -> None:
    """Roll back after `cause`; if that fails too, say so on `cause` instead of replacing it."""
    try:
        conn.execute("ROLLBACK")
    except duckdb.Error as exc:
        log.error("ROLLBACK failed after %s: %s", type(cause).__name__, exc)
        cause.add_note(f"(the rollback that followed failed too: {exc})")


class BatchStore:
    """Writes batches of window reads of one run on one connection."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, run_id: int):
        self.conn, self.run_id = conn, run_id
        self._staged: list[WindowRead] = []  # the windows in `incoming`, in order

    def stage(self, reads: list[WindowRead]) -> None:
        """Type windows' payments into `incoming`, outside any transaction (DuckDB refuses to
        unregister inside an aborted one), while the next windows are read; their Arrow
        records are freed once copied."""
        if not self._staged:
            self.conn.execute(sql("create_incoming"))
        self.conn.register("incoming_arrow", _incoming_table(reads))
        try:
            self.conn.execute(sql("stage_incoming"), {"zone": KST.key})
        finally:
            self.conn.unregister("incoming_arrow")
        self._staged.extend(reads)

    def write(self, reads: list[WindowRead]) -> list[WindowResult]:
        """Store whole windows, all staged before, in one transaction; their results, in order."""
        try:
            if list(map(id, reads)) != list(map(id, self._staged)):
                raise RuntimeError(f"windows {reads[0].day}..{reads[-1].day} were not all staged before storing")
            self.conn.execute(sql("keep_latest"))
            for restrict in (True, False):
                try:
                    return self._transaction(reads, restrict)
                except duckdb.ConstraintException:
                    if not restrict:
                        raise
                    log.warning("a payment stored far from its window's day; redoing %s..%s with an exact lookup",
                                reads[0].day, reads[-1].day)
            raise AssertionError("unreachable")
        finally:
            self.drop()

    def _transaction(self, reads: list[WindowRead], restrict: bool) -> list[WindowResult]:
        bounds = {
            "restrict": restrict,
            "low": reads[0].day - dt.timedelta(days=NEIGHBOURHOOD_DAYS),
            "high": reads[-1].day + dt.timedelta(days=NEIGHBOURHOOD_DAYS),
        }
        self.conn.execute("BEGIN TRANSACTION")
        try:
            self.classify(bounds)
            counts = self.count_changes()
            self.log_events(bounds)
            self.insert_new()
            self.update_changed(bounds)
            self.mark_seen(bounds)
            self.quarantine(reads)
            windows = [_window_result(read, counts.get(read.day, (0, 0, 0, 0))) for read in reads]
            self.log_windows(reads, windows)
            self.count_run(windows)
            self.conn.execute("COMMIT")
        except BaseException as exc:
            rollback(self.conn, exc)
            raise
        return windows

    def classify(self, bounds: dict) -> None:
        self.conn.execute(sql("classify"), bounds)

    def count_changes(self) -> dict[dt.date, tuple[int, int, int, int]]:
        """Per window day: (new, changed, cancellations detected, first seen cancelled)."""
        return {row[0]: tuple(row[1:]) for row in self.conn.execute(sql("count_changes")).fetchall()}

    def log_events(self, bounds: dict) -> None:
        self.conn.execute(sql("log_events"), {"run_id": self.run_id, **bounds})

    def insert_new(self) -> None:
        self.conn.execute(sql("insert_new"), {"run_id": self.run_id})

    def update_changed(self, bounds: dict) -> None:
        self.conn.execute(sql("update_changed"), {"run_id": self.run_id, **bounds})

    def mark_seen(self, bounds: dict) -> None:
        self.conn.execute(sql("mark_seen"), {"run_id": self.run_id, **bounds})

    def quarantine(self, reads: list[WindowRead]) -> None:
        found = [(read.day, read.started_at, q) for read in reads for q in read.quarantined.values()]
        quarantine.store(self.conn, self.run_id, DATE_ENDPOINT, found)

    def log_windows(self, reads: list[WindowRead], windows: list[WindowResult]) -> None:
        # One statement for the batch: DuckDB's executemany runs a statement per row.
        rows = [
            {"run_id": self.run_id, "window_date": w.window_date, "window_start": r.start, "window_end": r.end,
             "started_at": r.started_at, "finished_at": r.finished_at, "walks": w.walks, "pages": w.pages,
             "records_read": w.records_read, "distinct_payments": w.distinct_payments,
             "payments_new": w.payments_new, "payments_changed": w.payments_changed,
             "newly_canceled": w.newly_canceled, "rejected": w.rejected, "retries": w.retries,
             "is_complete": w.is_complete, "incomplete_reason": w.incomplete_reason}
            for r, w in zip(reads, windows)
        ]
        self.conn.register("incoming_windows", pa.Table.from_pylist(rows))
        try:
            self.conn.execute(sql("log_windows"))
        finally:
            self.conn.unregister("incoming_windows")

    def count_run(self, windows: list[WindowResult]) -> None:
        totals = {name: sum(getattr(w, name) for w in windows) for name in RUN_TOTALS}
        self.conn.execute(sql("count_run"), {"run_id": self.run_id, "windows": len(windows), **totals})

    def drop(self) -> None:
        self._staged = []
        self.conn.execute("DROP TABLE IF EXISTS batch_changes")
        self.conn.execute("DROP TABLE IF EXISTS incoming")


def _incoming_table(reads: list[WindowRead]) -> pa.Table:
    """Windows' payments with their window's keys, as read. A change is dated by the read's
    end (detection, an upper bound), being active by its start (a lower bound). A window's
    constants are repeated in Arrow, not built per row from Python objects."""
    batches = []
    for read in reads:
        n, records = read.payments, read.take_records()
        batches.append(pa.RecordBatch.from_arrays([
            records.column("signature"),
            pa.repeat(pa.scalar(read.day, pa.date32()), n),
            pa.repeat(pa.scalar(read.finished_at, _INCOMING_SCHEMA.field("observed_at").type), n),
            pa.repeat(pa.scalar(read.started_at, _INCOMING_SCHEMA.field("active_seen_at").type), n),
            records.column("raw_record"),
        ], schema=_INCOMING_SCHEMA))
    return pa.Table.from_batches(batches, schema=_INCOMING_SCHEMA)


def _window_result(read: WindowRead, counts: tuple[int, int, int, int]) -> WindowResult:
    new, changed, detected, first_seen_canceled = counts
    return WindowResult(
        window_date=read.day,
        walks=read.walks,
        pages=read.pages,
        records_read=read.records_read,
        distinct_payments=read.payments,
        payments_new=new,
        payments_changed=changed,
        cancellations_detected=detected,
        first_seen_canceled=first_seen_canceled,
        rejected=sum(q.copies for q in read.quarantined.values()),
        retries=read.retries,
        is_complete=read.is_complete,
        incomplete_reason=read.incomplete_reason,
        seconds=time.perf_counter() - read.timer_started,
        failed=read.failed,
    )

"""A sync run: read the planned day windows (`Limits.windows_read_at_once` at a time, handed
on in day order), commit them in batches, and record the run's outcome in `sync_runs`.

Windows read quickly are committed together (`BatchPolicy`), to spare DuckDB per-statement
costs and the WAL; a slow API commits every window on its own. A window whose read fails after the
client's retries is logged as not final and the run goes on (up to
`MAX_CONSECUTIVE_FAILURES` in a row: then upstream is down and the run stops); any other
error first commits the windows already read. A run with a failed window is 'failed', a
Ctrl-C (or SIGTERM, which the CLI turns into KeyboardInterrupt) 'interrupted'.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import gc
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import duckdb

from point3_pipeline.limits import DEFAULT_LIMITS, Limits
from point3_pipeline.sync.plan import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_SWEEP_DAYS,
    Clock,
    days_between,
    kst_now,
    plan_incremental,
)
from point3_pipeline.sync.results import ProgressCallback, SyncResult
from point3_pipeline.sync.statements import sql
from point3_pipeline.sync.store import BatchStore
from point3_pipeline.sync.window import DEFAULT_MAX_WALKS, WindowRead, read_window

log = logging.getLogger(__name__)

# Windows failing one after another mean upstream is down, not that one day is bad.
MAX_CONSECUTIVE_FAILURES = 3

# Objects the cyclic collector may let pile up before a young collection, while a run reads:
# every record read stays alive (an Order and its dict) until its batch is stored, so with
# the default 700 the collector rescanned them over and over (measured: a tenth of a
# 200,000-payment backfill's CPU at page size 100). Reference counting frees the rest as usual.
RUN_GC_THRESHOLD = 100_000

# Windows read are staged (typed into DuckDB) once they hold this many records: each staging
# statement costs milliseconds of its own (one per window of 2,000 records: 0.6 s more CPU for
# 200,000), and a batch's commit stages what is left, so at most this much waits for the end.
STAGE_MIN_RECORDS = 10_000


# Set while several merchants' operations run at once (fleet.MerchantPool): their syncs already
# overlap one another's waits, and reading windows at once inside each only added threads and
# CPU (bench/merchants.py, 50 merchants on 2 cores, 16 at once: 8.0 s wall and 14.8 s CPU one
# window at a time, 10.9 s and 20.0 s two at a time), so each then reads one window at a time.
_among_merchants: contextvars.ContextVar[bool] = contextvars.ContextVar("point3_among_merchants", default=False)


@contextlib.contextmanager
def among_merchants() -> Iterator[None]:
    """Syncs started inside read one window at a time (see _among_merchants)."""
    token = _among_merchants.set(True)
    try:
        yield
    finally:
        _among_merchants.reset(token)


class SyncFailed(Exception):
    """Some windows could not be read or the run could not finish; what was read is stored."""

    def __init__(self, result: SyncResult):
        super().__init__(result.error)
        self.result = result


@dataclass(frozen=True)
class BatchPolicy:
    """When read windows are committed: as soon as the batch holds `max_records` records,
    `max_windows` windows, or its first window was read `max_seconds` ago (None: no bound).

    The default batch reaches a DuckDB row group (122,880 rows): a transaction appending that
    many rows to a table writes them straight to the file instead of to the WAL and again at
    the checkpoint (measured on 200,000 payments: the writer's CPU with the closing checkpoint
    5.2-5.4 s in batches of 20,000, 4.0-4.1 s in batches of 125,000). A batch's windows are
    typed into a DuckDB temp table as they are read (see _Writer), so Python holds only the
    Arrow records (~0.5 KB each) of windows the writer has not reached yet."""

    max_records: int = 125_000
    max_seconds: float | None = 10.0
    max_windows: int | None = None

    def is_full(self, reads: list[WindowRead]) -> bool:
        if sum(r.payments for r in reads) >= self.max_records:
            return True
        if self.max_windows is not None and len(reads) >= self.max_windows:
            return True
        return self.max_seconds is not None and time.perf_counter() - reads[0].timer_started >= self.max_seconds


DEFAULT_BATCH = BatchPolicy()
ONE_WINDOW_PER_BATCH = BatchPolicy(max_records=0, max_seconds=None, max_windows=1)


def sync_incremental(client, warehouse, *, start_date: dt.date, lookback_days: int = DEFAULT_LOOKBACK_DAYS,
                     clock: Clock = kst_now, **options) -> SyncResult:
    """`point3 sync`: from the last synced day minus a lookback (or the first gap) through now.
    `options` are sync_range's."""
    first, last = plan_incremental(warehouse, start_date, clock().date(), lookback_days)
    return sync_range(client, warehouse, first, last, mode="incremental", clock=clock, **options)


def sweep(client, warehouse, *, days: int = DEFAULT_SWEEP_DAYS, clock: Clock = kst_now, **options) -> SyncResult:
    """`point3 sweep`: re-read the last `days` days to catch late cancellations of older payments."""
    today = clock().date()
    return sync_range(client, warehouse, today - dt.timedelta(days=days - 1), today, mode="sweep", clock=clock,
                      **options)


def sync_range(
    client,
    warehouse,
    first_day: dt.date,
    last_day: dt.date,
    *,
    mode: str = "range",
    clock: Clock = kst_now,
    progress: ProgressCallback | None = None,
    max_walks: int = DEFAULT_MAX_WALKS,
    limits: Limits = DEFAULT_LIMITS,
    batch: BatchPolicy = DEFAULT_BATCH,
    refresh_derived: bool = False,
) -> SyncResult:
    """Sync every KST day window from first_day to last_day (inclusive, never after today).

    With `refresh_derived`, the derived tables are rebuilt before the run is marked
    succeeded, so a failing refresh is the run's failure. Raises SyncFailed when a window
    could not be read or the refresh failed (everything read is stored), and any other error
    after committing the windows already read and recording the run."""
    if last_day < first_day:
        raise ValueError(f"last day {last_day} is before first day {first_day}")
    if type(limits.windows_read_at_once) is not int or limits.windows_read_at_once < 1:
        raise ValueError(f"windows_read_at_once must be a whole number of at least 1, not {limits.windows_read_at_once!r}")
    days = [d for d in days_between(first_day, last_day) if d <= clock().date()]
    started = time.perf_counter()
    # One connection for the run: opening a DuckDB file costs tens of ms, and analysts read
    # the published copy, so holding the file is fine.
    with warehouse.connect() as conn:
        # Checkpoint once when the run closes the file, not every 16 MB of WAL on the way
        # (measured: a third of a 200,000-payment backfill went to repeated checkpoints).
        # The WAL is as durable; a crash replays the committed windows from it.
        conn.execute("SET checkpoint_threshold = '1GB'")
        result = _start_run(conn, mode, first_day, last_day, len(days), clock())
        try:
            with _fewer_collections():
                reader = _WindowReader(client, clock, limits, max_walks)
                _read_and_store(reader, conn, result, days, progress, batch)
            if refresh_derived:
                _refresh(warehouse, result)
        except BaseException as exc:
            _finish_run(conn, result, clock(), exc)
            raise
        result.seconds = time.perf_counter() - started
        _finish_run(conn, result, clock(), None)
    if result.status != "succeeded":
        raise SyncFailed(result)
    return result


class _FewerCollections:
    """Raise the young generation's threshold to RUN_GC_THRESHOLD while any run reads (runs of
    several merchants share the process), and restore the process's own setting after the
    last one; cycles are still collected, just less often."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs = 0
        self._saved: tuple[int, ...] = ()

    @contextlib.contextmanager
    def during_run(self) -> Iterator[None]:
        with self._lock:
            if self._runs == 0:
                self._saved = gc.get_threshold()
                gc.set_threshold(max(self._saved[0], RUN_GC_THRESHOLD), *self._saved[1:])
            self._runs += 1
        try:
            yield
        finally:
            with self._lock:
                self._runs -= 1
                if self._runs == 0:
                    gc.set_threshold(*self._saved)


_fewer_collections = _FewerCollections().during_run


def _refresh(warehouse, result: SyncResult) -> None:
    try:
        warehouse.refresh_derived()
    except Exception as exc:
        result.error = f"the sync stored its windows, then the derived refresh failed: {type(exc).__name__}: {exc}"
        log.error("run %d: %s", result.run_id, result.error)


def _read_and_store(reader: _WindowReader, conn, result: SyncResult, days: list[dt.date],
                    progress: ProgressCallback | None, batch: BatchPolicy) -> None:
    writer = _Writer(BatchStore(conn, result.run_id), result, len(days), progress)
    pending: list[WindowRead] = []
    failures = 0
    try:
        with reader.reading(days) as reads:
            for number, read in enumerate(reads, start=1):
                writer.stage(read)
                pending.append(read)
                failures = failures + 1 if read.failed else 0
                stop = failures >= MAX_CONSECUTIVE_FAILURES and number < len(days)
                if number == len(days) or stop or batch.is_full(pending):
                    writer.submit(pending)
                    pending = []
                if stop:
                    result.error = f"{failures} windows in a row could not be read; stopped before {days[number]}"
                    break
        writer.wait()
    except BaseException as exc:
        writer.drain(pending, exc)
        raise
    finally:
        writer.close()


class _WindowReader:
    """Reads day windows `limits.windows_read_at_once` at a time, each on a thread of its own,
    and yields them in day order, at most that many ahead of the one the run takes. When the
    run stops early (an error, a Ctrl-C, too many failures), reads still going stop at their
    next page and are dropped: they were never stored, so the next run reads those days again.
    The threads are daemons, so a request left hanging never holds up the process's exit (a
    reader writes nothing)."""

    def __init__(self, client, clock: Clock, limits: Limits, max_walks: int):
        self.client, self.clock, self.limits, self.max_walks = client, clock, limits, max_walks
        self.readers = 1 if _among_merchants.get() else limits.windows_read_at_once

    def read(self, day: dt.date, abandoned: threading.Event | None = None) -> WindowRead:
        return read_window(self.client, day, self.clock, self.limits, self.max_walks, abandoned)

    @contextlib.contextmanager
    def reading(self, days: list[dt.date]) -> Iterator[Iterator[WindowRead]]:
        if self.readers == 1:
            yield map(self.read, days)
            return
        ahead = _ReadAhead(self.read, days, self.readers)
        try:
            yield iter(ahead)
        finally:
            ahead.abandon()


class _ReadAhead:
    """Days handed to `readers` threads in order; each read lands in its day's Future. A
    thread takes a slot before it takes a day and the consumer frees one per read it takes,
    so at most `readers` reads are going or waiting to be taken."""

    def __init__(self, read, days: list[dt.date], readers: int):
        self._read, self._readers = read, readers
        self._results: list[Future[WindowRead]] = [Future() for _ in days]
        self._days = iter(enumerate(days))
        self._take = threading.Lock()
        self._slots = threading.Semaphore(readers)
        self._abandoned = threading.Event()
        for number in range(min(readers, len(days))):
            threading.Thread(target=self._work, name=f"point3-reader-{number + 1}", daemon=True).start()

    def __iter__(self) -> Iterator[WindowRead]:
        for result in self._results:
            read = result.result()
            self._slots.release()
            yield read

    def abandon(self) -> None:
        self._abandoned.set()
        for _ in range(self._readers):
            self._slots.release()

    def _work(self) -> None:
        while True:
            self._slots.acquire()
            with self._take:
                index, day = next(self._days, (None, None))
            if index is None or self._abandoned.is_set():
                return
            try:
                self._results[index].set_result(self._read(day, self._abandoned))
            except BaseException as exc:  # the run raises it when it takes this day, in order
                self._results[index].set_exception(exc)


class _Writer:
    """Stores windows on one writer thread while the next windows are read (DuckDB releases
    the GIL). Windows are staged (typed into DuckDB) while the next ones are read, so the
    writer works while the reader waits on the network: once STAGE_MIN_RECORDS were read, every
    window read since in one statement. A batch is committed once full, at most one in flight,
    so commits stay in window order. Each window's progress is reported as soon as its batch
    committed."""

    def __init__(self, store: BatchStore, result: SyncResult, planned: int, progress: ProgressCallback | None):
        self.store, self.result, self.planned, self.progress = store, result, planned, progress
        # One thread: its tasks (stagings and commits) run in the order they were submitted.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="point3-writer")
        self._in_flight: Future[None] | None = None
        self._lock = threading.Lock()
        self._unstaged: list[WindowRead] = []  # read for the next batch, not yet staged; its own list
        self._unstaged_records = 0  # read since the last staging was submitted
        self._stagings: list[Future[None]] = []  # of the next batch
        self._broken = False

    def stage(self, read: WindowRead) -> None:
        with self._lock:
            self._unstaged.append(read)
        self._unstaged_records += read.payments
        if self._unstaged_records >= STAGE_MIN_RECORDS:
            self._unstaged_records = 0
            self._stagings.append(self._pool.submit(self._stage_unstaged, self._unstaged))

    def submit(self, reads: list[WindowRead]) -> None:
        self.wait()
        stagings, unstaged = self._stagings, self._unstaged
        self._stagings, self._unstaged, self._unstaged_records = [], [], 0
        self._in_flight = self._pool.submit(self._commit, reads, stagings, unstaged)

    def wait(self) -> None:
        future, self._in_flight = self._in_flight, None
        if future is None:
            return
        try:
            future.result()
        except BaseException:
            self._broken = True
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # stagings left behind a failed batch

    def drain(self, pending: list[WindowRead], cause: BaseException) -> None:
        """After `cause`: let the batch in flight end (the connection is the writer's until
        then) and commit the windows read since, unless writing itself failed."""
        try:
            self.wait()
            if pending and not self._broken:
                self.submit(pending)
                self.wait()
        except BaseException as exc:
            if exc is not cause:
                cause.add_note(f"(storing the windows read before it failed too: {type(exc).__name__}: {exc})")

    def _stage_unstaged(self, unstaged: list[WindowRead]) -> None:
        """Stage what `unstaged` (one batch's list) holds: nothing when an earlier task took it."""
        with self._lock:
            reads = unstaged[:]
            unstaged.clear()
        if reads:
            self.store.stage(reads)

    def _commit(self, reads: list[WindowRead], stagings: list[Future[None]], unstaged: list[WindowRead]) -> None:
        for staging in stagings:  # done by now (submitted before): a failed one fails the batch
            staging.result()
        self._stage_unstaged(unstaged)
        for window in self.store.write(reads):
            self.result.windows.append(window)
            if self.progress is not None:
                self.progress(len(self.result.windows), self.planned, window)


def _start_run(conn: duckdb.DuckDBPyConnection, mode: str, first_day: dt.date, last_day: dt.date, planned: int,
               now: dt.datetime) -> SyncResult:
    conn.execute(sql("start_run"))
    run_id = conn.execute(sql("insert_run"), {"mode": mode, "first_day": first_day, "last_day": last_day,
                                              "started_at": now, "planned": planned}).fetchone()[0]
    return SyncResult(run_id=run_id, mode=mode, first_day=first_day, last_day=last_day)


def _finish_run(conn: duckdb.DuckDBPyConnection, result: SyncResult, now: dt.datetime,
                exc: BaseException | None) -> None:
    """Record how the run ended; a failure to record it never hides `exc`."""
    if isinstance(exc, KeyboardInterrupt):
        result.status, result.error = "interrupted", "interrupted (Ctrl-C or SIGTERM) before the run finished"
    elif exc is not None:
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
    else:
        problems = [result.error] if result.error else []
        if result.failed_days:
            listed = "; ".join(f"{w.window_date}: {w.incomplete_reason}" for w in result.windows if w.failed)
            problems.append(f"{len(result.failed_days)} of {len(result.windows)} windows could not be read "
                            f"and are read again next run ({listed})")
        result.status = "failed" if problems else "succeeded"
        result.error = "; ".join(problems) or None
    try:
        conn.execute(sql("finish_run"), {"status": result.status, "finished_at": now, "error": result.error,
                                         "run_id": result.run_id})
    except duckdb.Error as record_error:
        if exc is None:
            raise
        log.error("could not record run %d as %s: %s", result.run_id, result.status, record_error)
        exc.add_note(f"(recording the run as {result.status} failed too: {record_error})")

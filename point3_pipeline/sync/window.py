"""Reading one KST day window: the walk over the date endpoint's pages, and what it found.

`WindowWalk` is pure: it is fed one page at a time and decides whether to walk again, when to
stop and what is final, so every rule is tested without a client. `read_window` drives it
with a client. The rules:
- pages shift when payments arrive while paging (a signature seen twice in one walk, in
  either sort order): walk again until a walk brings nothing new, up to `max_walks`;
- a bad record seen twice in one walk is two copies, or one record a shift pushed across a
  page boundary: a walk without repeats, or one counting as the last did, tells them apart;
- one signature twice in one walk with different content is a conflict: walk again; still
  conflicting on the last walk, every differing copy is quarantined and none is stored;
- a record accepted outside its window's day ± `ACCEPT_TOLERANCE_DAYS` is quarantined;
- a walk that cycles (a page identical to an earlier page of the same walk) stops at once,
  and so does a window that reaches `Limits.max_pages_per_window` or
  `max_records_per_window`: what was read is kept (real records), the window is not final.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from point3_pipeline.client import Page
from point3_pipeline.errors import AuthenticationError, Point3Error
from point3_pipeline.limits import Limits
from point3_pipeline.models import Order
from point3_pipeline.quarantine import Quarantined, accept_time_reason, conflict_reason, record_hash
from point3_pipeline.sync.plan import Clock, closed_reason, window_bounds

log = logging.getLogger(__name__)

DEFAULT_MAX_WALKS = 3
# The windows overlap at midnight, and a payment is filtered on its request time, so it can be
# accepted a little after its window ends (or, at midnight, belong to the previous day's
# window too): an accept time within the window's day ± this many days is the documented
# overlap; anything further is quarantined, never booked to a day it was not listed for.
ACCEPT_TOLERANCE_DAYS = 1


@dataclass
class WindowRead:
    """What one read of a day window brought, ready to be stored."""

    day: dt.date
    start: dt.datetime
    end: dt.datetime
    # The clock when reading began: payments it returned active were active at least then.
    started_at: dt.datetime
    # The clock after the last page: any change it saw had happened by then (its observed_at).
    finished_at: dt.datetime
    records: pa.RecordBatch | None  # the payments read, one row each (STORED_SCHEMA), until taken
    payments: int  # how many
    quarantined: dict[str, Quarantined]  # by record hash
    walks: int
    pages: int
    records_read: int
    retries: int
    incomplete_reason: str | None
    timer_started: float  # perf_counter at the start, for the window's seconds
    failed: bool = False  # the read ended on an error (after the client's retries)

    @property
    def is_complete(self) -> bool:
        return self.incomplete_reason is None

    def take_records(self) -> pa.RecordBatch:
        """The payments read, handed over once: the store copies them into DuckDB, and holding
        them through the batch's transaction too would double the batch's memory."""
        records, self.records = self.records, None
        if records is None:
            raise RuntimeError(f"the records of window {self.day} were already taken")
        return records


# A read's payments as the store takes them: the checked record as JSON (DuckDB reads every
# field from it). Made on the reading thread as the window ends, so the Orders (a dict and an
# object per record) are freed before the window waits for its turn, and the writer thread
# holds the GIL for no per-record work. Arrow's JSON type reaches DuckDB as JSON, so the
# text orjson wrote is not parsed once more to be checked; Arrow checks it is UTF-8.
STORED_SCHEMA = pa.schema([("signature", pa.string()), ("raw_record", pa.json_())])


def stored_form(orders: dict[str, Order]) -> pa.RecordBatch:
    # binary, then cast: an order of magnitude faster than building strings from bytes
    text = pa.array([o.raw_bytes for o in orders.values()], pa.binary()).cast(pa.string())
    return pa.RecordBatch.from_arrays(
        [pa.array(list(orders), pa.string()), pa.ExtensionArray.from_storage(pa.json_(), text)],
        schema=STORED_SCHEMA,
    )


@dataclass
class _Walk:
    """One pass over the pages."""

    seen: dict[str, bytes] = field(default_factory=dict)  # signature -> the record (raw_bytes) as first seen
    conflicts: dict[str, Counter[bytes]] = field(default_factory=dict)  # signature -> copies by record
    bad: Counter[str] = field(default_factory=Counter)  # quarantined record hash -> copies
    pages: set[int] = field(default_factory=set)
    shifted: bool = False
    new: int = 0


class WindowWalk:
    """The walks of one window, fed page by page (see the module docstring)."""

    def __init__(self, day: dt.date, limits: Limits, max_walks: int = DEFAULT_MAX_WALKS):
        self.day, self.limits, self.max_walks = day, limits, max_walks
        self.orders: dict[str, Order] = {}
        self.quarantined: dict[str, Quarantined] = {}
        self.walks = self.pages = self.records_read = 0
        self.stop_reason: str | None = None  # a bound or a cycle: no more pages, no more walks
        self._walk = _Walk()
        self._previous_bad: Counter[str] | None = None
        self._settled = False
        low, high = (day + dt.timedelta(days=d * ACCEPT_TOLERANCE_DAYS) for d in (-1, 1))
        self._accept_range = (f"{low:%Y%m%d}", f"{high:%Y%m%d}99")

    @property
    def wants_walk(self) -> bool:
        return not self._settled and self.stop_reason is None and self.walks < self.max_walks

    def start_walk(self) -> None:
        self.walks += 1
        self._walk = _Walk()

    def add_page(self, page: Page) -> bool:
        """Take one page of the current walk; False when the walk must stop here."""
        fingerprint = _fingerprint(page)
        if fingerprint in self._walk.pages:
            self.stop_reason = f"the pages cycle: page {page.page} repeats an earlier page of the same walk"
            return False
        self._walk.pages.add(fingerprint)
        self.pages += 1
        self.records_read += page.record_count
        for order in page.orders:
            self._add_order(order, page.page)
        for rejected in page.rejected:
            self._add_bad(Quarantined(rejected.raw_text, rejected.reason, rejected.signature, page.page))
        if page.record_count >= page.count:  # not the last page: the walk would go on
            self.stop_reason = self._bound_reached()
        return self.stop_reason is None

    def _add_order(self, order: Order, page: int) -> None:
        low, high = self._accept_range
        if order.accepted_text is not None and not low <= order.accepted_text <= high:
            reason = accept_time_reason(order.accepted_text, self.day, ACCEPT_TOLERANCE_DAYS)
            self._add_bad(Quarantined(order.raw_json, reason, order.signature, page))
            return
        walk = self._walk
        first = walk.seen.get(order.signature)
        if first is None:
            walk.seen[order.signature] = order.raw_bytes
        else:
            walk.shifted = True
            if first != order.raw_bytes or order.signature in walk.conflicts:
                walk.conflicts.setdefault(order.signature, Counter({first: 1}))[order.raw_bytes] += 1
        if order.signature not in self.orders:
            walk.new += 1
        self.orders[order.signature] = order

    def _add_bad(self, record: Quarantined) -> None:
        key = record.record_hash
        self._walk.bad[key] += 1
        self.quarantined[key] = Quarantined(record.raw_text, record.reason, record.signature, record.page,
                                            self._walk.bad[key])

    def _bound_reached(self) -> str | None:
        if self.pages >= self.limits.max_pages_per_window:
            return f"stopped at the bound of {self.limits.max_pages_per_window:,} pages per window (max_pages_per_window)"
        if self.records_read >= self.limits.max_records_per_window:
            return (f"stopped at the bound of {self.limits.max_records_per_window:,} records per window "
                    "(max_records_per_window)")
        return None

    def end_walk(self) -> None:
        """The current walk reached its last page (or stopped): is another one needed?"""
        walk = self._walk
        repeated = any(n > 1 for n in walk.bad.values())
        if self.walks == 1:
            settled = not walk.shifted and not repeated
        else:
            settled = walk.new == 0 and (not repeated or walk.bad == self._previous_bad)
        self._settled = settled and not walk.conflicts
        self._previous_bad = walk.bad

    def finish(self) -> str | None:
        """Quarantine what still conflicts; the reason the read is not final, or None."""
        conflicts = self._walk.conflicts
        for signature, copies in conflicts.items():
            self.orders.pop(signature, None)
            reason = conflict_reason(signature, len(copies))
            for raw_bytes, n in copies.items():
                raw_json = raw_bytes.decode()
                self.quarantined[record_hash(raw_json)] = Quarantined(raw_json, reason, signature, None, n)
        if self.stop_reason is not None:
            return self.stop_reason
        if conflicts:
            listed = ", ".join(sorted(conflicts)[:3]) + (" ..." if len(conflicts) > 3 else "")
            return f"conflicting copies of {len(conflicts)} payment(s) in one read ({listed}), kept in rejected_records"
        if not self._settled:
            return f"pages kept shifting over {self.walks} walks"
        return None


def _fingerprint(page: Page) -> int:
    """A page's identity within one walk: its size and the records' signatures (bad records by
    their text). Signatures' hashes are cached by the dicts they already went into, so this
    costs next to nothing; two different pages of one walk sharing it would be a cycle anyway
    (the same payments, in the same order, on two pages)."""
    return hash((page.count, page.record_count, tuple(o.signature for o in page.orders),
                 tuple(r.raw_text for r in page.rejected)))


def read_window(client, day: dt.date, clock: Clock, limits: Limits, max_walks: int = DEFAULT_MAX_WALKS,
                abandoned: threading.Event | None = None) -> WindowRead:
    """Walk the day's pages with `client` until the walk settles or stops. An error after the
    client's retries ends the read (not final, the reason says why); a refused key is no
    window's fault and ends the run. Once `abandoned` is set (the run stopped and will not
    store this read), no further page is asked for."""
    start, end = window_bounds(day)
    timer, started_at, retries_before = time.perf_counter(), clock(), client.stats.thread_retries
    walk = WindowWalk(day, limits, max_walks)
    stopped = abandoned.is_set if abandoned is not None else lambda: False
    failure = None
    try:
        while walk.wants_walk:
            walk.start_walk()
            for page in client.iter_payment_pages(start, end):
                if not walk.add_page(page) or stopped():
                    break
            walk.end_walk()
            if stopped():
                failure = "the run stopped before this window was read"
                break
    except AuthenticationError:
        raise
    except Point3Error as exc:
        failure = f"read failed: {type(exc).__name__}: {exc}"
        log.warning("window %s: %s", day, failure)
    finished_at = clock()
    reason = walk.finish()
    reason = failure or reason or closed_reason(finished_at, end)
    retries = client.stats.thread_retries - retries_before
    if retries:
        log.warning("window %s needed %d retries", day, retries)
    return WindowRead(day, start, end, started_at, finished_at, stored_form(walk.orders), len(walk.orders),
                      walk.quarantined, walk.walks, walk.pages, walk.records_read, retries, reason, timer,
                      failed=failure is not None)

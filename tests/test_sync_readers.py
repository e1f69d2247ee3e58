"""Windows read at once (Limits.windows_read_at_once): stored in day order whatever order the
reads end in, and a read left going when the run stops ends at its next page, never stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest

from point3_pipeline import sync
from point3_pipeline.client import Page
from point3_pipeline.errors import AuthenticationError
from point3_pipeline.limits import DEFAULT_LIMITS
from point3_pipeline.models import parse_order
from tests.conftest import SANDBOX_NOW

BOUND = 120  # seconds: an upper bound on a wait that ends by an event, never a race
FIRST = SANDBOX_NOW.date() - dt.timedelta(days=6)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(5)]
TWO_AT_ONCE = dataclasses.replace(DEFAULT_LIMITS, windows_read_at_once=2)


class SecondDayFirst:
    """The sandbox's client, except that the first day's read waits until the second day's has
    been read through: with two windows read at once, the second one ends first."""

    def __init__(self, client):
        self.client, self.stats = client, client.stats
        self.second_read = threading.Event()

    def iter_payment_pages(self, start, end):
        if start.date() == DAYS[0]:
            assert self.second_read.wait(BOUND), "the second day was not read while the first one waited"
        yield from self.client.iter_payment_pages(start, end)
        if start.date() == DAYS[1]:
            self.second_read.set()


def test_windows_read_at_once_are_stored_in_day_order(sandbox, client, warehouse):
    reading = SecondDayFirst(client)
    reported = []
    result = sync.sync_range(reading, warehouse, DAYS[0], DAYS[-1], clock=sandbox.state.clock.now, limits=TWO_AT_ONCE,
                             batch=sync.ONE_WINDOW_PER_BATCH, progress=lambda done, planned, w: reported.append(w.window_date))
    assert reading.second_read.is_set()
    assert reported == DAYS and [w.window_date for w in result.windows] == DAYS
    with warehouse.connect(read_only=True) as conn:
        logged = [r[0] for r in conn.execute("SELECT window_date FROM sync_windows ORDER BY rowid").fetchall()]
    assert logged == DAYS


def test_one_window_at_a_time_reads_the_same_payments(sandbox, client, tmp_path):
    from point3_pipeline.warehouse import Warehouse

    stored = []
    for at_once in (1, 2):
        warehouse = Warehouse(tmp_path / f"{at_once}.duckdb")
        sync.sync_range(client, warehouse, DAYS[0], DAYS[-1], clock=sandbox.state.clock.now,
                        limits=dataclasses.replace(DEFAULT_LIMITS, windows_read_at_once=at_once))
        with warehouse.connect(read_only=True) as conn:
            stored.append(conn.execute("SELECT signature, payment_date, record_hash FROM payments ORDER BY 1").fetchall())
    assert stored[0] == stored[1] and stored[0]


def _order(number: int):
    return parse_order({"signature": f"S{number:031d}", "isCanceled": False, "totalCharge": 1_100,
                        "taxFreeAmount": 1_000, "vat": 100})


class RefusedWhileTheNextDayPages:
    """The first day's key is refused once the second day's read is under way; the second day
    pages forever (full pages of new payments) until its reader stops asking."""

    def __init__(self, client):
        self.stats = client.stats
        self.second_started, self.second_closed = threading.Event(), threading.Event()
        self.second_pages = 0

    def iter_payment_pages(self, start, end):
        if start.date() == DAYS[0]:
            assert self.second_started.wait(BOUND), "the second day was not read while the first one was"
            raise AuthenticationError("point3 answered 401: the key was refused", status_code=401)
        if start.date() != DAYS[1]:
            raise AssertionError(f"{start.date()} was read though the run had stopped")
        try:
            while True:
                self.second_pages += 1
                yield Page(page=self.second_pages, count=1, orders=[_order(self.second_pages)], rejected=[],
                           record_count=1)
                self.second_started.set()
        finally:
            self.second_closed.set()


def test_a_read_left_going_when_the_run_stops_ends_and_is_not_stored(warehouse):
    reading = RefusedWhileTheNextDayPages(_NoClient())
    with pytest.raises(AuthenticationError):
        sync.sync_range(reading, warehouse, DAYS[0], DAYS[-1], clock=lambda: SANDBOX_NOW, limits=TWO_AT_ONCE)
    assert reading.second_closed.wait(BOUND), "the second day's read went on after the run stopped"
    assert reading.second_pages < DEFAULT_LIMITS.max_pages_per_window
    with warehouse.connect(read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM sync_windows").fetchone()[0] == 0
        assert conn.execute("SELECT status FROM sync_runs").fetchall() == [("failed",)]


class _NoClient:
    def __init__(self):
        from point3_pipeline.client import ClientStats

        self.stats = ClientStats()


@pytest.mark.parametrize("at_once", [0, -1, 1.5])
def test_windows_read_at_once_must_be_a_whole_number_of_at_least_one(warehouse, at_once):
    with pytest.raises(ValueError, match="windows_read_at_once"):
        sync.sync_range(_NoClient(), warehouse, DAYS[0], DAYS[0], clock=lambda: SANDBOX_NOW,
                        limits=dataclasses.replace(DEFAULT_LIMITS, windows_read_at_once=at_once))

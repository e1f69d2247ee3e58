"""How a run ends when something fails: one window's failure never discards other windows'
finished work, the run's status is honest, and a second failure never hides the first."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from point3_pipeline import sync
from point3_pipeline.errors import ServerError
from point3_pipeline.sync.store import BatchStore
from point3_pipeline.warehouse import NoSpaceLeft
from tests.conftest import SANDBOX_NOW

FIRST = SANDBOX_NOW.date() - dt.timedelta(days=6)
LAST = SANDBOX_NOW.date() - dt.timedelta(days=2)
DAYS = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]


class FailingOn:
    """The sandbox's client, except that the windows of `days` raise `error` on their first page."""

    def __init__(self, client, days, error):
        self.client, self.days, self.error = client, set(days), error
        self.stats = client.stats

    def iter_payment_pages(self, start, end):
        if start.date() in self.days:
            raise self.error
        return self.client.iter_payment_pages(start, end)


def _sync(sandbox, client, warehouse, **options):
    return sync.sync_range(client, warehouse, FIRST, LAST, clock=sandbox.state.clock.now, **options)


def _windows(warehouse):
    with warehouse.connect(read_only=True) as conn:
        return conn.execute("SELECT window_date, is_complete, incomplete_reason FROM sync_windows ORDER BY 1").fetchall()


def _runs(warehouse):
    with warehouse.connect(read_only=True) as conn:
        return conn.execute("SELECT status, error FROM sync_runs ORDER BY run_id").fetchall()


def test_a_window_that_cannot_be_read_fails_the_run_but_every_other_window_is_stored(sandbox, client, warehouse):
    failing = FailingOn(client, [DAYS[2]], ServerError("point3 answered 500 five times", status_code=500))
    with pytest.raises(sync.SyncFailed, match=f"1 of 5 windows could not be read.*{DAYS[2]}") as raised:
        _sync(sandbox, failing, warehouse)
    assert raised.value.result.status == "failed" and raised.value.result.failed_days == [DAYS[2]]
    windows = _windows(warehouse)
    assert [w[0] for w in windows] == DAYS
    assert [w[1] for w in windows] == [True, True, False, True, True]
    assert windows[2][2].startswith("read failed: ServerError")
    [(status, error)] = _runs(warehouse)
    assert status == "failed" and str(DAYS[2]) in error
    # The next run reads the failed day again and converges.
    _sync(sandbox, client, warehouse)
    assert sync.plan_incremental(warehouse, FIRST, LAST)[0] == LAST - dt.timedelta(days=2)


def test_upstream_down_stops_the_run_after_a_few_failed_windows(sandbox, client, warehouse):
    failing = FailingOn(client, DAYS, ServerError("point3 answered 500", status_code=500))
    with pytest.raises(sync.SyncFailed, match="windows in a row could not be read"):
        _sync(sandbox, failing, warehouse)
    assert len(_windows(warehouse)) == sync.MAX_CONSECUTIVE_FAILURES


def test_ctrl_c_is_recorded_as_interrupted_and_keeps_the_windows_read(sandbox, client, warehouse):
    with pytest.raises(KeyboardInterrupt):
        _sync(sandbox, FailingOn(client, [DAYS[3]], KeyboardInterrupt()), warehouse)
    assert [w[0] for w in _windows(warehouse)] == DAYS[:3]
    [(status, error)] = _runs(warehouse)
    assert status == "interrupted" and "Ctrl-C" in error


def test_a_failing_rollback_does_not_hide_the_error_that_caused_it(sandbox, client, warehouse, monkeypatch):
    def disk_full(store, bounds):
        # As after a full disk: DuckDB has already ended the transaction when the error comes.
        store.conn.execute("ROLLBACK")
        raise duckdb.IOException("could not write file: No space left on device")

    monkeypatch.setattr(BatchStore, "mark_seen", disk_full)
    # The warehouse names the full disk in one sentence; the cause it wraps keeps the note.
    with pytest.raises(NoSpaceLeft, match="no space left on device at .*could not write file") as raised:
        _sync(sandbox, client, warehouse)
    cause = raised.value.__cause__
    assert isinstance(cause, duckdb.IOException)
    assert any("rollback" in note for note in cause.__notes__)
    [(status, error)] = _runs(warehouse)
    assert status == "failed" and "No space left on device" in error


def test_the_run_is_succeeded_only_after_the_derived_refresh(sandbox, client, warehouse, monkeypatch):
    seen = []
    refresh = type(warehouse).refresh_derived

    def watched(self, *tables):
        seen.append(_runs_while_held(self))
        return refresh(self, *tables)

    monkeypatch.setattr(type(warehouse), "refresh_derived", watched)
    result = _sync(sandbox, client, warehouse, refresh_derived=True)
    assert result.status == "succeeded" and seen == [["running"]]
    with warehouse.connect(read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM culture_vat_daily").fetchone()[0] > 0


def test_a_failing_derived_refresh_is_the_runs_failure(sandbox, client, warehouse, monkeypatch):
    def overflowing(self, *tables):
        raise duckdb.OutOfRangeException("Overflow in SUM of BIGINT")

    monkeypatch.setattr(type(warehouse), "refresh_derived", overflowing)
    with pytest.raises(sync.SyncFailed, match="derived refresh failed: OutOfRangeException"):
        _sync(sandbox, client, warehouse, refresh_derived=True)
    assert [w[0] for w in _windows(warehouse)] == DAYS, "the windows themselves are stored"
    [(status, error)] = _runs(warehouse)
    assert status == "failed" and "Overflow in SUM" in error


def _runs_while_held(warehouse):
    with warehouse.connect() as conn:
        return [r[0] for r in conn.execute("SELECT status FROM sync_runs").fetchall()]

"""The sync against a broken or hostile upstream (the sandbox's faults): conflicting copies,
records accepted far from their window, pages that never end or cycle. Nothing is resolved
silently, nothing is lost, every loop is bounded and the window says why it is not final."""

from __future__ import annotations

import datetime as dt

import orjson
from openpyxl import load_workbook

from point3_pipeline import sync
from point3_pipeline.client import Point3Client
from point3_pipeline.limits import Limits
from point3_pipeline.reports import render_tax_report, tax
from point3_pipeline.status import format_status
from tests.conftest import FAST_RETRY, SANDBOX_NOW, sandbox_days

DAY = SANDBOX_NOW.date() - dt.timedelta(days=3)


def _one_day(sandbox, client, warehouse, day=DAY, **options):
    return sync.sync_range(client, warehouse, day, day, clock=sandbox.state.clock.now, **options)


def _stored(warehouse, signature):
    with warehouse.connect(read_only=True) as conn:
        return conn.execute(
            "SELECT total_charge, record_hash FROM payments WHERE signature = ?", [signature]
        ).fetchone()


def _rejected(warehouse):
    with warehouse.connect(read_only=True) as conn:
        return conn.execute(
            "SELECT signature, reason, raw_text, copies, window_date FROM rejected_records ORDER BY raw_text"
        ).fetchall()


def test_conflicting_copies_are_quarantined_the_stored_content_kept_and_the_day_not_final(
    sandbox, client, warehouse, tmp_path
):
    known = next(o for d, o in sandbox_days(sandbox) if d == DAY and not o["isCanceled"])
    _one_day(sandbox, client, warehouse)
    before = _stored(warehouse, known["signature"])
    fresh = {**known, "signature": "N" * 32, "orderIdFromClient": "fresh"}
    # The day's pages now list `known` twice (the sandbox's own and a dearer copy) and a
    # never-seen signature twice with different amounts: 1,000 and 9,999,999 won.
    sandbox.inject(DAY, orjson.dumps({**known, "totalCharge": 9_999_999}))
    sandbox.inject(DAY, orjson.dumps({**fresh, "totalCharge": 1_000}))
    sandbox.inject(DAY, orjson.dumps({**fresh, "totalCharge": 9_999_999}))
    result = _one_day(sandbox, client, warehouse)
    [window] = result.windows
    assert window.walks > 1, "copies that conflict are walked again first"
    assert not window.is_complete and "conflicting copies of 2 payment(s)" in window.incomplete_reason
    assert _stored(warehouse, known["signature"]) == before, "the stored content stays"
    assert _stored(warehouse, "N" * 32) is None, "neither conflicting copy becomes a payment"
    rejected = _rejected(warehouse)
    assert sorted(r[0] for r in rejected) == sorted([known["signature"]] * 2 + ["N" * 32] * 2)
    for signature, reason, _, copies, window_date in rejected:
        assert "conflicting copies" in reason and signature in reason
        assert (copies, window_date) == (1, DAY)
    status = format_status(warehouse)
    assert "conflicting copies" in status and known["signature"] in status
    assert f"{DAY}: conflicting copies of 2 payment(s)" in status
    warehouse.refresh_derived()
    report = render_tax_report(warehouse, f"{DAY:%Y-%m}", tmp_path / "reports", now=SANDBOX_NOW)
    cells = [" ".join(str(c.value) for c in row) for row in load_workbook(report.path)[tax.CHECKS].iter_rows()]
    listed = [c for c in cells if "conflicting copies" in c]
    assert len(listed) == 4 and sum(known["signature"] in c for c in listed) == 2


def test_a_record_accepted_far_from_its_window_is_quarantined_not_booked(sandbox, client, warehouse):
    template = next(o for d, o in sandbox_days(sandbox) if d == DAY)
    far = [
        {**template, "signature": "F" * 32, "timeStampOnAccept": "29991231235959"},
        {**template, "signature": "M" * 32, "timeStampOnAccept": f"{DAY - dt.timedelta(days=31):%Y%m%d}120000"},
    ]
    for record in far:
        sandbox.inject(DAY, orjson.dumps(record))
    result = _one_day(sandbox, client, warehouse)
    assert result.windows[0].is_complete and result.total("rejected") == 2
    with warehouse.connect(read_only=True) as conn:
        booked = conn.execute("SELECT count(*) FROM payments WHERE signature IN (?, ?)", ["F" * 32, "M" * 32]).fetchone()
    assert booked == (0,)
    reasons = {r[0]: r[1] for r in _rejected(warehouse)}
    assert "29991231235959" in reasons["F" * 32] and f"outside its window {DAY}" in reasons["F" * 32]
    assert "outside its window" in reasons["M" * 32]


def test_endless_pages_stop_at_the_bound_keep_their_records_and_the_run_goes_on(sandbox, warehouse):
    sandbox.state.set_faults(endless_pages=True)
    limits = Limits(max_pages_per_window=4)
    with Point3Client(sandbox.url, sandbox.key, retry=FAST_RETRY, page_size=30) as client:
        result = sync.sync_range(client, warehouse, DAY, DAY + dt.timedelta(days=1), clock=sandbox.state.clock.now,
                                 limits=limits)
    assert result.status == "succeeded" and len(result.windows) == 2
    for window in result.windows:
        assert (window.pages, window.records_read, window.distinct_payments) == (4, 120, 120)
        assert not window.is_complete and "max_pages_per_window" in window.incomplete_reason
    with warehouse.connect(read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] == 240
        logged = conn.execute("SELECT incomplete_reason FROM sync_windows ORDER BY window_date").fetchall()
    assert all("4 pages per window" in r[0] for r in logged)


def test_pages_that_cycle_stop_at_once_and_the_window_is_not_final(sandbox, warehouse):
    sandbox.state.set_faults(cycle_pages=True)
    with Point3Client(sandbox.url, sandbox.key, retry=FAST_RETRY, page_size=30) as client:
        result = _one_day(sandbox, client, warehouse)
    [window] = result.windows
    assert (window.walks, window.pages) == (1, 2)
    assert not window.is_complete and "cycle" in window.incomplete_reason
    assert window.distinct_payments == 60

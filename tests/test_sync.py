"""The sync against the sandbox over loopback, into real DuckDB files."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys

import duckdb
import httpx
import pytest

from point3_pipeline import sync
from point3_pipeline.client import Point3Client
from point3_pipeline.models import KST, parse_order
from point3_pipeline.sandbox.process import spawn
from point3_pipeline.warehouse import Warehouse
from tests.conftest import (
    FAST_RETRY,
    SANDBOX_NOW,
    expected_totals,
    make_sandbox,
    sandbox_days,
    sandbox_first_day,
    warehouse_state,
    warehouse_totals,
)


def full_sync(server, warehouse, client, *, until=None):
    result = sync.sync_range(
        client, warehouse, sandbox_first_day(server), until or server.state.clock.now().date(),
        clock=server.state.clock.now,
    )
    warehouse.refresh_derived()
    return result


def test_full_history_equals_the_sandbox_to_the_won(sandbox, client, warehouse):
    result = full_sync(sandbox, warehouse, client)
    assert result.status == "succeeded"
    assert warehouse_totals(warehouse) == expected_totals(sandbox)
    with warehouse.connect(read_only=True) as conn:
        count, with_type = conn.execute(
            "SELECT count(*), count(culture_expense_type) FROM payments"
        ).fetchone()
        assert count == len(sandbox_days(sandbox))
        assert with_type < count, "the sandbox's doc-shaped records (no type) land in the unknown bucket"
        unknown = conn.execute(
            "SELECT sum(payment_count) FROM culture_vat_daily WHERE culture_expense_type = 'unknown'"
        ).fetchone()[0]
        assert unknown == count - with_type
    # Only today's window is open; every earlier day is final.
    assert result.incomplete_days == [SANDBOX_NOW.date()]


def test_incremental_runs_pick_up_new_payments_and_converge(sandbox, client, warehouse):
    full_sync(sandbox, warehouse, client)
    sandbox.state.clock.advance(6 * 3600)
    for _ in range(3):
        sandbox.state.add_payment()
    result = sync.sync_incremental(
        client, warehouse, start_date=sandbox_first_day(sandbox), clock=sandbox.state.clock.now
    )
    # From the last complete day minus the 2-day lookback through today.
    assert result.first_day == SANDBOX_NOW.date() - dt.timedelta(days=3)
    assert result.total("payments_new") >= 3
    warehouse.refresh_derived()
    assert warehouse_totals(warehouse) == expected_totals(sandbox)
    before = warehouse_state(warehouse)
    again = sync.sync_incremental(client, warehouse, start_date=sandbox_first_day(sandbox), clock=sandbox.state.clock.now)
    assert again.total("payments_new") == 0 and again.total("payments_changed") == 0
    assert warehouse_state(warehouse) == before


@pytest.mark.parametrize(
    ("days", "complete_days", "expected_first"),
    [
        (10, [], 0),  # nothing synced yet: from the start
        (10, list(range(0, 10)), 7),  # all complete: last complete (9) minus 2
        (10, [0, 1, 2, 4, 5, 6, 7, 8, 9], 3),  # a gap at day 3 comes first
        (10, [0, 1, 2, 3, 4, 5], 3),  # last complete 5, minus 2
    ],
)
def test_plan_incremental(tmp_path, days, complete_days, expected_first):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    start = dt.date(2026, 1, 1)
    with warehouse.connect() as conn:
        conn.execute(
            "INSERT INTO sync_runs (run_id, mode, first_day, last_day, started_at, status, windows_planned) "
            "VALUES (1, 'range', ?, ?, now(), 'succeeded', 0)", [start, start]
        )
        for offset in complete_days:
            conn.execute(
                "INSERT INTO sync_windows VALUES (1, ?, now(), now(), now(), now(), 1, 1, 0, 0, 0, 0, 0, 0, 0, true, NULL)",
                [start + dt.timedelta(days=offset)],
            )
    first, last = sync.plan_incremental(warehouse, start, start + dt.timedelta(days=days - 1))
    assert first == start + dt.timedelta(days=expected_first)
    assert last == start + dt.timedelta(days=days - 1)


def test_late_cancellations_are_detected_with_a_time_and_a_lower_bound(sandbox, client, warehouse):
    full_sync(sandbox, warehouse, client)
    now = sandbox.state.clock.now()
    days = {day: [o for d, o in sandbox_days(sandbox) if d == day and not o["isCanceled"]] for day in
            (now.date(), now.date() - dt.timedelta(days=5), now.date() - dt.timedelta(days=18))}
    same_day, days_later, weeks_later = (days[d][0]["signature"] for d in sorted(days, reverse=True))
    for signature in (same_day, days_later, weeks_later):
        sandbox.state.cancel(signature)
    # Nothing is visible before the next 5-minute batch.
    sync.sync_incremental(client, warehouse, start_date=sandbox_first_day(sandbox), clock=sandbox.state.clock.now)
    with warehouse.connect(read_only=True) as conn:
        assert conn.execute(
            "SELECT count(*) FROM payments WHERE is_canceled AND signature IN (?, ?, ?)",
            [same_day, days_later, weeks_later],
        ).fetchone()[0] == 0
    sandbox.state.clock.advance(5 * 60)
    first_seen_active = sandbox.state.clock.now()
    sandbox.state.clock.advance(60)
    incremental = sync.sync_incremental(
        client, warehouse, start_date=sandbox_first_day(sandbox), clock=sandbox.state.clock.now
    )
    detected_by_sync = sandbox.state.clock.now()
    sandbox.state.clock.advance(3600)
    swept = sync.sweep(client, warehouse, days=35, clock=sandbox.state.clock.now)
    warehouse.refresh_derived()
    # The incremental run (2-day lookback) finds today's; the sweep finds the older ones.
    assert incremental.total("newly_canceled") >= 1
    assert swept.total("newly_canceled") >= 2
    with warehouse.connect(read_only=True) as conn:
        rows = dict(
            (r[0], r[1:])
            for r in conn.execute(
                "SELECT signature, detected_at, canceled_after, payment_date, is_anomaly, detected_run_id FROM cancellations "
                "WHERE signature IN (?, ?, ?)",
                [same_day, days_later, weeks_later],
            ).fetchall()
        )
    assert set(rows) == {same_day, days_later, weeks_later}
    assert rows[same_day][0] <= detected_by_sync
    assert rows[same_day][4] == incremental.run_id
    assert rows[days_later][4] == rows[weeks_later][4] == swept.run_id
    for detected_at, canceled_after, payment_date, is_anomaly, _ in rows.values():
        assert canceled_after is not None and canceled_after < detected_at
        assert canceled_after <= first_seen_active + dt.timedelta(hours=2)
        assert not is_anomaly
    assert rows[weeks_later][2] == now.date() - dt.timedelta(days=18)
    assert warehouse_totals(warehouse) == expected_totals(sandbox)


def test_a_payment_seen_cancelled_then_active_is_an_anomaly(sandbox, client, warehouse):
    full_sync(sandbox, warehouse, client)
    today = sandbox.state.clock.now().date()
    signature = next(o["signature"] for d, o in sandbox_days(sandbox) if d == today and not o["isCanceled"])
    sandbox.state.cancel(signature)
    sandbox.state.clock.advance(600)
    sync.sync_range(client, warehouse, today, today, clock=sandbox.state.clock.now)
    payment = sandbox.state.store.by_signature[signature]
    payment.cancel_at = None  # point3 un-cancels it: not documented, so it must show, not vanish
    payment._json = [None, None]
    sandbox.state.clock.advance(600)
    sync.sync_range(client, warehouse, today, today, clock=sandbox.state.clock.now)
    warehouse.refresh_derived()
    with warehouse.connect(read_only=True) as conn:
        row = conn.execute(
            "SELECT is_anomaly, reverted_at IS NOT NULL, is_canceled_now FROM cancellations WHERE signature = ?",
            [signature],
        ).fetchone()
    assert row == (True, True, False)


@pytest.mark.parametrize("sort_order", ["asc", "desc"])
@pytest.mark.parametrize("end_inclusive", [True, False])
def test_window_ends_and_sort_order_give_one_row_per_payment(sort_order, end_inclusive, tmp_path):
    with make_sandbox(days=6, per_day=40) as server:
        midnight = dt.datetime.combine(SANDBOX_NOW.date() - dt.timedelta(days=2), dt.time(), KST)
        server.state.clock.set_now(midnight)
        exactly_midnight = server.state.add_payment()
        server.state.clock.set_now(SANDBOX_NOW)
        server.state.set_faults(sort_order=sort_order, end_inclusive=end_inclusive)
        warehouse = Warehouse(tmp_path / "w.duckdb")
        with Point3Client(server.url, server.key, retry=FAST_RETRY) as client:
            full_sync(server, warehouse, client)
        with warehouse.connect(read_only=True) as conn:
            assert conn.execute(
                "SELECT payment_date FROM payments WHERE signature = ?", [exactly_midnight["signature"]]
            ).fetchone()[0] == midnight.date()
        assert warehouse_totals(warehouse) == expected_totals(server)


@pytest.mark.slow
def test_faults_leave_the_same_warehouse_as_a_clean_run(tmp_path):
    with make_sandbox(days=10, per_day=60) as server:
        clean = Warehouse(tmp_path / "clean.duckdb")
        with Point3Client(server.url, server.key, retry=FAST_RETRY) as client:
            full_sync(server, clean, client)
        server.state.set_faults(
            error_rate=0.15, rate_limit_rate=0.1, retry_after_seconds=0, truncate_rate=0.1,
            drift_per_page=1, sort_order="desc", max_page_size=50,
        )
        faulty = Warehouse(tmp_path / "faulty.duckdb")
        with Point3Client(server.url, server.key, retry=FAST_RETRY, page_size=100) as client:
            result = full_sync(server, faulty, client)
            assert client.page_size == 50
        server.state.set_faults(
            error_rate=0, rate_limit_rate=0, truncate_rate=0, drift_per_page=0, sort_order="asc", max_page_size=None
        )
        # The drift added payments; one more pass (as the next scheduled run would) brings both
        # warehouses to the sandbox's final state.
        with Point3Client(server.url, server.key, retry=FAST_RETRY) as client:
            full_sync(server, clean, client)
            full_sync(server, faulty, client)
        assert result.total("retries") > 0
        assert max(w.walks for w in result.windows) > 1
        with faulty.connect(read_only=True) as conn:
            logged = conn.execute("SELECT sum(retries) FROM sync_windows").fetchone()[0]
        assert logged == result.total("retries")
        assert warehouse_totals(faulty) == warehouse_totals(clean) == expected_totals(server)
        assert [r[:9] for r in warehouse_state(faulty)] == [r[:9] for r in warehouse_state(clean)]


HOSTILE = [
    {"isCanceled": False, "totalCharge": 1000, "taxFreeAmount": 900, "vat": 100},  # no signature
    {"signature": "HOSTILE00000000000000000000000002", "isCanceled": False, "totalCharge": "1000",
     "taxFreeAmount": 900, "vat": 100},
    {"signature": "HOSTILE00000000000000000000000003", "isCanceled": False, "totalCharge": 1000.5,
     "taxFreeAmount": 900, "vat": 100},
    {"signature": "HOSTILE00000000000000000000000004", "isCanceled": False, "totalCharge": 1000,
     "taxFreeAmount": 900, "vat": 100, "cultureExpenseType": "e"},
    {"signature": "HOSTILE00000000000000000000000005", "isCanceled": False, "totalCharge": 1000,
     "taxFreeAmount": 900, "vat": 100, "timeStampOnAccept": "2026-03-18 10:00"},
    {"signature": "HOSTILE00000000000000000000000006", "totalCharge": 1000, "taxFreeAmount": 900, "vat": 100},
    "not an object",
    {"signature": "HOSTILE00000000000000000000000008", "isCanceled": False, "totalCharge": 2**63,
     "taxFreeAmount": 900, "vat": 100},  # fits JSON parsers' u64, not the warehouse's BIGINT
    {"signature": "HOSTILE00000000000000000000000009", "isCanceled": False, "totalCharge": 1000,
     "taxFreeAmount": 900, "vat": 100, "purchasingProductName": "lone \ud800 surrogate"},
    {"signature": "HOSTILE00000000000000000000000010", "isCanceled": False, "totalCharge": 1000,
     "taxFreeAmount": 900, "vat": 100, "deep": json.loads("[" * 300 + "]" * 300)},
]
STORED = [
    "=HYPERLINK(\"http://evil.example\",\"click\")", "+SUM(1,2)", "-10+20", "@cmd", "'quoted' \"double\"",
    "line one\nline two", "이모지 🎫🎭", "긴 이름 " + "가" * 10_000,
]


def test_hostile_records_are_stored_or_quarantined_never_lost(sandbox, client, warehouse):
    at = SANDBOX_NOW - dt.timedelta(days=1, hours=3)
    stored = [
        {"signature": f"STORED{i:026d}", "isCanceled": False, "totalCharge": 11000, "taxFreeAmount": 10000,
         "vat": 1000, "purchasingProductName": name, "orderIdFromClient": name, "extraField": {"nested": [1, 2]}}
        for i, name in enumerate(STORED)
    ]
    # The first hostile record twice, byte for byte: one row, two copies.
    sandbox.state.inject_records(HOSTILE + [HOSTILE[0]] + stored, at)
    full_sync(sandbox, warehouse, client)
    full_sync(sandbox, warehouse, client)  # a re-run counts the same rejections again, not new rows
    with warehouse.connect(read_only=True) as conn:
        rejected = conn.execute("SELECT reason, raw_text, times_seen, window_date FROM rejected_records").fetchall()
        copies = conn.execute("SELECT sum(copies), max(copies) FROM rejected_records").fetchone()
        logged, walks = conn.execute(
            "SELECT rejected, walks FROM sync_windows WHERE window_date = ? ORDER BY run_id DESC LIMIT 1", [at.date()]
        ).fetchone()
        names = {r[0]: r[1] for r in conn.execute(
            "SELECT signature, purchasing_product_name FROM payments WHERE signature LIKE 'STORED%'").fetchall()}
        extra = conn.execute(
            "SELECT raw_record->>'$.extraField.nested[1]' FROM payments WHERE signature = ?", [stored[0]["signature"]]
        ).fetchone()[0]
    assert len(rejected) == len(HOSTILE)
    # A repeated bad record asks for a confirming walk, which counts the same.
    assert copies == (len(HOSTILE) + 1, 2) and logged == len(HOSTILE) + 1 and walks == 2
    reasons = " | ".join(sorted(r[0] for r in rejected))
    for fragment in ("missing signature", "totalCharge is not an integer", "unknown cultureExpenseType",
                     "timeStampOnAccept", "isCanceled", "not an object", "beyond a 64-bit amount",
                     "cannot be stored as JSON"):
        assert fragment in reasons
    assert {r[2] for r in rejected} == {2}
    assert {r[3] for r in rejected} == {at.date()}
    assert names == {s["signature"]: s["purchasingProductName"] for s in stored}
    assert extra == "2"


def test_analyst_session_on_the_published_copy_during_a_sync(sandbox, client, warehouse):
    first = sandbox_first_day(sandbox)
    sync.sync_range(client, warehouse, first, first + dt.timedelta(days=3), clock=sandbox.state.clock.now)
    published = warehouse.publish()
    analyst = duckdb.connect(str(published), read_only=True)
    try:
        before = analyst.execute("SELECT count(*) FROM payments").fetchone()[0]
        # The sync writes and publishes while the analyst's session stays open and queries.
        result = sync.sync_range(client, warehouse, first, sandbox.state.clock.now().date(),
                                 clock=sandbox.state.clock.now)
        assert analyst.execute("SELECT count(*) FROM payments").fetchone()[0] == before
        warehouse.publish()
        assert analyst.execute("SELECT count(*) FROM payments").fetchone()[0] == before
    finally:
        analyst.close()
    assert result.status == "succeeded"
    with duckdb.connect(str(published), read_only=True) as fresh:
        assert fresh.execute("SELECT count(*) FROM payments").fetchone()[0] == len(sandbox_days(sandbox))


def test_newer_schema_is_refused(warehouse):
    with warehouse.connect() as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', now())")
    from point3_pipeline.warehouse import WarehouseError

    with pytest.raises(WarehouseError, match="newer than this point3-pipeline knows"):
        with Warehouse(warehouse.path).connect():
            pass


def test_a_failing_migration_leaves_nothing_behind(tmp_path, monkeypatch):
    from point3_pipeline import warehouse as warehouse_module

    broken = warehouse_module.Migration(1, "broken", "CREATE TABLE half_done (x INTEGER); SELECT * FROM missing_table;")
    monkeypatch.setattr(warehouse_module, "migrations", lambda: [broken])
    with pytest.raises(duckdb.Error):
        with Warehouse(tmp_path / "w.duckdb").connect():
            pass
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "half_done" not in tables
    assert "schema_migrations" in tables


# Runs a sync in its own process (so the test can SIGKILL it) with a batch policy the test
# sets; one line per window as soon as its batch committed.
KILLABLE_SYNC = """
import datetime as dt, os, sys
from point3_pipeline import sync
from point3_pipeline.client import Point3Client
from point3_pipeline.warehouse import Warehouse

def progress(done, total, window):
    print(f"[{done}/{total}] {window.window_date}", flush=True)

first, last, per_batch = dt.date.fromisoformat(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]), int(sys.argv[3])
policy = sync.BatchPolicy(max_records=10**9, max_seconds=None, max_windows=per_batch)
with Point3Client(os.environ["POINT3_API_URL"], os.environ["POINT3_SECRET_KEY"]) as client:
    sync.sync_range(client, Warehouse(os.environ["POINT3_WAREHOUSE"]), first, last, batch=policy, progress=progress)
"""


def _wait_stalled(url: str) -> None:
    """Block until the sandbox holds a request at its armed stall gate (bounded)."""
    for _ in range(10):
        if httpx.get(f"{url}/_sandbox/stall", params={"wait_seconds": 30}).json()["result"]["held"]:
            return
    raise AssertionError("the sync never reached the stalled request")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("per_batch", "stalled_window", "committed"),
    [
        (1, 4, 3),  # one window per transaction: windows 1-3 are in, 4 is not
        (3, 5, 3),  # three per transaction: 1-3 are in; 4 was read but its batch (4-6) never committed
    ],
)
def test_a_killed_sync_rolls_back_its_window_and_a_rerun_converges(tmp_path, per_batch, stalled_window, committed):
    server, info = spawn(["--seed", "11", "--days", "8", "--per-day", "300"],
                         tmp_path / "sandbox.json", stdout=subprocess.DEVNULL)
    try:
        env = {**os.environ, "POINT3_API_URL": info["url"], "POINT3_SECRET_KEY": info["key"],
               "POINT3_WAREHOUSE": str(tmp_path / "w.duckdb")}
        today = dt.datetime.now(KST).date()
        days = [today - dt.timedelta(days=7 - i) for i in range(8)]
        httpx.post(f"{info['url']}/_sandbox/stall", json={"startDate": str(days[stalled_window - 1])}).raise_for_status()
        victim = subprocess.Popen([sys.executable, "-c", KILLABLE_SYNC, str(days[0]), str(today), str(per_batch)],
                                  env=env, stdout=subprocess.PIPE, text=True)
        _wait_stalled(info["url"])
        # Inside window k's first request; the batch before it is committed once its line is out.
        lines = [victim.stdout.readline() for _ in range(committed)]
        assert lines[-1].startswith(f"[{committed}/8] {days[committed - 1]}"), lines
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        httpx.post(f"{info['url']}/_sandbox/stall/release").raise_for_status()
        warehouse = Warehouse(tmp_path / "w.duckdb")
        with warehouse.connect(read_only=True) as conn:
            windows = [r[0] for r in conn.execute("SELECT window_date FROM sync_windows ORDER BY 1").fetchall()]
            # A payment whose day has no window row would be half a window; only a payment at
            # exactly midnight may come from the previous day's window (inclusive ends).
            stray = conn.execute(
                "SELECT count(*) FROM payments WHERE payment_date NOT IN (SELECT window_date FROM sync_windows) "
                "AND strftime(accepted_at, '%H:%M:%S') <> '00:00:00'"
            ).fetchone()[0]
        assert windows == days[:committed]
        assert stray == 0
        sync_cmd = [sys.executable, "-m", "point3_pipeline.cli", "sync", "--since", str(days[0])]
        subprocess.run(sync_cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        once = warehouse_state(warehouse)
        subprocess.run(sync_cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        assert warehouse_state(warehouse) == once
        with warehouse.connect(read_only=True) as conn:
            statuses = [r[0] for r in conn.execute("SELECT status FROM sync_runs ORDER BY run_id").fetchall()]
            duplicates = conn.execute("SELECT count(*) - count(DISTINCT signature) FROM payments").fetchone()[0]
        assert statuses == ["interrupted", "succeeded", "succeeded"]
        assert duplicates == 0
        truth = httpx.get(f"{info['url']}/_sandbox/orders").json()
        assert {row[0] for row in once} == {o["signature"] for o in truth["result"]["orders"]}
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)


def test_a_payment_stored_far_from_its_window_is_found_by_the_exact_lookup(sandbox, client, warehouse):
    full_sync(sandbox, warehouse, client)
    day = SANDBOX_NOW.date() - dt.timedelta(days=3)
    signature = next(o["signature"] for d, o in sandbox_days(sandbox) if d == day and not o["isCanceled"])
    # As if an earlier sync had stored it under a far-away day: the fast lookup near the
    # window's day misses it, the insert hits the primary key, the exact lookup takes over.
    with warehouse.connect() as conn:
        conn.execute("UPDATE payments SET payment_date = payment_date - 40 WHERE signature = ?", [signature])
    sandbox.state.cancel(signature)
    sandbox.state.clock.advance(600)
    result = sync.sync_range(client, warehouse, day, day, clock=sandbox.state.clock.now)
    assert (result.total("payments_new"), result.total("newly_canceled")) == (0, 1)
    with warehouse.connect(read_only=True) as conn:
        rows = conn.execute(
            "SELECT payment_date, is_canceled FROM payments WHERE signature = ?", [signature]
        ).fetchall()
        events = conn.execute(
            "SELECT event FROM payment_events WHERE signature = ? ORDER BY observed_at", [signature]
        ).fetchall()
    assert rows == [(day, True)]
    assert [e[0] for e in events] == ["first_seen", "canceled"]


def test_every_stored_column_is_the_field_the_contract_check_read(sandbox, client, warehouse):
    """The warehouse takes fields out of the validated JSON in SQL: they must be exactly the
    Order that parse_order made, for every payment and every column."""
    at = SANDBOX_NOW - dt.timedelta(days=2, hours=5)
    odd = [
        {"signature": f"ODD{i:029d}", "isCanceled": i % 2 == 0, "totalCharge": 5_500, "taxFreeAmount": 5_000,
         "vat": 500, "cultureExpenseType": code, "timeStampOnAccept": accepted, "purchasingProductName": name}
        for i, (code, accepted, name) in enumerate([
            ("", "", 'quote " and \\ backslash'), (None, None, "줄\n바꿈"), ("g", "20260316000000", "🎭"),
        ])
    ]
    sandbox.state.inject_records(odd, at)
    full_sync(sandbox, warehouse, client)
    fields = ("total_charge", "tax_free_amount", "vat", "culture_expense_type", "payment_method_type",
              "is_canceled", "order_id_from_client", "purchasing_product_name", "user_id",
              "client_generated_user_id", "client_nickname", "client_identification", "accepted_at", "requested_at")
    with warehouse.connect(read_only=True) as conn:
        stored = {row[0]: row[1:] for row in conn.execute(f"SELECT signature, {', '.join(fields)} FROM payments").fetchall()}
    expected = {}
    for raw in sandbox.state.orders():
        order = parse_order(raw)
        expected[order.signature] = tuple(getattr(order, name) for name in fields)
    assert stored == expected


class _ShiftOnFirstWalk:
    """A client whose first walk has a bad record pushed across a page boundary by a payment
    arriving mid-walk (seen twice), and whose second walk is clean."""

    def __init__(self):
        from point3_pipeline.client import ClientStats

        self.stats = ClientStats()
        self.walks = 0

    def iter_payment_pages(self, start, end):
        from point3_pipeline.client import Page, RejectedRecord

        self.walks += 1
        ok = {"isCanceled": False, "totalCharge": 1_100, "taxFreeAmount": 1_000, "vat": 100}
        a, b = parse_order({"signature": "A" * 32, **ok}), parse_order({"signature": "B" * 32, **ok})
        bad = RejectedRecord.from_raw({"signature": "C" * 32, **ok, "vat": "100"}, "vat is not an integer amount")
        if self.walks == 1:
            yield Page(page=1, count=2, orders=[a], rejected=[bad], record_count=2)
            yield Page(page=2, count=2, orders=[b], rejected=[bad], record_count=2)
            yield Page(page=3, count=2, orders=[], rejected=[], record_count=0)
        else:
            yield Page(page=1, count=2, orders=[a, b], rejected=[], record_count=2)
            yield Page(page=2, count=2, orders=[], rejected=[bad], record_count=1)


def test_a_bad_record_seen_twice_because_pages_shifted_is_one_copy(warehouse):
    day = SANDBOX_NOW.date() - dt.timedelta(days=3)
    result = sync.sync_range(_ShiftOnFirstWalk(), warehouse, day, day, clock=lambda: SANDBOX_NOW)
    [window] = result.windows
    assert (window.walks, window.is_complete, window.rejected, window.distinct_payments) == (2, True, 1, 2)
    with warehouse.connect(read_only=True) as conn:
        assert conn.execute("SELECT copies FROM rejected_records").fetchall() == [(1,)]


class _ThresholdProbe(_ShiftOnFirstWalk):
    """Records the collector's threshold while the sync reads."""

    def iter_payment_pages(self, start, end):
        import gc

        self.seen_threshold = gc.get_threshold()[0]
        yield from super().iter_payment_pages(start, end)


def test_a_run_collects_cycles_less_often_and_restores_the_processs_setting(warehouse):
    import gc

    from point3_pipeline.sync.run import RUN_GC_THRESHOLD, _FewerCollections

    before = gc.get_threshold()
    day = SANDBOX_NOW.date() - dt.timedelta(days=3)
    probe = _ThresholdProbe()
    sync.sync_range(probe, warehouse, day, day, clock=lambda: SANDBOX_NOW)
    assert probe.seen_threshold == max(before[0], RUN_GC_THRESHOLD)
    assert gc.get_threshold() == before
    # Runs that overlap (merchants on the fleet's threads): the last one out restores.
    scope = _FewerCollections()
    first, second = scope.during_run(), scope.during_run()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == max(before[0], RUN_GC_THRESHOLD)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before

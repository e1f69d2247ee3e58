"""The settlement roll-forward: the subset search and the payout rule as pure functions; against
the sandbox, payouts found, fees implied, deposits matched, discrepancies shown; the version
fingerprint."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import load_workbook

from point3_pipeline import rollforward, sync
from point3_pipeline.client import Point3Client
from point3_pipeline.deposits import import_deposits
from point3_pipeline.imports import import_balances
from point3_pipeline.models import KST
from point3_pipeline.periods import Period
from point3_pipeline.reports import render_reconciliation_report, verify_report
from point3_pipeline.reports.reconciliation import PAYOUTS, build, check_reported_months
from point3_pipeline.rollforward import BusinessFee, Interval, Movement, Observation, Terms, classify, place
from point3_pipeline.sandbox.settlement import DEPOSIT_SHORTFALL
from point3_pipeline.subsets import subset_summing_to
from point3_pipeline.warehouse import Warehouse
from tests.conftest import FAST_RETRY, make_sandbox, sandbox_first_day
from tests.report_fixtures import Books, kst

FEB = "2026-02"
FEB_START = dt.datetime(2026, 2, 1, tzinfo=KST)
MAR_START = dt.datetime(2026, 3, 1, tzinfo=KST)
HISTORY_FROM = dt.datetime(2026, 1, 20, tzinfo=KST)
SANDBOX_TERMS = {"fee_ppm": 33_000, "fee_vat": True}
DECLARED = Terms(fee_ppm=33_000, fee_vat=True)
FEB_WEDNESDAYS = [dt.date(2026, 2, d) for d in (4, 11, 18, 25)]


# --- the subset search and the payout rule, as pure functions ------------------------------------

THOUSANDS = [-1_000, -2_000, -4_000, -8_000, -16_000, -32_000, -64_000]  # every sum has one subset


@pytest.mark.parametrize(("target", "values", "indices"), [
    (-8_000, THOUSANDS, (3,)),  # one cancellation
    (-34_000, THOUSANDS, (1, 5)),  # two
    (-42_000, THOUSANDS, (1, 3, 5)),  # three
    (-31_000, THOUSANDS, (0, 1, 2, 3, 4)),  # five
    (-127_000, THOUSANDS, (0, 1, 2, 3, 4, 5, 6)),  # all of them
    (-66_000, [-11_000, -22_000, -33_000, -66_000], (3,)),  # several fit: the fewest
    (-22_450, [22_000, -33_000, -11_000, -450], (0, 1, 2, 3)),  # an untimed sale among cancellations
    (-1_500, THOUSANDS, None),  # none fits
    (-128_000, THOUSANDS, None),  # more than all of them
    (0, THOUSANDS, None),  # nothing to explain
    (-5_000, [], None),  # nothing to explain it with
])  # fmt: skip
def test_subset_search(target, values, indices):
    found = subset_summing_to(target, values)
    assert (found.indices, found.cut_short) == (indices, False)
    if indices is not None:
        assert sum(values[k] for k in indices) == target


def test_subset_search_stops_at_its_bound_and_says_so():
    values = [-(2**k) * 1_000 - k for k in range(12)]  # every subset has its own sum: 4,096 of them
    target = values[0] + values[11]  # reached only with the last value, after ~4,000 steps
    found = subset_summing_to(target, values, steps=1_000)
    assert (found.indices, found.cut_short) == (None, True) and found.steps <= 1_000
    found = subset_summing_to(target, values)
    assert (found.indices, found.cut_short) == ((0, 11), False) and found.steps > 1_000


def _intervals(points: list[tuple[dt.datetime, int]], credits: list[int]) -> list[Interval]:
    """Observations (slot, balance) and what each interval between them is expected to credit."""
    seen = [Observation(at, at, balance, "api") for at, balance in points]
    return [Interval(a, b, sales=credit) for a, b, credit in zip(seen, seen[1:], credits)]


@pytest.mark.parametrize(("points", "credits", "payouts", "unexplained"), [
    # a daily payout at 00:00 with the credits of that instant: the balance rose, and is 0
    ([(kst(2026, 2, 9, 23, 30), -5_000), (kst(2026, 2, 10), 0)], [1_000_000], [995_000], [0]),
    # the same figures at 14:00: no payout time, a shortfall
    ([(kst(2026, 2, 10, 13, 30), -5_000), (kst(2026, 2, 10, 14), 0)], [1_000_000], [0], [-995_000]),
    # a payout of the balance at its cut-off, 00:00 the day before
    ([(kst(2026, 2, 9), 700_000), (kst(2026, 2, 9, 23, 30), 1_200_000), (kst(2026, 2, 10), 1_000_000)],
     [500_000, 500_000], [0, 700_000], [0, 0]),
    # a credit of 11,897 that never came, at 00:00: no balance of the week was 11,897
    ([(kst(2026, 2, 9), 700_000), (kst(2026, 2, 9, 23, 30), 1_200_000), (kst(2026, 2, 10), 1_688_103)],
     [500_000, 500_000], [0, 0], [0, -11_897]),
    # the balance fell beyond any cancellation: a payout at any time
    ([(kst(2026, 2, 10, 14), 1_000_000), (kst(2026, 2, 10, 14, 30), 400_000)], [0], [600_000], [0]),
    # the rule's stated limit: a missing credit equal to a 00:00 balance of the week reads as a payout
    ([(kst(2026, 2, 9), 11_897), (kst(2026, 2, 9, 23, 30), 511_897), (kst(2026, 2, 10), 511_897)],
     [500_000, 11_897], [0, 11_897], [0, 0]),
])  # fmt: skip
def test_a_fall_is_a_payout_by_the_balance_or_its_level(points, credits, payouts, unexplained):
    intervals = _intervals(points, credits)
    classify(intervals)
    assert ([i.payout for i in intervals], [i.unexplained for i in intervals]) == (payouts, unexplained)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_a_fall_made_by_several_cancellations_is_not_a_payout(count):
    """Cancellations first seen cancelled (bounds of weeks) explain a fall whatever their number,
    and the one that does not fit stays for its detection."""
    cancelled = [-v for v in THOUSANDS[:count]]
    intervals = _intervals([(kst(2026, 2, 10, 14), 1_000_000), (kst(2026, 2, 10, 14, 30), 1_000_000 - sum(cancelled)),
                            (kst(2026, 2, 10, 15), 1_000_000 - sum(cancelled))], [0, 0])  # fmt: skip
    weeks = (kst(2026, 2, 1), kst(2026, 2, 20))
    movements = [Movement("cancellation", f"s{n}", amount, *weeks) for n, amount in enumerate([*cancelled, 500])]
    outside = place(intervals, movements)
    classify(intervals)
    first, _ = intervals
    assert (first.cancellations, first.cancellation_count, first.payout, first.unexplained) == (sum(cancelled), count, 0, 0)
    assert [m.amount for m in outside] == [500]  # detected after the last observation


def test_beyond_the_search_bound_a_fall_stays_as_it_reads_and_the_period_says_so(monkeypatch):
    monkeypatch.setattr(rollforward, "HISTORY_SEARCH_STEPS", 0)  # the history's steps already spent
    points = [(kst(2026, 2, 10, 14), 1_000_000), (kst(2026, 2, 10, 14, 30), 958_000)]
    intervals = _intervals(points, [0])
    weeks = (kst(2026, 2, 1), kst(2026, 2, 20))
    outside = place(intervals, [Movement("cancellation", f"s{n}", v, *weeks) for n, v in enumerate([2_000, 8_000, 32_000])])
    classify(intervals)
    (interval,) = intervals
    assert (interval.search_cut_short, interval.cancellations, interval.payout) == (True, 0, 42_000)
    assert len(outside) == 3  # left for their detection, after the last observation
    history = rollforward.History([interval.opening, interval.closing], intervals, {}, outside)
    r = rollforward.roll(history, points[0][0], points[1][0])
    assert r.payouts == 42_000 and any("stopped at its bound in 1 interval" in n for n in r.notes)


def _checks(warehouse, monkeypatch, **env: str) -> dict[str, tuple]:
    """The two reconciliation checks, invoked on `warehouse` with these settings."""
    monkeypatch.setenv("POINT3_START_DATE", "2026-02-01")  # what the Dagster tests load the partitions with
    for name, value in {"POINT3_FEE_PERCENT": "3.3", "POINT3_FEE_VAT": "yes", **env}.items():
        monkeypatch.setenv(name, value)
    from dagster import build_asset_check_context

    from dagster_project.checks import payouts_have_deposits, unexplained_within_threshold
    from dagster_project.resources import WarehouseResource

    # The checks read the merchant `default` of the variables: this warehouse.
    monkeypatch.delenv("POINT3_MERCHANTS", raising=False)
    for name, value in {"POINT3_WAREHOUSE": str(warehouse.path), "POINT3_REPORTS_DIR": str(warehouse.path.parent / "reports"),
                        "POINT3_SECRET_KEY": "unused-by-checks", "POINT3_API_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(name, value)
    resource = WarehouseResource()
    out = {}
    for name, check in (("unexplained_within_threshold", unexplained_within_threshold),
                        ("payouts_have_deposits", payouts_have_deposits)):
        result = check(build_asset_check_context(), warehouse=resource)
        out[name] = (result.passed, result.severity, {k: v.value for k, v in result.metadata.items()})
    return out


def _books(tmp_path, terms: dict, *, uncredited: dt.datetime | None = None, deposits: bool = True) -> tuple:
    """The sandbox's history synced once (so every cancellation is first seen cancelled), its
    served balance history and its bank deposits imported."""
    with make_sandbox(days=60, per_day=30, seed=5) as server:
        state = server.state
        state.set_settlement_terms(**terms)
        if uncredited is not None:
            state.add_uncredited_payment(uncredited, 12_345)
        warehouse = Warehouse(tmp_path / "point3.duckdb")
        with Point3Client(server.url, server.key, retry=FAST_RETRY, page_size=100) as client:
            now = state.clock.now()
            sync.sync_range(client, warehouse, sandbox_first_day(server), now.date(), clock=state.clock.now)
        warehouse.refresh_derived()
        history = tmp_path / "balances.csv"
        history.write_text("observed_at,balance\n" + "".join(
            f"{slot.isoformat()},{balance}\n" for slot, balance in state.balance_history(HISTORY_FROM, now)))
        bank = tmp_path / "bank.csv"
        bank.write_bytes(state.deposits_csv(HISTORY_FROM, now).encode("cp949"))
        payouts = [(t, a) for t, a in state._ledger._payouts(state.store, now.timestamp())]
    import_balances(warehouse, history, now=now)
    if deposits:
        import_deposits(warehouse, bank, now=now)
    return warehouse, now, payouts


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("clean")
    warehouse, now, payouts = _books(tmp_path, SANDBOX_TERMS)
    result = render_reconciliation_report(warehouse, FEB, tmp_path / "reports", now=now, terms=DECLARED)
    return warehouse, now, payouts, result


@pytest.mark.slow
def test_clean_month_ties_with_weekly_payouts_found(clean):
    warehouse, _, payouts, result = clean
    t = result.totals
    feb = [(dt.datetime.fromtimestamp(at, KST), amount) for at, amount in payouts
           if FEB_START < dt.datetime.fromtimestamp(at, KST) <= MAR_START]
    assert [at.date() for at, _ in feb] == FEB_WEDNESDAYS
    assert t["unexplained"] == 0 and t["days_not_tying"] == 0 and t["days_without_observations"] == 0
    assert t["payouts"] == sum(a for _, a in feb) and t["payout_count"] == 4
    assert t["closing_balance"] == t["opening_balance"] + t["payments_in"] - t["cancellations_out"] - t["fees"] - t["payouts"]
    assert t["observation_count"] == t["imported_observation_count"] == 28 * 48
    assert (t["payouts_matched"], t["payouts_without_deposit"], t["deposits_without_payout"]) == (4, 0, 0)
    assert verify_report(warehouse, result.path) == []
    with warehouse.connect(read_only=True) as conn:
        rec = build(conn, Period.parse(FEB), DECLARED)
    found = [(p.after, p.by, p.amount) for p in rec.history.payouts() if FEB_START < p.by <= MAR_START]
    assert [(by - after, by, amount) for after, by, amount in found] == [
        (dt.timedelta(minutes=30), at, amount) for at, amount in feb
    ]  # each payout's bounds are the 30 minutes before it


@pytest.mark.slow
def test_the_tie_to_the_tax_workbook_is_timing_only(clean):
    _, _, _, result = clean
    t = result.totals
    # the same sales, counted when the balance moved instead of by payment day: close, not equal
    assert t["tax_sales"] == t["total_charge"]
    assert abs(t["tax_sales"] - t["payments_in"]) < t["payments_in"] // 10


@pytest.mark.slow
def test_workbook_lists_the_payouts_and_their_deposits(clean):
    _, _, _, result = clean
    rows = [[c.value for c in r] for r in load_workbook(result.path)[PAYOUTS].iter_rows()]
    kinds = [r[0] for r in rows if isinstance(r[0], str) and r[0].startswith(("맞음", "금액", "입금", "지급 없음"))]
    assert kinds == ["맞음 matched"] * 4


@pytest.mark.slow
@pytest.mark.parametrize("fee_vat", [False, True])
def test_implied_fee_is_the_sandbox_rate(tmp_path, fee_vat):
    sandbox_rate = 25_000  # 2.5%
    warehouse, now, _ = _books(tmp_path, {"fee_ppm": sandbox_rate, "fee_vat": fee_vat}, deposits=False)
    # declared nothing: the rate comes from the balance alone
    result = render_reconciliation_report(warehouse, FEB, tmp_path / "reports", now=now, terms=Terms())
    charged = sandbox_rate * 11 // 10 if fee_vat else sandbox_rate
    assert abs(result.totals["fee_ppm_implied"] - charged) <= 1_000  # 0.1 percentage point


@pytest.mark.slow
def test_a_missing_and_a_changed_deposit_are_reported(tmp_path, monkeypatch):
    terms = {**SANDBOX_TERMS, "missing_deposit_on": "2026-02-11", "differing_deposit_on": "2026-02-18"}
    warehouse, now, _ = _books(tmp_path, terms)
    result = render_reconciliation_report(warehouse, FEB, tmp_path / "reports", now=now, terms=DECLARED)
    t = result.totals
    assert (t["payouts_matched"], t["payouts_without_deposit"], t["deposits_without_payout"]) == (3, 1, 0)
    assert t["deposit_difference"] == -DEPOSIT_SHORTFALL and t["unexplained"] == 0
    assert t["payouts_overdue"] == 1  # deposits were imported more than 5 days after it
    rows = {r[0].value: [c.value for c in r] for r in load_workbook(result.path)[PAYOUTS].iter_rows()
            if isinstance(r[0].value, str)}
    assert rows["입금 없음 no deposit"][2].date() == dt.date(2026, 2, 11)
    assert rows["금액 차이 differs"][6] == -DEPOSIT_SHORTFALL
    with warehouse.connect(read_only=True) as conn:
        checks = check_reported_months(conn, DECLARED)
    assert [(c.month, c.unexplained, [p.by.date() for p in c.overdue]) for c in checks] == [
        (FEB, 0, [dt.date(2026, 2, 11)])]
    checks = _checks(warehouse, monkeypatch)
    assert checks["unexplained_within_threshold"][0]
    passed, severity, metadata = checks["payouts_have_deposits"]
    assert not passed and severity.value == "WARN" and metadata["payouts_without_deposit"] == 1
    # given more days than have passed since the payout, nothing is overdue yet
    assert _checks(warehouse, monkeypatch, POINT3_PAYOUT_DEPOSIT_DAYS="365")["payouts_have_deposits"][0]


@pytest.mark.slow
def test_unexplained_equals_a_payment_the_balance_never_got(tmp_path, monkeypatch):
    at = dt.datetime(2026, 2, 10, 14, 7, tzinfo=KST)
    warehouse, now, _ = _books(tmp_path, SANDBOX_TERMS, uncredited=at)
    result = render_reconciliation_report(warehouse, FEB, tmp_path / "reports", now=now, terms=DECLARED)
    fee = (12_345 * 33_000 + 500_000) // 1_000_000
    expected_gap = -(12_345 - fee - (fee + 5) // 10)
    assert result.totals["unexplained"] == expected_gap
    assert result.totals["days_not_tying"] == 1 and result.totals["payouts_without_deposit"] == 0
    wb = load_workbook(result.path)
    days = {r[0].value.date(): [c.value for c in r] for r in wb["일별 대사"].iter_rows() if isinstance(r[0].value, dt.datetime)}
    assert days[dt.date(2026, 2, 10)][12] == expected_gap
    passed, _, metadata = _checks(warehouse, monkeypatch)["unexplained_within_threshold"]
    assert not passed and f"{FEB}: {expected_gap:+,} won unexplained" in metadata["months_beyond"]
    assert _checks(warehouse, monkeypatch, POINT3_UNEXPLAINED_THRESHOLD_WON=str(-expected_gap))["unexplained_within_threshold"][0]


UNCREDITED_GAP = 11_897  # 12,345 less the 3.3% fee and its VAT


@pytest.mark.slow
@pytest.mark.parametrize(("terms", "shown_as"), [
    ({"payout": "daily", "payout_delay_days": 2}, "unexplained"),  # credited at once, at 14:07
    ({"credit_delay_days": 1}, "deposit difference"),  # due at Wednesday 00:00, with the weekly payout
    ({"payout": "daily", "payout_delay_days": 1, "credit_delay_days": 1}, "deposit difference"),  # the payout emptied it
    ({"payout": "daily", "payout_delay_days": 2, "credit_delay_days": 1}, "unexplained with the payout"),
])  # fmt: skip
def test_a_payment_never_credited_shows_where_the_rule_says(tmp_path, terms, shown_as):
    """The payout rule's stated limits: a credit due at a payout's instant cannot be told from the
    payout by the balance; it shows in the deposits, or with the payout as unexplained."""
    warehouse, now, payouts = _books(tmp_path, {**SANDBOX_TERMS, **terms}, uncredited=kst(2026, 2, 10, 14, 7))
    declared = Terms(fee_ppm=33_000, fee_vat=True, credit_delay_days=terms.get("credit_delay_days", 0))
    t = render_reconciliation_report(warehouse, FEB, tmp_path / "reports", now=now, terms=declared).totals
    paid = [a for at, a in payouts if FEB_START.timestamp() < at <= MAR_START.timestamp()]
    got = (t["unexplained"], t["deposit_difference"], t["payout_count"], t["payouts_matched"], t["deposits_without_payout"])
    n = len(paid)
    if shown_as == "unexplained":
        assert got == (-UNCREDITED_GAP, 0, n, n, 0)
    elif shown_as == "deposit difference":  # the payout is read as paid + the gap; its deposit says otherwise
        assert got == (0, -UNCREDITED_GAP, n, n, 0) and t["payouts"] == sum(paid) + UNCREDITED_GAP
    else:  # no payout's level: the day's payout and the gap stay unexplained together
        due = [a for at, a in payouts if at == kst(2026, 2, 11).timestamp()]
        assert got == (-(due[0] + UNCREDITED_GAP), 0, n - 1, n - 1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("terms", [
    {"credit_delay_days": 1},  # sales credited the next day at 00:00
    {"payout": "daily", "payout_delay_days": 2},  # D+2 daily payouts
])  # fmt: skip
def test_credit_timing_and_daily_payouts(tmp_path, terms):
    warehouse, now, payouts = _books(tmp_path, {**SANDBOX_TERMS, **terms}, deposits=False)
    declared = Terms(fee_ppm=33_000, fee_vat=True, credit_delay_days=terms.get("credit_delay_days", 0))
    result = render_reconciliation_report(warehouse, FEB, tmp_path / "reports", now=now, terms=declared)
    feb = [a for at, a in payouts if FEB_START.timestamp() < at <= MAR_START.timestamp()]
    assert result.totals["unexplained"] == 0 and result.totals["payouts"] == sum(feb)
    assert result.totals["payout_count"] == len(feb) == (28 if "payout" in terms else 4)
    if "credit_delay_days" in terms:  # declared at once, the days do not tie
        at_once = render_reconciliation_report(warehouse, FEB, tmp_path / "other", now=now, terms=DECLARED)
        assert at_once.totals["days_not_tying"] > 0


# With a credit delay a daily payout leaves at the 00:00 the next credits arrive, so the balance
# need not fall: the payout is found by its level (it empties the balance, or pays the balance
# of its cut-off).
@pytest.mark.slow
@pytest.mark.parametrize(("credit", "delay"), [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)])
def test_daily_payouts_meet_their_deposits_within_the_default_window(tmp_path, credit, delay):
    """A daily payout reaches the bank the morning of its day: the default window of
    POINT3_DEPOSIT_MATCH_DAYS covers it whatever payout_delay_days is."""
    terms = {**SANDBOX_TERMS, "payout": "daily", "payout_delay_days": delay, "credit_delay_days": credit}
    warehouse, now, _ = _books(tmp_path, terms)
    declared = Terms(fee_ppm=33_000, fee_vat=True, credit_delay_days=credit)
    t = render_reconciliation_report(warehouse, FEB, tmp_path / "reports", now=now, terms=declared).totals
    assert t["unexplained"] == 0 and t["payout_count"] == 28
    assert (t["payouts_matched"], t["payouts_without_deposit"], t["deposits_without_payout"]) == (28, 0, 0)


@pytest.mark.slow
def test_a_business_with_its_own_fee(tmp_path):
    bookshop = "책방 달빛서가"
    warehouse, now, _ = _books(tmp_path, {**SANDBOX_TERMS, "business_fee_ppm": {bookshop: 15_000}}, deposits=False)
    own = Terms(fee_ppm=33_000, fee_vat=True, business_fees=(BusinessFee(bookshop, None, 15_000, True),))
    result = render_reconciliation_report(warehouse, FEB, tmp_path / "reports", now=now, terms=own)
    assert result.totals["unexplained"] == 0 and result.totals["days_not_tying"] == 0
    # the merchant's rate for the bookshop too: the fees are overstated, the days do not tie
    merchant_only = render_reconciliation_report(warehouse, FEB, tmp_path / "other", now=now, terms=DECLARED)
    assert merchant_only.totals["days_not_tying"] > 0 and merchant_only.totals["fees"] > result.totals["fees"]


# --- the version fingerprint: what lies before the month counts too ---------------------------------


@pytest.mark.parametrize("source", ["api", "imported"])
def test_an_observation_changed_before_the_month_makes_a_new_version(tmp_path, source):
    """An observation two before the month's start (not the one its opening rests on) changes
    the payout found before the month, so a November deposit no longer matches it: the
    workbook shows the deposit without a payout, in a new version."""
    now, before = kst(2025, 12, 2, 9), kst(2025, 10, 30, 23, 50)
    books = Books(tmp_path / "wh.duckdb")
    if source == "api":
        books.observation(before, 50_000)
    books.observation(kst(2025, 10, 31, 0, 10), 10_000)  # a payout of 40,000 at 00:00
    books.observation(kst(2025, 10, 31, 22, 10), 10_000)  # the opening rests on it
    books.payment("late-oct", kst(2025, 10, 31, 23, 10), total=11_000)
    books.observation(kst(2025, 12, 1, 0, 20), 21_000)
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    if source == "imported":
        (tmp_path / "balances.csv").write_text(f"observed_at,balance\n{before.isoformat()},50000\n")
        import_balances(wh, tmp_path / "balances.csv", now=now)
    (tmp_path / "bank.csv").write_text("거래일자,입금액\n2025.11.01,40000\n")
    import_deposits(wh, tmp_path / "bank.csv", now=now)
    first = render_reconciliation_report(wh, "2025-11", tmp_path / "r", now=now)
    assert (first.version, first.totals["deposits_without_payout"], first.totals["unexplained"]) == (1, 0, 0)
    table = {"api": "settlement_observations", "imported": "imported_settlement_observations"}[source]
    with wh.connect() as conn:
        conn.execute(f"UPDATE {table} SET balance = 45000 WHERE observed_at = ?", [before])
    wh = books.refresh()
    second = render_reconciliation_report(wh, "2025-11", tmp_path / "r", now=now)
    assert second.created and second.version == 2 and second.totals["deposits_without_payout"] == 1
    assert second.totals["opening_balance"] == first.totals["opening_balance"] == 21_000

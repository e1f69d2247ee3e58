"""The monthly workbooks, the report index and verify_report, on warehouses built row by row."""

from __future__ import annotations

import datetime as dt
import errno
import gc
import os
import re
import subprocess
import sys

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet import _writer as sheet_writer

from point3_pipeline.reports import (
    render_reconciliation_report,
    render_tax_report,
    verify_report,
    write_index,
)
from point3_pipeline.reports import tax
from point3_pipeline.reports.versions import latest_version
from point3_pipeline.periods import Period
from point3_pipeline.warehouse import NoSpaceLeft
from tests.conftest import rule_split
from tests.report_fixtures import Books, kst

NOV = "2025-11"
NOW = kst(2025, 12, 2, 9)
INJECTIONS = ['=HYPERLINK("http://x","y")', "+SUM(1,2)", "-10+20", "@cmd", "=1+1", "#N/A", "#DIV/0!"]
# The only formulas a workbook may hold: sums and counts over ranges, and sums or differences of
# such terms and cell references (never a function that reaches outside, like HYPERLINK).
_TERM = r"(?:(?:SUM|SUBTOTAL|COUNTA|COUNTIF|SUMIF)\([^()]*\)|\$?[A-Z]{1,3}\$?\d+)"
TOTALS_FORMULA = re.compile(rf"^={_TERM}(?:[+\-]{_TERM})*$")

# (signature, accepted_at, total, code, cancelled at (detected) or None)
PAYMENTS = [
    ("p01", kst(2025, 11, 1, 0, 5), 11_000, "a", None),
    ("p02", kst(2025, 11, 1, 23, 59), 22_000, "b", kst(2025, 11, 2, 4)),
    ("p03", kst(2025, 11, 3, 12), 5_500, "c", None),
    ("p04", kst(2025, 11, 3, 13), 33_000, "d", None),
    ("p05", kst(2025, 11, 15, 9), 44_000, "f", kst(2025, 12, 1, 4)),
    ("p06", kst(2025, 11, 15, 10), 1_100, "g", None),
    ("p07", kst(2025, 11, 30, 23, 59), 7_700, None, None),
    ("p08", kst(2025, 11, 20, 8), 9_900, "a", None),
    ("old", kst(2025, 10, 31, 23), 3_300, "b", kst(2025, 11, 5, 4)),  # earlier month, cancelled in November
    ("dec", kst(2025, 12, 1, 0, 1), 2_200, "a", None),  # next month
]


def _books(tmp_path) -> Books:
    books = Books(tmp_path / "wh.duckdb")
    for signature, accepted_at, total, code, _ in PAYMENTS:
        books.payment(signature, accepted_at, total=total, code=code)
    for signature, _, _, _, canceled in PAYMENTS:
        if canceled:
            books.cancel(signature, canceled)
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30), finished_at=kst(2025, 12, 1, 3))
    return books


def _expected(code=None, day=None) -> dict[str, int]:
    """November's figures computed from PAYMENTS, independently of the warehouse."""
    rows = [
        p for p in PAYMENTS
        if p[1].date().month == 11 and (code is None or (p[3] or "unknown") == code) and (day is None or p[1].day == day)
    ]  # fmt: skip
    vat = [total // 11 for _, _, total, _, _ in rows]
    canceled = [p for p in rows if p[4]]
    return {
        "payment_count": len(rows),
        "total_charge": sum(p[2] for p in rows),
        "supply_value": sum(p[2] for p in rows) - sum(vat),
        "vat": sum(vat),
        "canceled_count": len(canceled),
        "canceled_total": sum(p[2] for p in canceled),
        "net_total": sum(p[2] for p in rows) - sum(p[2] for p in canceled),
    }


@pytest.fixture
def november(tmp_path):
    books = _books(tmp_path)
    return books, books.refresh(), tmp_path / "reports"


@pytest.fixture(scope="module")
def november_v1(tmp_path_factory):
    """November rendered once, for the tests that only read the workbook."""
    tmp_path = tmp_path_factory.mktemp("november")
    books = _books(tmp_path)
    wh = books.refresh()
    return wh, render_tax_report(wh, NOV, tmp_path / "reports", now=NOW)


def _sheet_rows(path, title):
    wb = load_workbook(path)
    return wb[title]


def _by_first_cell(ws, key_col: int = 0) -> dict:
    return {row[key_col].value: [c.value for c in row] for row in ws.iter_rows() if row[key_col].value is not None}


def test_totals_match_independent_figures(november_v1):
    wh, result = november_v1
    expected = _expected()
    assert {k: result.totals[k] for k in expected} == expected
    assert result.totals["earlier_canceled_count"] == 1 and result.totals["earlier_canceled_total"] == 3_300
    assert all(type(v) is int for v in result.totals.values())
    assert result.is_final and result.days_synced == result.days_in_month == 30
    assert result.as_of == kst(2025, 12, 1, 3)
    assert verify_report(wh, result.path) == []


@pytest.mark.parametrize("code", ["a", "b", "c", "d", "f", "g", "unknown"])
def test_per_culture_code(november_v1, code):
    wh, result = november_v1
    rows = _by_first_cell(_sheet_rows(result.path, tax.CULTURE), key_col=1)
    key = "—" if code == "unknown" else code
    row = rows[key]
    figures = dict(zip(tax.FIGURE_KEYS, row[3:]))
    expected = _expected(code=code)
    assert {k: figures[k] for k in expected} == expected


@pytest.mark.parametrize("day", [1, 2, 3, 15, 20, 30])
def test_per_day(november_v1, day):
    wh, result = november_v1
    ws = _sheet_rows(result.path, tax.DAILY)
    rows = {r[0].value.date(): [c.value for c in r] for r in ws.iter_rows() if isinstance(r[0].value, dt.datetime)}
    assert len(rows) == 30
    figures = dict(zip(tax.FIGURE_KEYS, rows[dt.date(2025, 11, day)][3:]))
    expected = _expected(day=day)
    assert {k: figures[k] for k in expected} == expected


def test_cancellation_sheet_lists_both_kinds(november_v1):
    wh, result = november_v1
    ws = _sheet_rows(result.path, tax.CANCELLATIONS)
    listed = {(r[0].value, r[3].value) for r in ws.iter_rows() if r[0].value in (tax.THIS_MONTH, tax.EARLIER)}
    assert listed == {(tax.THIS_MONTH, "p02"), (tax.THIS_MONTH, "p05"), (tax.EARLIER, "old")}


def test_api_text_is_never_a_formula(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    for n, text in enumerate(INJECTIONS):
        books.payment(f"inj{n}", kst(2025, 11, 2, 10, n), product=text, order_id=text, nickname=text)
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    for render in (render_tax_report, render_reconciliation_report):
        result = render(wh, NOV, tmp_path / "r", now=NOW)
        wb = load_workbook(result.path)
        texts = set()
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                formulas = [c for c in row if c.data_type == "f"]
                if formulas:
                    assert str(row[0].value).startswith(("합계", "취소 canceled", "순액", "소득공제용", "지출증빙용")), (
                        ws.title, row[0].value, formulas[0].value,
                    )  # fmt: skip
                    assert all(TOTALS_FORMULA.match(c.value) for c in formulas), [c.value for c in formulas]
                assert not [c for c in row if c.data_type == "e"], (ws.title, [c.value for c in row])
                texts |= {c.value for c in row if c.data_type == "s"}
        if render is render_tax_report:
            assert set(INJECTIONS) <= texts
        assert verify_report(wh, result.path) == []


def test_a_name_longer_than_an_excel_cell_is_cut_visibly(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.payment("long", kst(2025, 11, 2, 10), product="가" * 40_000)
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    result = render_tax_report(books.refresh(), NOV, tmp_path / "r", now=NOW)
    names = [c.value for ws in load_workbook(result.path).worksheets for row in ws.iter_rows() for c in row
             if isinstance(c.value, str) and c.value.startswith("가가가")]
    assert names and all(len(n) == 32_767 and n.endswith("(잘림: 전체 40,000자)") for n in names)


def test_a_file_left_by_a_render_that_died_before_its_commit_is_kept_aside(november):
    books, wh, out = november
    stray = out / "2025-11" / "point3-tax-2025-11-v1.xlsx"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"left by a crashed render")
    result = render_tax_report(wh, NOV, out, now=NOW)
    assert (result.version, result.created, result.path) == (1, True, stray)
    assert verify_report(wh, result.path) == []
    kept = list(stray.parent.glob("point3-tax-2025-11-v1.orphaned-*.xlsx"))
    assert [p.read_bytes() for p in kept] == [b"left by a crashed render"]


def test_a_workbook_gone_from_the_folder_is_written_again(november):
    books, wh, out = november
    v1 = render_tax_report(wh, NOV, out, now=NOW)
    v1.path.unlink()
    again = render_tax_report(wh, NOV, out, now=NOW)
    assert (again.version, again.created) == (2, True) and again.path.exists()
    assert verify_report(wh, again.path) == []


def test_late_cancellation_makes_v2_and_keeps_v1(november):
    books, wh, out = november
    v1 = render_tax_report(wh, NOV, out, now=NOW)
    v1_bytes = v1.path.read_bytes()
    same = render_tax_report(wh, NOV, out, now=NOW + dt.timedelta(hours=1))
    assert (same.created, same.version, same.path) == (False, 1, v1.path)

    books.cancel("p04", kst(2025, 12, 3, 4))
    wh = books.refresh()
    v2 = render_tax_report(wh, NOV, out, now=NOW + dt.timedelta(days=2))
    assert (v2.created, v2.version, v2.changes) == (True, 2, 1)
    assert v2.path != v1.path and v1.path.read_bytes() == v1_bytes
    assert v2.totals["canceled_total"] == v1.totals["canceled_total"] + 33_000
    ws = _sheet_rows(v2.path, tax.CHANGES)
    changed = [r for r in ws.iter_rows() if r[1].value and str(r[1].value).startswith("p")]
    assert [(r[0].value, r[1].value, r[11].value, r[12].value) for r in changed] == [
        ("취소 canceled", "p04", "정상", "취소")
    ]
    diffs = {r[1].value: r[4].value for r in ws.iter_rows() if r[1].value in ("canceled_total", "net_total")}
    assert diffs == {"canceled_total": 33_000, "net_total": -33_000}
    assert tax.CHANGES not in load_workbook(v1.path).sheetnames
    assert verify_report(wh, v1.path) == [] and verify_report(wh, v2.path) == []


def test_empty_month(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    result = render_tax_report(wh, NOV, tmp_path / "r", now=NOW)
    assert result.totals["payment_count"] == 0 and result.totals["net_total"] == 0 and result.is_final
    summary = _by_first_cell(_sheet_rows(result.path, tax.SUMMARY))
    assert "이 달 결제 없음" in summary["가맹점"][2]
    recon = render_reconciliation_report(wh, NOV, tmp_path / "r", now=NOW)
    assert recon.created and verify_report(wh, recon.path) == [] and verify_report(wh, result.path) == []
    texts = [c.value for r in load_workbook(recon.path)["요약"].iter_rows() for c in r if isinstance(c.value, str)]
    assert any("관측이 없어 대사할 수 없습니다" in t for t in texts)


def test_month_with_only_cancellations(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.payment("oct", kst(2025, 10, 20, 10), total=5_500)
    books.cancel("oct", kst(2025, 11, 4, 1))
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    result = render_tax_report(wh, NOV, tmp_path / "r", now=NOW)
    assert result.totals["payment_count"] == 0
    assert (result.totals["earlier_canceled_count"], result.totals["earlier_canceled_total"]) == (1, 5_500)
    ws = _sheet_rows(result.path, tax.CANCELLATIONS)
    assert [r[3].value for r in ws.iter_rows() if r[0].value == tax.EARLIER] == ["oct"]
    assert verify_report(wh, result.path) == []


def test_a_payment_already_cancelled_when_first_seen_is_not_a_cancellation_of_this_month(tmp_path):
    """A first backfill in November finds an October payment already cancelled: that is
    October's cancellation (October's report shows it), not one detected in November."""
    books = Books(tmp_path / "wh.duckdb")
    books.payment("oct", kst(2025, 10, 20, 10), total=5_500, canceled_when_seen=True, seen_at=kst(2025, 11, 4, 1))
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    november = render_tax_report(wh, NOV, tmp_path / "r", now=NOW)
    october = render_tax_report(wh, "2025-10", tmp_path / "r", now=NOW)
    assert (november.totals["earlier_canceled_count"], november.totals["earlier_canceled_total"]) == (0, 0)
    assert (october.totals["canceled_count"], october.totals["canceled_total"]) == (1, 5_500)


def test_partly_unsynced_month_says_so(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.payment("a1", kst(2025, 11, 2, 10))
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 4))
    books.synced(dt.date(2025, 11, 6), dt.date(2025, 11, 30))
    # A complete sync of the 30th taken before the day was over does not make it final.
    books.synced(dt.date(2025, 11, 30), dt.date(2025, 11, 30), finished_at=kst(2025, 11, 30, 12))
    wh = books.refresh()
    result = render_tax_report(wh, NOV, tmp_path / "r", now=NOW)
    assert not result.is_final and result.days_synced == 29
    for title in (tax.SUMMARY, tax.PAYMENTS, tax.DAILY):
        warning = _sheet_rows(result.path, title)["A2"].value
        assert warning.startswith("주의: 1일(11월 5일)이 동기화되지 않았습니다") and "최종본이 아닙니다" in warning


def test_month_in_progress_counts_future_days(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 9))
    wh = books.refresh()
    result = render_tax_report(wh, NOV, tmp_path / "r", now=kst(2025, 11, 11, 9))
    warning = _sheet_rows(result.path, tax.SUMMARY)["A2"].value
    assert "1일(11월 10일)" in warning and "20일은 아직 끝나지 않았거나" in warning


def test_verify_report_catches_tampering(november):
    _, wh, out = november
    result = render_tax_report(wh, NOV, out, now=NOW)
    wb = load_workbook(result.path)
    ws = wb[tax.PAYMENTS]
    for row in ws.iter_rows():
        if row[2].value == "p03":
            row[8].value += 1000
    wb.save(result.path)
    problems = verify_report(wh, result.path)
    assert any("total_charge" in p for p in problems)

    wb = load_workbook(result.path)
    ws = wb[tax.PAYMENTS]
    for row in ws.iter_rows():
        if row[2].value == "p03":
            row[8].value -= 1000
        if row[0].value == "합계 (전체) total":
            row[8].value = "=SUM(I5:I6)"
    wb.save(result.path)
    assert any("totals formula in column I" in p for p in verify_report(wh, result.path))


def test_index_lists_every_version_escaped(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.payment("a1", kst(2025, 11, 2, 10), nickname="<script>alert(1)</script>")
    books.payment("o1", kst(2025, 10, 2, 10))
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    out = tmp_path / "reports"
    made = [render_tax_report(wh, m, out, now=NOW) for m in ("2025-10", NOV)]
    made.append(render_reconciliation_report(wh, NOV, out, now=NOW))
    books.cancel("a1", kst(2025, 12, 5))
    wh = books.refresh()
    made.append(render_tax_report(wh, NOV, out, now=NOW))
    index = write_index(wh, out)
    text = index.read_text(encoding="utf-8")
    assert index == out / "index.html"
    for r in made:
        href = r.path.relative_to(out).as_posix()
        assert f'href="{href}"' in text and (out / href).exists()
    assert text.count("<a href=") == 4 and "<script>" not in text
    assert "부가세·문화비" in text and "정산 대사" in text


def test_reconciliation_ties_and_flags(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.observation(kst(2025, 10, 31, 23, 40), 50_000)  # slot 23:30
    books.payment("r1", kst(2025, 11, 1, 10), total=11_000)
    books.payment("r2", kst(2025, 11, 2, 10), total=22_000)
    books.observation(kst(2025, 11, 1, 23, 45), 61_000)  # +11,000: ties
    books.cancel("r1", kst(2025, 11, 2, 12))
    # day 2: +22,000 in, -11,000 out, and a 30,000 payout point3 does not report: found as a payout
    books.observation(kst(2025, 11, 2, 23, 45), 61_000 + 22_000 - 11_000 - 30_000)
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    result = render_reconciliation_report(wh, NOV, tmp_path / "r", now=NOW)
    t = result.totals
    assert (t["opening_balance"], t["closing_balance"]) == (50_000, 42_000)
    assert (t["payments_in"], t["cancellations_out"], t["payouts"], t["unexplained"]) == (33_000, 11_000, 30_000, 0)
    assert (t["days_not_tying"], t["days_without_observations"], t["observation_count"]) == (0, 28, 2)
    assert t["payouts_without_deposit"] == 1
    wb = load_workbook(result.path)
    days = {r[0].value.day: [c.value for c in r] for r in wb["일별 대사"].iter_rows() if isinstance(r[0].value, dt.datetime)}
    assert days[1][8:14] == [11_000, 0, 0, 0, 0, 61_000]
    assert days[2][8:14] == [22_000, 11_000, 0, 30_000, 0, 42_000]
    assert days[3][5] is None and "관측 없음" in days[3][14]
    mismatches = [c.value for r in wb["불일치"].iter_rows() for c in r]
    assert 30_000 in mismatches and "입금 없음" in mismatches
    assert verify_report(wh, result.path) == []


def test_a_quick_refund_first_seen_cancelled_nets_out_where_it_happened(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.observation(kst(2025, 11, 3, 10, 2), 50_000)
    # accepted 10:10 and refunded before the 11:05 sync, which saw it cancelled the first time
    books.payment("quick", kst(2025, 11, 3, 10, 10), total=11_000, canceled_when_seen=True,
                  seen_at=kst(2025, 11, 3, 11, 5))
    books.observation(kst(2025, 11, 3, 11, 32), 50_000)
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    result = render_reconciliation_report(books.refresh(), NOV, tmp_path / "r", now=NOW)
    t = result.totals
    assert (t["payments_in"], t["cancellations_out"], t["unexplained"]) == (11_000, 11_000, 0)
    assert t["days_not_tying"] == 0


def test_reconciliation_new_version_only_on_change(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.observation(kst(2025, 11, 1, 12), 0)
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    first = render_reconciliation_report(wh, NOV, tmp_path / "r", now=NOW)
    assert not render_reconciliation_report(wh, NOV, tmp_path / "r", now=NOW).created
    books.observation(kst(2025, 11, 2, 12), 0)
    wh = books.refresh()
    second = render_reconciliation_report(wh, NOV, tmp_path / "r", now=NOW)
    assert (first.version, second.version, second.created) == (1, 2, True)


def test_bad_month_is_refused(november):
    _, wh, out = november
    with pytest.raises(ValueError, match="YYYY-MM"):
        render_tax_report(wh, "2025-13", out)



# --- amounts near 2^63 --------------------------------------------------------------------------

BIGINT_MAX = 2**63 - 1
# (signature, total, supply, vat): each a valid BIGINT, their sums far beyond one
HUGE = [
    ("h1", BIGINT_MAX - 1_000, None, None),
    ("h2", BIGINT_MAX - 7, None, None),  # cancelled later
    ("h3", BIGINT_MAX, BIGINT_MAX, BIGINT_MAX),  # breaks the VAT rule: supply + vat overflows BIGINT
]


def _huge_books(tmp_path) -> Books:
    books = Books(tmp_path / "wh.duckdb")
    for signature, total, supply, vat in HUGE:
        books.payment(signature, kst(2025, 11, 3, 12), total=total, supply=supply, vat=vat, code="a")
    books.cancel("h2", kst(2025, 11, 4, 4))
    books.observation(kst(2025, 11, 3, 9), -(2**63))
    books.observation(kst(2025, 11, 5, 9), BIGINT_MAX)  # a change no BIGINT holds
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    return books


def test_sums_of_amounts_near_two_to_the_63_are_exact(tmp_path):
    wh = _huge_books(tmp_path).refresh()
    totals = [t for _, t, _, _ in HUGE]
    vats = [v if v is not None else t // 11 for _, t, _, v in HUGE]
    with wh.connect(read_only=True) as conn:
        day = conn.execute(
            "SELECT total_charge, vat, taxable_supply, unclassified_amount, canceled_total, net_total FROM culture_vat_daily "
            "WHERE payment_date = DATE '2025-11-03'"
        ).fetchone()
        month = conn.execute("SELECT net_total FROM deduction_group_monthly WHERE deduction_group = '소득공제'").fetchone()
        difference = conn.execute("SELECT difference FROM vat_rule_violations WHERE signature = 'h3'").fetchone()
        change = conn.execute("SELECT max(change_since_previous) FROM settlement_balance_history").fetchone()
    # by the split rule: h3 breaks point3's sum rule, so it is unclassified (no VAT, no taxable supply)
    split = [rule_split(t, t - v if s is None else s, v) for (_, t, s, _), v in zip(HUGE, vats)]
    taxable, split_vat, unclassified = (sum(row[i] for row in split) for i in (0, 1, 3))
    assert unclassified == totals[2]
    assert day == (sum(totals), split_vat, taxable, unclassified, HUGE[1][1], sum(totals) - HUGE[1][1])
    assert month == (sum(totals) - HUGE[1][1],)
    assert difference == (-BIGINT_MAX,)
    assert change == (2**64 - 1,)
    assert all(type(v) is int for v in (*day, *month, *difference, *change))

    out = tmp_path / "reports"
    result = render_tax_report(wh, NOV, out, now=NOW)
    assert (result.totals["total_charge"], result.totals["net_total"]) == (sum(totals), sum(totals) - HUGE[1][1])
    # beyond what a spreadsheet number holds exactly: the digits, as text, never rounded
    summary = _by_first_cell(_sheet_rows(result.path, tax.SUMMARY))
    assert summary["이 달 결제 (전체)"][3] == str(sum(totals))
    checks = [c.value for r in _sheet_rows(result.path, tax.CHECKS).iter_rows() for c in r]
    assert f"차이 difference {-BIGINT_MAX}원" in checks
    assert verify_report(wh, result.path) == []

    reconciliation = render_reconciliation_report(wh, NOV, out, now=NOW)
    t = reconciliation.totals
    assert (t["payments_in"], t["cancellations_out"]) == (sum(totals), HUGE[1][1])
    assert t["closing_balance"] - t["opening_balance"] == 2**64 - 1 and t["payouts"] == 0
    assert t["unexplained"] == 2**64 - 1 - (sum(totals) - HUGE[1][1])
    assert verify_report(wh, reconciliation.path) == []


# --- what a killed or failed render leaves behind ----------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_renders_litter_is_cleared_by_the_next_render(november):
    _, wh, out = november
    dead = _dead_pid()
    litter = [
        out / "2025-11" / f".point3-tax-2025-11-v1.xlsx.tmp-{dead}",
        out / "2025-10" / f".point3-reconciliation-2025-10-v3.xlsx.tmp-{dead}",
        out / f".sheet-files-{dead}" / "openpyxl.k1ll3d",
    ]
    # a live process's (another warehouse rendering into the same folder) is not ours to remove
    live = out / "2025-11" / f".point3-tax-2025-11-v7.xlsx.tmp-{os.getppid()}"
    for path in (*litter, live):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PK\x03\x04 half a workbook")
    result = render_tax_report(wh, NOV, out, now=NOW)
    assert result.created and result.path.exists()
    assert [p for p in litter if p.exists()] == []
    assert not (out / f".sheet-files-{dead}").exists()
    assert live.exists()


# The abandoned workbook's sheet writer complains when collected (its file is gone), as after any
# failed openpyxl write: collected here, so the warning belongs to this test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_render_failing_on_a_full_disk_says_so_and_leaves_nothing(november, monkeypatch):
    _, wh, out = november
    before = list(sheet_writer.ALL_TEMP_FILES)

    def write_until_the_disk_is_full(ctx, path):
        wb = Workbook(write_only=True)
        sheet = wb.create_sheet("rows")
        for n in range(100):
            sheet.append([n, "row"])  # openpyxl streams the sheet to a temp file of its own
        path.write_bytes(b"PK\x03\x04 half a workbook")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tax, "write_tax_workbook", write_until_the_disk_is_full)
    with pytest.raises(NoSpaceLeft, match=f"^no space left on device at {out}: free space there"):
        render_tax_report(wh, NOV, out, now=NOW)
    gc.collect()
    sheet_files = [p for p in sheet_writer.ALL_TEMP_FILES if p not in before]
    assert sheet_files, "the writer made no sheet file: the test proves nothing"
    assert all(p.startswith(str(out)) and not os.path.exists(p) for p in sheet_files)
    assert [p.name for p in out.rglob("*")] == ["2025-11"]
    with wh.connect(read_only=True) as conn:
        assert latest_version(conn, "tax", Period.parse(NOV)) is None

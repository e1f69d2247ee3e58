"""The monthly workbooks, the report index and verify_report, on warehouses built row by row."""

from __future__ import annotations

import datetime as dt
import errno
import gc
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet import _writer as sheet_writer

from point3_pipeline.reports import (
    render_reconciliation_report,
    render_tax_report,
    verify_report,
    write_index,
)
from point3_pipeline.reports import filing, tax
from point3_pipeline.reports.versions import latest_version
from point3_pipeline.reports.workbook import sheet_files_in
from point3_pipeline.periods import Period
from point3_pipeline.warehouse import NoSpaceLeft
from tests.conftest import rule_split
from tests.report_fixtures import Books, kst

NOV = "2025-11"
NOW = kst(2025, 12, 2, 9)
INJECTIONS = ['=HYPERLINK("http://x","y")', "+SUM(1,2)", "-10+20", "@cmd", "=1+1", "#N/A", "#DIV/0!"]
# The only formulas a workbook may hold: sums and counts over ranges, and sums or differences of
# such terms and cell references (never a function that reaches outside, like HYPERLINK).
_RANGE = r"(?:'[^'!]+'!)?\$?[A-Z]{1,3}\$?\d+(?::\$?[A-Z]{1,3}\$?\d+)?"
_KEY = r'"(?:B\d\d|[A-Z_]+|OTHER-[0-9a-f]{10}|NONE|[a-z_]+|매출|취소|정상)"'
_ARGS = rf"(?:{_RANGE}|{_KEY})(?:,(?:{_RANGE}|{_KEY}))*"
_TERM = rf"(?:(?:SUM|SUBTOTAL|COUNTA|COUNTIF|SUMIF|SUMIFS|COUNTIFS)\({_ARGS}\)|{_RANGE}|0)"
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
    """November's filing figures computed from PAYMENTS, independently of the warehouse: the
    month's sales minus the cancellations detected in November (whatever their payment's month)."""
    def keep(p, on):
        return (code is None or (p[3] or "unknown") == code) and (day is None or on.day == day)

    sales = [p for p in PAYMENTS if p[1].month == 11 and keep(p, p[1])]
    cancels = [p for p in PAYMENTS if p[4] and p[4].month == 11 and p[4].year == 2025 and keep(p, p[4])]
    vat = lambda rows: sum(p[2] // 11 for p in rows)  # noqa: E731
    total = lambda rows: sum(p[2] for p in rows)  # noqa: E731
    return {
        "sale_count": len(sales),
        "canceled_count": len(cancels),
        "sales_total": total(sales),
        "canceled_total": total(cancels),
        "total_charge": total(sales) - total(cancels),
        "taxable_supply": total(sales) - vat(sales) - (total(cancels) - vat(cancels)),
        "vat": vat(sales) - vat(cancels),
        "exempt_amount": 0,
        "unclassified_amount": 0,
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


def _business_sheet(path):
    wb = load_workbook(path, data_only=True)
    return next(ws for ws in wb.worksheets if ws.title.startswith("B01"))


def test_totals_match_independent_figures(november_v1):
    wh, result = november_v1
    expected = _expected()
    assert {k: result.totals[k] for k in expected} == expected
    assert result.totals["straddling_count"] == 1  # "old": last seen active in October, detected in November
    assert all(type(v) is int for v in result.totals.values())
    assert result.is_final and result.days_synced == result.days_in_period == 30
    assert result.as_of == kst(2025, 12, 1, 3)
    assert verify_report(wh, result.path) == []


@pytest.mark.parametrize("code", ["a", "b", "c", "d", "f", "g", "unknown"])
def test_per_culture_code_beside_the_split(november_v1, code):
    wh, result = november_v1
    ws = _business_sheet(result.path)
    rows = [[c.value for c in r] for r in ws.iter_rows()]
    culture = rows.index(next(r for r in rows if str(r[0]).startswith("6. 문화비")))
    row = next(r for r in rows[culture:] if r[1] == code)
    expected = _expected(code=code)
    assert row[2:9] == [expected["sale_count"], expected["canceled_count"], expected["taxable_supply"],
                        expected["vat"], 0, 0, expected["total_charge"]]  # fmt: skip


@pytest.mark.parametrize("day", [1, 2, 3, 5, 15, 20, 30])
def test_per_day(november_v1, day):
    wh, result = november_v1
    ws = load_workbook(result.path, data_only=True)[tax.DAILY]
    rows = {r[0].value.date(): [c.value for c in r] for r in ws.iter_rows() if isinstance(r[0].value, dt.datetime)}
    assert len(rows) == 30
    expected = _expected(day=day)
    got = rows[dt.date(2025, 11, day)]
    assert got[3:10] == [expected["sale_count"], expected["canceled_count"], expected["taxable_supply"],
                         expected["vat"], 0, 0, expected["total_charge"]]  # fmt: skip


def test_cancellations_are_filed_in_the_period_they_belong_to(november_v1, tmp_path):
    wh, result = november_v1
    rows = [[c.value for c in r] for r in _sheet_rows(result.path, filing.DETAIL).iter_rows()]
    cancels = {(r[6], r[1].date(), r[15], r[22]) for r in rows if r[0] == filing.CANCELLATION_KO}
    # p05 (15 Nov) was cancelled on 1 Dec: December's cancellation, not November's
    assert cancels == {
        ("p02", dt.date(2025, 11, 2), -22_000, None),
        ("old", dt.date(2025, 11, 5), -3_300, "경계 불확실: 취소 하한이 이전 기간"),
    }
    december = render_tax_report(wh, "2025-12", tmp_path / "r", now=NOW)
    assert (december.totals["canceled_count"], december.totals["canceled_total"]) == (1, 44_000)
    assert december.totals["sale_count"] == 1  # "dec"


def test_api_text_is_never_a_formula(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    for n, text in enumerate(INJECTIONS):
        books.payment(f"inj{n}", kst(2025, 11, 2, 10, n), product=text, order_id=text, nickname=text, method=text)
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    for render in (render_tax_report, render_reconciliation_report):
        result = render(wh, NOV, tmp_path / "r", now=NOW)
        wb = load_workbook(result.path)
        texts = set()
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                formulas = [c for c in row if c.data_type == "f"]
                if render is render_reconciliation_report and formulas:
                    assert str(row[0].value).startswith(("합계", "취소 canceled", "순액")), (ws.title, row[0].value)
                assert all(TOTALS_FORMULA.match(c.value) for c in formulas), [c.value for c in formulas]
                assert not [c for c in row if c.data_type == "e"], (ws.title, [c.value for c in row])
                texts |= {c.value for c in row if c.data_type == "s"}
        if render is render_tax_report:
            assert set(INJECTIONS) <= texts
            # an API method code is never a formula criterion: unknown codes get a key of their own
            assert not any(text in c.value for ws in wb.worksheets for r in ws.iter_rows() for c in r
                           if c.data_type == "f" for text in INJECTIONS)  # fmt: skip
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


def test_a_closed_month_is_not_restated_by_a_later_cancellation_but_a_late_payment_makes_v2(november):
    books, wh, out = november
    v1 = render_tax_report(wh, NOV, out, now=NOW)
    v1_bytes = v1.path.read_bytes()
    same = render_tax_report(wh, NOV, out, now=NOW + dt.timedelta(hours=1))
    assert (same.created, same.version, same.path) == (False, 1, v1.path)

    # A sweep in December sees p04 (3 Nov) cancelled: December's cancellation, November stays filed.
    books.cancel("p04", kst(2025, 12, 3, 4))
    wh = books.refresh()
    swept = render_tax_report(wh, NOV, out, now=NOW + dt.timedelta(days=2))
    assert (swept.created, swept.version) == (False, 1)
    december = render_tax_report(wh, "2025-12", out, now=NOW + dt.timedelta(days=2))
    assert december.totals["canceled_total"] == 44_000 + 33_000

    # A payment of 20 November appears late (a gap filled): a new version says what and why.
    books.payment("late", kst(2025, 11, 20, 9), total=2_200, seen_at=kst(2025, 12, 4, 1))
    wh = books.refresh()
    v2 = render_tax_report(wh, NOV, out, now=NOW + dt.timedelta(days=3))
    assert (v2.created, v2.version, v2.changes) == (True, 2, 1)
    assert v2.path != v1.path and v1.path.read_bytes() == v1_bytes
    assert v2.totals["total_charge"] == v1.totals["total_charge"] + 2_200
    ws = _sheet_rows(v2.path, tax.CHANGES)
    changed = [[c.value for c in r] for r in ws.iter_rows() if r[1].value == "late"]
    assert [(r[0], r[2], r[4], r[5], r[6]) for r in changed] == [
        ("신규 매출 new sale", "매출", "처음 본 시각 2025-12-04 01:00 KST (늦게 나타난 결제)", None, 2_200)
    ]
    diffs = {r[1].value: r[4].value for r in ws.iter_rows() if r[1].value in ("total_charge", "sale_count")}
    assert diffs == {"total_charge": 2_200, "sale_count": 1}
    assert tax.CHANGES not in load_workbook(v1.path).sheetnames
    assert verify_report(wh, v1.path) == [] and verify_report(wh, v2.path) == []


def test_empty_month(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    result = render_tax_report(wh, NOV, tmp_path / "r", now=NOW)
    assert result.totals["sale_count"] == 0 and result.totals["total_charge"] == 0 and result.is_final
    summary = _by_first_cell(_sheet_rows(result.path, tax.SUMMARY))
    assert "이 기간 결제 없음" in summary["가맹점"][2]
    assert any(tax.NO_BUSINESSES_FILE == v for row in summary.values() for v in row)
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
    t = result.totals
    assert (t["sale_count"], t["canceled_count"], t["canceled_total"], t["total_charge"]) == (0, 1, 5_500, -5_500)
    assert (t["taxable_supply"], t["vat"]) == (-5_000, -500)
    rows = [[c.value for c in r] for r in _sheet_rows(result.path, filing.DETAIL).iter_rows()]
    assert [r[6] for r in rows if r[0] == filing.CANCELLATION_KO] == ["oct"]
    assert verify_report(wh, result.path) == []


def test_a_payment_already_cancelled_when_first_seen_belongs_to_its_own_month(tmp_path):
    """A first backfill in November finds an October payment already cancelled: its date is
    unknown (취소일 미상), so October files it, not November."""
    books = Books(tmp_path / "wh.duckdb")
    books.payment("oct", kst(2025, 10, 20, 10), total=5_500, canceled_when_seen=True, seen_at=kst(2025, 11, 4, 1))
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    november = render_tax_report(wh, NOV, tmp_path / "r", now=NOW)
    october = render_tax_report(wh, "2025-10", tmp_path / "r", now=NOW)
    assert (november.totals["canceled_count"], november.totals["canceled_total"]) == (0, 0)
    t = october.totals
    assert (t["sale_count"], t["canceled_count"], t["canceled_date_unknown_count"], t["total_charge"]) == (1, 1, 1, 0)
    rows = [[c.value for c in r] for r in _sheet_rows(october.path, filing.DETAIL).iter_rows()]
    assert [r[22] for r in rows if r[0] == filing.CANCELLATION_KO] == ["취소일 미상: 처음 볼 때 이미 취소됨, 결제일에 귀속"]


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
    for title in (tax.SUMMARY, filing.DETAIL, tax.DAILY):
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
    for row in wb[filing.DETAIL].iter_rows():
        if row[6].value == "p03":
            row[15].value += 1000
    wb.save(result.path)
    problems = verify_report(wh, result.path)
    assert any("total_charge" in p for p in problems)

    wb = load_workbook(result.path)
    for row in wb[filing.DETAIL].iter_rows():
        if row[6].value == "p03":
            row[15].value -= 1000
    for row in wb[tax.SUMMARY].iter_rows():
        if row[0].value == "전체 (이 키의 모든 결제)":
            row[3].value = row[3].value.replace("$5:", "$6:")
    wb.save(result.path)
    assert any("takes rows 6:" in p for p in verify_report(wh, result.path))


def test_index_lists_every_version_escaped(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.payment("a1", kst(2025, 11, 2, 10), nickname="<script>alert(1)</script>")
    books.payment("o1", kst(2025, 10, 2, 10))
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30))
    wh = books.refresh()
    out = tmp_path / "reports"
    made = [render_tax_report(wh, m, out, now=NOW) for m in ("2025-10", NOV, "2025-Q4")]
    made.append(render_reconciliation_report(wh, NOV, out, now=NOW))
    books.payment("late", kst(2025, 11, 3, 10), seen_at=kst(2025, 12, 5))
    wh = books.refresh()
    made.append(render_tax_report(wh, NOV, out, now=NOW))
    index = write_index(wh, out)
    text = index.read_text(encoding="utf-8")
    assert index == out / "index.html"
    for r in made:
        href = r.path.relative_to(out).as_posix()
        assert f'href="{href}"' in text and (out / href).exists()
    assert text.count("<a href=") == 5 and "<script>" not in text
    assert "월간 부가세" in text and "부가세 신고 자료" in text and "정산 대사" in text
    # months first, newest month first; then the quarter
    assert text.index("<h3>2025-11 · ") < text.index("<h3>2025-10 · ") < text.index("<h3>2025-Q4 · ")


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
    # h3 breaks vat + taxFreeAmount = totalCharge: unclassified, the whole total 미분류
    filed = HUGE[0][1] + HUGE[2][1]  # h2 was cancelled the next day, in November
    assert (result.totals["total_charge"], result.totals["unclassified_amount"]) == (filed, HUGE[2][1])
    assert result.totals["unclassified_count"] == 1 and not result.is_final
    # beyond what a spreadsheet number holds exactly: the digits, as text, never rounded
    summary = _by_first_cell(_sheet_rows(result.path, tax.SUMMARY))
    assert summary["전체 (이 키의 모든 결제)"][7] == str(filed)
    checks = [c.value for r in _sheet_rows(result.path, tax.CHECKS).iter_rows() for c in r]
    assert f"부가세 + taxFreeAmount ≠ 결제금액: 차이 {-BIGINT_MAX}원" in checks
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


def test_renders_on_two_threads_keep_their_sheet_files_apart(tmp_path):
    """Two merchants' renders in one process (CLI --all): each thread's openpyxl sheet files land
    in its own folder, whatever the other thread does meanwhile."""
    both_inside = threading.Barrier(2, timeout=120)  # a bound on waiting for the other thread
    made: dict[str, str] = {}

    def render(name: str) -> None:
        with sheet_files_in(tmp_path / name):
            both_inside.wait()
            made[name] = sheet_writer.create_temporary_file()
            both_inside.wait()

    threads = [threading.Thread(target=render, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert Path(made["a"]).parent == tmp_path / "a" and Path(made["b"]).parent == tmp_path / "b"
    assert Path(sheet_writer.create_temporary_file()).parent != tmp_path / "a"  # outside a render: openpyxl's own

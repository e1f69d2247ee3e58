"""The tax workbooks of any period on data synced from the sandbox and built row by row: the
figures equal SQL per business and in total (openpyxl and pandas.read_excel), cancellations land
in the period they belong to, versions by period, finality, print set-up and migration 006."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from openpyxl import load_workbook

from point3_pipeline.businesses import load_businesses
from point3_pipeline.models import KST
from point3_pipeline.reports import filing, render_tax_report, tax, verify_report
from point3_pipeline.tax_split import classify
from point3_pipeline.warehouse import Warehouse
from tests.conftest import warehouse_before
from tests.report_fixtures import Books, kst
from tests.tax_fixtures import DEMO_BUSINESSES, frozen_sandbox, split_rows, sync_days, synced  # noqa: F401
from tests.test_tax_split import active_payment_of, cancel_and_sync

NOW = dt.datetime(2026, 3, 18, 16, 0, tzinfo=KST)
TOTAL_LABEL = "전체 (이 키의 모든 결제)"
FIGURES = ("taxable_supply", "vat", "exempt_amount", "unclassified_amount", "total_charge", "sale_count", "canceled_count")

BY_BUSINESS_SQL = """
    SELECT coalesce(business_id, 'undeclared:' || coalesce(business_name, '')) AS key,
           CAST(sum(net_taxable_supply) AS BIGINT), CAST(sum(net_vat) AS BIGINT), CAST(sum(net_exempt_amount) AS BIGINT),
           CAST(sum(net_unclassified_amount) AS BIGINT), CAST(sum(net_total) AS BIGINT),
           CAST(sum(payment_count) AS BIGINT), CAST(sum(canceled_count) AS BIGINT)
    FROM tax_filing_daily WHERE filing_date BETWEEN ? AND ?
    GROUP BY ROLLUP (1)
"""


def _sql_figures(warehouse, first: dt.date, last: dt.date) -> dict[str, list[int]]:
    with warehouse.connect(read_only=True) as conn:
        rows = conn.execute(BY_BUSINESS_SQL, [first, last]).fetchall()
        names = dict(conn.execute(
            "SELECT DISTINCT coalesce(business_id, 'undeclared:' || coalesce(business_name, '')), business_name "
            "FROM payment_tax_split"
        ).fetchall())  # fmt: skip
    return {("*" if key is None else names[key]): list(figures) for key, *figures in rows}


def _summary_frame(path) -> dict[str, list[int]]:
    frame = pd.read_excel(path, sheet_name=tax.SUMMARY, header=None)
    out = {}
    for row in frame.itertuples(index=False):
        label = row[0]
        if isinstance(label, str) and (label[:1] == "B" and label[1:3].isdigit() or label == TOTAL_LABEL):
            key = "*" if label == TOTAL_LABEL else label.split(" ", 1)[1]
            out[key] = [int(v) for v in row[3:10]]
    return out


@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize("period", ["2026-03", "2026-Q1"])
def test_figures_equal_sql_per_business_and_in_total(frozen_sandbox, tmp_path, declared, period):
    businesses = load_businesses(DEMO_BUSINESSES) if declared else []
    warehouse = synced(frozen_sandbox, tmp_path, businesses)
    result = render_tax_report(warehouse, period, tmp_path / "reports", now=NOW)
    first, last = (dt.date(2026, 3, 1), dt.date(2026, 3, 31)) if period == "2026-03" else (dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    expected = _sql_figures(warehouse, first, last)
    assert result.kind == ("tax" if period == "2026-03" else "vat")
    assert result.path.name == f"point3-{result.kind}-{period}-v1.xlsx" and result.path.parent.name == period
    # pandas reads the cached values of the formulas: every business and the key's total
    assert _summary_frame(result.path) == expected
    assert [result.totals[k] for k in FIGURES] == expected["*"]
    # openpyxl, each business's own sheet: the return's lines
    wb = load_workbook(result.path, data_only=True)
    sheets = [ws for ws in wb.worksheets if ws.title[:1] == "B" and ws.title[1:3].isdigit()]
    assert len(sheets) == (6 if declared else len(expected) - 1)
    for ws in sheets:
        rows = {r[0].value: [c.value for c in r] for r in ws.iter_rows() if r[0].value}
        want = expected[rows["사업자"][2]]
        assert rows["과세표준 합계 (과세 매출 전체)"][2:4] == want[0:2]
        assert rows["면세 수입금액"][2] == want[2] and rows["미분류 (분류 전에는 신고 불가)"][2] == want[3]
        card_slips = next(r for r in list(ws.iter_rows())[20:] if r[0].value == "합계")
        assert [c.value for c in card_slips[2:5]] == [want[0] + want[1], want[2], sum(want[0:3])]
        assert rows["사업자등록번호"][2][3] == "-" if declared else rows["사업자등록번호"][2].startswith("미등록")
    texts = [c.value for r in wb[tax.SUMMARY].iter_rows() for c in r if isinstance(c.value, str)]
    assert (tax.NO_BUSINESSES_FILE in texts) is not declared
    assert verify_report(warehouse, result.path) == []


def test_the_checks_list_every_class_a_person_should_look_at(frozen_sandbox, tmp_path):
    warehouse = synced(frozen_sandbox, tmp_path, load_businesses(DEMO_BUSINESSES))
    result = render_tax_report(warehouse, "2026-Q1", tmp_path / "reports", now=NOW)
    rows = [[c.value for c in r] for r in load_workbook(result.path)[tax.CHECKS].iter_rows()]
    listed: dict[str, set[str]] = {}
    for r in rows:
        if r[0] in tax.CHECK_NAMES.values() and r[1] and not isinstance(r[1], int):
            listed.setdefault(r[0], set()).add(r[1])
    split = split_rows(warehouse)
    in_q1 = {s: r for s, r in split.items() if r["payment_date"] >= dt.date(2026, 1, 1)}
    for name, cls in ((tax.CHECK_NAMES[1], "unclassified"), (tax.CHECK_NAMES[2], "impossible_vat"), (tax.CHECK_NAMES[3], "mixed")):
        assert listed[name] == {s for s, r in in_q1.items() if r["tax_class"] == cls}, name
    assert listed[tax.CHECK_NAMES[4]] == {s for s, r in in_q1.items() if r["declaration_conflict"]}
    assert listed[tax.CHECK_NAMES[4]]  # the demo's hanbit-gallery is declared all-taxable with exempt parts
    assert not result.is_final and result.totals["unclassified_count"] > 0


def _detail(path) -> list[list]:
    return [[c.value for c in r] for r in load_workbook(path)[filing.DETAIL].iter_rows(min_row=filing.DETAIL_ABOVE + 2)]


def test_a_cancellation_in_the_next_month_and_quarter_lands_there_and_q1_is_not_restated(frozen_sandbox, tmp_path):
    warehouse = synced(frozen_sandbox, tmp_path)
    out = tmp_path / "reports"
    march, quarter = (render_tax_report(warehouse, p, out, now=NOW) for p in ("2026-03", "2026-Q1"))
    signature = active_payment_of(frozen_sandbox, dt.date(2026, 3, 17))
    frozen_sandbox.state.clock.set_now(dt.datetime(2026, 4, 2, 10, 0, tzinfo=KST))
    sync_days(frozen_sandbox, warehouse, dt.date(2026, 3, 17))  # a sweep that still sees it active in April
    cancel_and_sync(frozen_sandbox, warehouse, signature, dt.date(2026, 3, 17))  # the next sweep sees it cancelled
    total = split_rows(warehouse)[signature]["total_charge"]
    later = dt.datetime(2026, 4, 2, 11, tzinfo=KST)
    for before in (march, quarter):
        again = render_tax_report(warehouse, before.period, out, now=later)
        assert (again.created, again.version, again.totals) == (False, 1, before.totals)
    for period in ("2026-04", "2026-Q2"):
        result = render_tax_report(warehouse, period, out, now=later)
        assert (result.totals["canceled_count"], result.totals["canceled_total"], result.totals["sale_count"]) == (1, total, 0)
        cancels = [r for r in _detail(result.path) if r[0] == filing.CANCELLATION_KO]
        assert [(r[6], r[1].date(), r[15], r[22]) for r in cancels] == [(signature, dt.date(2026, 4, 2), -total, None)]
        assert verify_report(warehouse, result.path) == []


def test_a_cancellation_straddling_the_quarter_boundary_is_marked(frozen_sandbox, tmp_path):
    warehouse = synced(frozen_sandbox, tmp_path)
    signature = active_payment_of(frozen_sandbox, dt.date(2026, 3, 17))
    frozen_sandbox.state.clock.set_now(dt.datetime(2026, 3, 31, 23, 57, tzinfo=KST))
    sync_days(frozen_sandbox, warehouse, dt.date(2026, 3, 17))  # last seen active on 31 March
    cancel_and_sync(frozen_sandbox, warehouse, signature, dt.date(2026, 3, 17))  # seen cancelled on 1 April
    result = render_tax_report(warehouse, "2026-Q2", tmp_path / "reports", now=dt.datetime(2026, 4, 1, 1, tzinfo=KST))
    cancels = [r for r in _detail(result.path) if r[0] == filing.CANCELLATION_KO]
    assert [(r[6], r[22]) for r in cancels] == [(signature, "경계 불확실: 취소 하한이 이전 기간")]
    assert result.totals["straddling_count"] == 1
    checks = [[c.value for c in r] for r in load_workbook(result.path)[tax.CHECKS].iter_rows()]
    assert [r[1] for r in checks if r[0] == tax.CHECK_NAMES[13] and isinstance(r[1], str)] == [signature]


def test_first_seen_cancelled_payments_are_filed_in_their_own_period(frozen_sandbox, tmp_path):
    warehouse = synced(frozen_sandbox, tmp_path)
    first_seen = {s: r for s, r in split_rows(warehouse).items() if r["cancel_date_unknown"]}
    assert first_seen
    for period, month in (("2026-02", 2), ("2026-03", 3)):
        result = render_tax_report(warehouse, period, tmp_path / "reports", now=NOW)
        marked = {r[6] for r in _detail(result.path) if r[0] == filing.CANCELLATION_KO and r[22] and "취소일 미상" in r[22]}
        assert marked == {s for s, r in first_seen.items() if r["payment_date"].month == month}
        assert result.totals["canceled_date_unknown_count"] == len(marked)


def _docs_shaped_month(tmp_path) -> Books:
    books = Books(tmp_path / "wh.duckdb")
    books.payment("ok", kst(2025, 11, 3, 10), total=11_000)
    books.payment("docs", kst(2025, 11, 4, 10), total=9_000, vat=0, supply=0)  # vat 0, taxFreeAmount 0
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    return books


def test_an_unclassified_payment_keeps_the_period_from_being_final_until_a_person_classifies_it(tmp_path):
    books = _docs_shaped_month(tmp_path)
    wh = books.refresh()
    now = kst(2025, 12, 2, 9)
    v1 = render_tax_report(wh, "2025-11", tmp_path / "r", now=now)
    assert not v1.is_final and v1.days_synced == v1.days_in_period and v1.totals["unclassified_amount"] == 9_000
    assert "미분류 결제 1건" in load_workbook(v1.path)[tax.SUMMARY]["A2"].value
    with wh.connect() as conn:
        classify(conn, "docs", "exempt", "도서 판매, 영수증 확인", "회계 김")
    wh = books.refresh()
    v2 = render_tax_report(wh, "2025-11", tmp_path / "r", now=now)
    assert (v2.version, v2.is_final, v2.changes) == (2, True, 1)
    assert (v2.totals["unclassified_amount"], v2.totals["exempt_amount"]) == (0, 9_000)
    changes = [[c.value for c in r] for r in load_workbook(v2.path)[tax.CHANGES].iter_rows() if r[1].value == "docs"]
    assert [(r[0], r[4]) for r in changes] == [("과세 구분 변경 class changed", "unclassified → exempt (사람 분류: 도서 판매, 영수증 확인)")]
    assert verify_report(wh, v2.path) == []


@pytest.mark.parametrize(("period", "kind", "days"), [("2025-11", "tax", 30), ("2025-Q4", "vat", 92),
                                                      ("2025-H2", "vat", 184), ("2025", "vat", 365)])
def test_every_period_has_its_own_versions_and_printed_pages(tmp_path, period, kind, days):
    wh = _docs_shaped_month(tmp_path).refresh()
    result = render_tax_report(wh, period, tmp_path / "r", now=kst(2026, 1, 2, 9))
    assert (result.kind, result.period, result.version, result.days_in_period) == (kind, period, 1, days)
    assert result.path.relative_to(tmp_path / "r").as_posix() == f"{period}/point3-{kind}-{period}-v1.xlsx"
    wb = load_workbook(result.path)
    for ws in wb.worksheets:
        assert "부가세" in ws.oddHeader.left.text and period in ws.oddHeader.right.text, ws.title
        assert ws.oddFooter.right.text == "&P / &N 쪽" and ws.oddFooter.left.text.startswith("v1 · 데이터 기준")
        assert ws.page_setup.fitToWidth == 1 and ws.sheet_properties.pageSetUpPr.fitToPage
    business = next(ws for ws in wb.worksheets if ws.title.startswith("B01"))
    assert business.oddHeader.center.text == "테스트 극장 (미등록 (사업자 정보 파일에 없음))"
    assert (tax.PAYMENT_MONTH in wb.sheetnames) is (kind == "tax")
    assert verify_report(wh, result.path) == []


def test_the_month_workbook_reconciles_the_payment_month_view_on_one_line(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.payment("oct", kst(2025, 10, 30, 10), total=3_300)
    books.payment("a", kst(2025, 11, 3, 10), total=11_000)
    books.payment("b", kst(2025, 11, 4, 10), total=22_000)
    books.payment("c", kst(2025, 11, 5, 10), total=5_500)
    books.cancel("oct", kst(2025, 11, 2, 4))  # earlier payment, cancelled in November
    books.cancel("a", kst(2025, 11, 6, 4))  # this month's, cancelled this month
    books.cancel("b", kst(2025, 12, 1, 4))  # this month's, cancelled in December
    books.synced(dt.date(2025, 10, 1), dt.date(2025, 11, 30))
    result = render_tax_report(books.refresh(), "2025-11", tmp_path / "r", now=kst(2025, 12, 2, 9))
    frame = pd.read_excel(result.path, sheet_name=tax.PAYMENT_MONTH, header=None)
    line = next(r for r in frame.itertuples(index=False) if r[0] == "대사 (0이면 일치)")
    # payment month: 38,500 sold, 11,000 + 22,000 cancelled since → 5,500; + December's 22,000 − October's 3,300
    assert [int(v) for v in line[1:7]] == [5_500, 22_000, 3_300, 24_200, 24_200, 0]
    assert result.totals["total_charge"] == 38_500 - 11_000 - 3_300


def test_migration_006_keeps_month_versions_as_month_periods(tmp_path):
    path = tmp_path / "old.duckdb"
    conn = warehouse_before(path, 6)
    conn.execute(
        "INSERT INTO report_versions VALUES ('tax', DATE '2025-11-01', 1, 'f', '2025-11/point3-tax-2025-11-v1.xlsx', "
        "now(), NULL, NULL, 30, 30, true, 0, '{\"net_total\": 5}')"
    )
    conn.execute("INSERT INTO report_payment_snapshots VALUES ('tax', DATE '2025-11-01', 1, 's1', DATE '2025-11-03', 11, 10, 1, 'a', false)")
    conn.close()
    wh = Warehouse(path)
    with wh.connect() as c:
        assert c.execute("SELECT kind, period, period_first, period_last, version, days_in_period FROM report_versions").fetchall() == [
            ("tax", "2025-11", dt.date(2025, 11, 1), dt.date(2025, 11, 30), 1, 30)
        ]
        assert c.execute("SELECT period, signature FROM report_payment_snapshots").fetchall() == [("2025-11", "s1")]
        with pytest.raises(duckdb.ConstraintException):
            c.execute("INSERT INTO report_versions SELECT * FROM report_versions")


def test_a_version_written_before_the_filing_view_is_followed_by_one_that_says_so(tmp_path):
    books = _docs_shaped_month(tmp_path)
    wh = books.refresh()
    out = tmp_path / "r"
    old = out / "2025-11" / "point3-tax-2025-11-v1.xlsx"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"a workbook of the payment-month view")
    with wh.connect() as conn:  # as migration 006 leaves a month's version of the old workbook
        conn.execute(
            "INSERT INTO report_versions VALUES ('tax', '2025-11', DATE '2025-11-01', DATE '2025-11-30', 1, 'old', "
            "'2025-11/point3-tax-2025-11-v1.xlsx', now(), NULL, NULL, 30, 30, true, 0, '{\"supply_value\": 1}')"
        )
    result = render_tax_report(wh, "2025-11", out, now=kst(2025, 12, 2, 9))
    assert (result.version, result.changes, old.read_bytes()) == (2, 0, b"a workbook of the payment-month view")
    texts = [c.value for r in load_workbook(result.path)[tax.CHANGES].iter_rows() for c in r if isinstance(c.value, str)]
    assert any("이전 방식으로 만들어져 행 단위로 비교할 수 없습니다" in t for t in texts)
    assert verify_report(wh, result.path) == []


def test_a_business_name_with_header_codes_prints_as_text(tmp_path):
    books = Books(tmp_path / "wh.duckdb")
    books.payment("amp", kst(2025, 11, 3, 10), nickname="A&B &P &N " + "가" * 80)
    books.synced(dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    result = render_tax_report(books.refresh(), "2025-11", tmp_path / "r", now=kst(2025, 12, 2, 9))
    ws = next(ws for ws in load_workbook(result.path).worksheets if ws.title.startswith("B01"))
    center = ws.oddHeader.center.text
    assert center.startswith("A&&B &&P &&N 가") and "&" not in center.replace("&&", "")

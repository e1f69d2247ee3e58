"""The totals formulas, recalculated by the `formulas` library, equal the warehouse's SQL totals."""

from __future__ import annotations


import formulas
import pytest
from openpyxl import load_workbook

from point3_pipeline.reports import render_reconciliation_report, render_tax_report, tax
from tests.report_fixtures import kst
from tests.test_reports import INJECTIONS, NOV, NOW, _books


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("formulas")
    books = _books(tmp_path)
    for n, text in enumerate(INJECTIONS):
        books.payment(f"inj{n}", kst(2025, 11, 9, 10, n), total=1_000 * (n + 1), product=text, order_id=text)
    books.observation(kst(2025, 10, 31, 23), 0)
    books.observation(kst(2025, 11, 10, 23), 123_456)
    wh = books.refresh()
    results = {
        "tax": render_tax_report(wh, NOV, tmp_path / "r", now=NOW),
        "reconciliation": render_reconciliation_report(wh, NOV, tmp_path / "r", now=NOW),
    }
    values = {}
    for kind, result in results.items():
        solution = formulas.ExcelModel().loads(str(result.path)).finish().calculate()
        by_cell = {}
        for key, value in solution.items():
            if "]" not in key or "!" not in key:
                continue  # the model's non-cell nodes
            sheet, cell = key.split("]", 1)[1].rsplit("!", 1)
            by_cell[(sheet.strip("'").upper(), cell)] = value.value[0][0] if hasattr(value, "value") else value
        values[kind] = by_cell
    return wh, results, values


def _totals_rows(path, title: str) -> dict[str, dict[int, str]]:
    """label -> {column index: cell coordinate} for the formula cells of each totals row."""
    ws = load_workbook(path)[title]
    rows = {}
    for row in ws.iter_rows():
        cells = {i: c.coordinate for i, c in enumerate(row) if c.data_type == "f"}
        if cells:
            rows[row[0].value] = cells
    return rows


def _sql(wh, query: str, params: list) -> tuple:
    with wh.connect() as conn:
        return conn.execute(query, params).fetchone()


def _computed(values, title, cells: dict[int, str]) -> dict[int, int]:
    out = {}
    for index, coordinate in cells.items():
        value = values[(title.upper(), coordinate)]
        assert float(value) == int(value)
        out[index] = int(value)
    return out


MONTH_SQL = """
    SELECT count(*), sum(total_charge), sum(tax_free_amount), sum(vat),
           count(*) FILTER (WHERE is_canceled), coalesce(sum(total_charge) FILTER (WHERE is_canceled), 0),
           coalesce(sum(tax_free_amount) FILTER (WHERE is_canceled), 0), coalesce(sum(vat) FILTER (WHERE is_canceled), 0)
    FROM payments WHERE payment_date BETWEEN DATE '2025-11-01' AND DATE '2025-11-30'
"""


def test_payment_list_totals(recalculated):
    wh, results, values = recalculated
    n, total, supply, vat, c_n, c_total, c_supply, c_vat = (int(v) for v in _sql(wh, MONTH_SQL, []))
    rows = _totals_rows(results["tax"].path, tax.PAYMENTS)
    got = {label: _computed(values["tax"], tax.PAYMENTS, cells) for label, cells in rows.items()}
    assert got["합계 (전체) total"] == {2: n, 8: total, 9: supply, 10: vat}
    assert got["취소 canceled"] == {2: c_n, 8: c_total, 9: c_supply, 10: c_vat}
    assert got["순액 (정상) net"] == {2: n - c_n, 8: total - c_total, 9: supply - c_supply, 10: vat - c_vat}


@pytest.mark.parametrize("title", [tax.DAILY, tax.CULTURE])
def test_figure_sheet_totals(recalculated, title):
    wh, results, values = recalculated
    n, total, supply, vat, c_n, c_total, *_ = (int(v) for v in _sql(wh, MONTH_SQL, []))
    expected = [n, total, supply, vat, c_n, c_total, n - c_n, total - c_total]
    rows = _totals_rows(results["tax"].path, title)
    got = _computed(values["tax"], title, rows["합계 total"])
    assert [got[i] for i in range(3, 11)] == expected


@pytest.mark.parametrize("group", ["소득공제", "지출증빙"])
def test_culture_subtotals(recalculated, group):
    wh, results, values = recalculated
    expected = _sql(
        wh,
        """
        SELECT count(*), sum(total_charge), sum(tax_free_amount), sum(vat), count(*) FILTER (WHERE is_canceled),
               coalesce(sum(total_charge) FILTER (WHERE is_canceled), 0), count(*) FILTER (WHERE NOT is_canceled),
               coalesce(sum(total_charge) FILTER (WHERE NOT is_canceled), 0)
        FROM payments JOIN culture_expense_types USING (culture_expense_type)
        WHERE payment_date BETWEEN DATE '2025-11-01' AND DATE '2025-11-30' AND deduction_group = ?
        """,
        [group],
    )
    rows = _totals_rows(results["tax"].path, tax.CULTURE)
    got = _computed(values["tax"], tax.CULTURE, rows[f"{group}용 소계"])
    assert [got[i] for i in range(3, 11)] == list(expected)


def test_cancellation_totals(recalculated):
    wh, results, values = recalculated
    this_month = _sql(wh, MONTH_SQL, [])[4:8]
    earlier = _sql(
        wh,
        """
        SELECT count(*), sum(total_charge), sum(tax_free_amount), sum(vat) FROM cancellations
        WHERE detected_date BETWEEN DATE '2025-11-01' AND DATE '2025-11-30' AND payment_date < DATE '2025-11-01'
        """,
        [],
    )
    rows = _totals_rows(results["tax"].path, tax.CANCELLATIONS)
    got_this = _computed(values["tax"], tax.CANCELLATIONS, rows[f"합계: {tax.THIS_MONTH}"])
    got_earlier = _computed(values["tax"], tax.CANCELLATIONS, rows[f"합계: {tax.EARLIER}"])
    assert [got_this[i] for i in (3, 7, 8, 9)] == [int(v) for v in this_month]
    assert [got_earlier[i] for i in (3, 7, 8, 9)] == [int(v) for v in earlier]


def test_reconciliation_totals(recalculated):
    _, results, values = recalculated
    totals = results["reconciliation"].totals
    rows = _totals_rows(results["reconciliation"].path, "일별 대사")
    got = _computed(values["reconciliation"], "일별 대사", rows["합계 total"])
    assert [got[i] for i in range(8, 13)] == [
        totals["payments_in"], totals["cancellations_out"], totals["fees"], totals["payouts"], totals["unexplained"],
    ]  # fmt: skip
    assert totals["closing_balance"] - totals["opening_balance"] == 123_456
    assert totals["closing_balance"] - totals["expected_closing"] == totals["unexplained"]

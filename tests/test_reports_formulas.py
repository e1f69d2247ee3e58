"""The workbooks' formulas, recalculated by the `formulas` library: every tax-workbook formula
computes the value cached beside it, and the figures equal the warehouse's SQL."""

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
        books.payment(f"inj{n}", kst(2025, 11, 9, 10, n), total=1_000 * (n + 1), product=text, order_id=text, method=text)
    books.payment("mixed", kst(2025, 11, 9, 11), total=15_000, vat=500, supply=14_500, method="EASY_PAY")
    books.payment("exempt", kst(2025, 11, 9, 12), total=8_000, vat=0, supply=8_000, method="BANK_TRANSFER")
    books.payment("docs", kst(2025, 11, 9, 13), total=9_000, vat=0, supply=0)
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


def _sql(wh, query: str, params: list) -> tuple:
    with wh.connect() as conn:
        return conn.execute(query, params).fetchone()


def test_every_tax_formula_computes_its_cached_value(recalculated):
    _, results, values = recalculated
    path = results["tax"].path
    with_formulas, cached = load_workbook(path), load_workbook(path, data_only=True)
    checked = 0
    for ws in with_formulas.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.data_type != "f":
                    continue
                computed = values["tax"][(ws.title.upper(), c.coordinate)]
                assert float(computed) == int(computed), (ws.title, c.coordinate, c.value)
                assert cached[ws.title][c.coordinate].value == int(computed), (ws.title, c.coordinate, c.value)
                checked += 1
    assert checked > 300  # summary, business sheet, daily and payment-month figures


FILING_SQL = """
    SELECT CAST(sum(net_taxable_supply) AS BIGINT), CAST(sum(net_vat) AS BIGINT), CAST(sum(net_exempt_amount) AS BIGINT),
           CAST(sum(net_unclassified_amount) AS BIGINT), CAST(sum(net_total) AS BIGINT),
           CAST(sum(payment_count) AS BIGINT), CAST(sum(canceled_count) AS BIGINT)
    FROM tax_filing_daily WHERE filing_month = DATE '2025-11-01'
"""


def test_summary_totals_recalculate_to_the_filing_table(recalculated):
    wh, results, values = recalculated
    ws = load_workbook(results["tax"].path)[tax.SUMMARY]
    row = next(r for r in ws.iter_rows() if r[0].value == "전체 (이 키의 모든 결제)")
    computed = [int(values["tax"][(tax.SUMMARY.upper(), c.coordinate)]) for c in row[3:10]]
    assert computed == list(_sql(wh, FILING_SQL, []))
    # exempt: 8,000, the mixed payment's 15,000 − 11 × 500, and the injections' 1,000..5,000 whose
    # VAT (total // 11) leaves 10..6 won a 10% VAT does not explain (mixed by the rule)
    assert computed[0] > 0 and computed[2] == 8_000 + 9_500 + (10 + 9 + 8 + 7 + 6) and computed[3] == 9_000


def test_reconciliation_totals(recalculated):
    _, results, values = recalculated
    totals = results["reconciliation"].totals
    ws = load_workbook(results["reconciliation"].path)["일별 대사"]
    row = next(r for r in ws.iter_rows() if r[0].value == "합계 total")
    got = {i: int(values["reconciliation"][("일별 대사".upper(), c.coordinate)]) for i, c in enumerate(row) if c.data_type == "f"}
    assert [got[i] for i in range(8, 13)] == [
        totals["payments_in"], totals["cancellations_out"], totals["fees"], totals["payouts"], totals["unexplained"],
    ]  # fmt: skip
    assert totals["closing_balance"] - totals["opening_balance"] == 123_456
    assert totals["closing_balance"] - totals["expected_closing"] == totals["unexplained"]

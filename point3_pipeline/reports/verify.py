"""Re-read a written workbook and check it against the warehouse (Dagster's asset check).

A workbook is compared with what its version was rendered from: the totals recorded in
report_versions and the payment snapshot of that version, so an older version still
verifies after newer data arrived. The checks catch edited amounts, edited or stretched
totals formulas, and formulas outside the totals rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from openpyxl import load_workbook

from point3_pipeline.reports import reconciliation, tax
from point3_pipeline.periods import Period
from point3_pipeline.reports.workbook import beyond_excel
from point3_pipeline.warehouse import Warehouse

_DIGITS = re.compile(r"-?[0-9]+")
_FILE = re.compile(r"^point3-(tax|reconciliation)-(\d{4}-\d{2})-v(\d+)\.xlsx$")


def verify_report(warehouse: Warehouse, path: Path) -> list[str]:
    """Problems found in the workbook at `path`; [] when it agrees with the warehouse."""
    path = Path(path)
    match = _FILE.match(path.name)
    if not match:
        return [f"{path.name}: not a point3 report file name"]
    kind, month_text, version = match.group(1), match.group(2), int(match.group(3))
    month = Period.parse(month_text)
    with warehouse.connect() as conn:
        recorded = conn.execute(
            "SELECT CAST(totals AS VARCHAR) FROM report_versions WHERE kind = ? AND month = ? AND version = ?",
            [kind, month.first, version],
        ).fetchone()
        if recorded is None:
            return [f"{path.name}: the warehouse has no record of this version"]
        snapshot = dict(
            zip(
                ("payment_count", "total_charge", "supply_value", "vat", "canceled_count", "canceled_total"),
                conn.execute(
                    """
                    SELECT count(*), coalesce(sum(total_charge), 0), coalesce(sum(tax_free_amount), 0),
                           coalesce(sum(vat), 0), count(*) FILTER (WHERE is_canceled),
                           coalesce(sum(total_charge) FILTER (WHERE is_canceled), 0)
                    FROM report_payment_snapshots WHERE kind = ? AND month = ? AND version = ?
                    """,
                    [kind, month.first, version],
                ).fetchone(),
            )
        )
    totals = json.loads(recorded[0])
    problems = [
        f"recorded total {key} = {totals.get(key)} but the version's payments sum to {value}"
        for key, value in snapshot.items()
        if totals.get(key) != value
    ]
    wb = load_workbook(path, read_only=True)
    try:
        sheets = {ws.title: [list(r) for r in ws.iter_rows()] for ws in wb.worksheets}
    finally:
        wb.close()
    problems += _formulas_only_in_totals(sheets)
    if kind == "tax":
        problems += _check_tax(sheets, totals)
    else:
        problems += _check_reconciliation(sheets, totals)
    return [f"{path.name}: {p}" for p in problems]


def _formulas_only_in_totals(sheets: dict[str, list[list]]) -> Iterator[str]:
    for title, rows in sheets.items():
        for row in rows:
            formulas = [c for c in row if getattr(c, "data_type", None) == "f"]
            if formulas and not str(row[0].value or "").startswith(("합계", "취소 canceled", "순액", "소득공제용 소계", "지출증빙용 소계")):
                yield f"{title}!{formulas[0].coordinate}: a formula outside a totals row"


def _table(rows: list[list]) -> tuple[int, list[list], list[list]]:
    """(header row number, data rows, totals rows) of a list sheet: totals rows hold formulas."""
    header = next(i for i, r in enumerate(rows) if r and isinstance(r[0].value, str) and "\n" in r[0].value)
    body = rows[header + 1 :]
    is_total = [any(getattr(c, "data_type", None) == "f" for c in r) for r in body]
    return (
        header + 1,
        [r for r, total in zip(body, is_total) if not total],
        [r for r, total in zip(body, is_total) if total],
    )


def _values(row: list) -> list:
    return [_value(getattr(c, "value", None)) for c in row]


def _value(value):
    # an amount beyond a spreadsheet number's exact range is written as its digits (workbook.beyond_excel)
    if isinstance(value, str) and _DIGITS.fullmatch(value) and beyond_excel(int(value)):
        return int(value)
    return value


def _check_tax(sheets: dict[str, list[list]], totals: dict[str, int]) -> list[str]:
    problems = []
    header, data_rows, totals_rows = _table(sheets[tax.PAYMENTS])
    rows = [_values(r) for r in data_rows if len(r) > 2 and r[2].value is not None]
    status, amounts = 11, {"total_charge": 8, "supply_value": 9, "vat": 10}
    found = {"payment_count": len(rows)}
    found |= {k: sum(r[i] or 0 for r in rows) for k, i in amounts.items()}
    canceled = [r for r in rows if r[status] == tax.STATUS_CANCELED]
    found["canceled_count"] = len(canceled)
    found["canceled_total"] = sum(r[8] or 0 for r in canceled)
    found["net_total"] = found["total_charge"] - found["canceled_total"]
    problems += [
        f"{tax.PAYMENTS}: rows give {key} = {value}, the warehouse {totals.get(key)}"
        for key, value in found.items()
        if totals.get(key) != value
    ]
    # The totals formulas must cover exactly the data rows.
    first, last = header + 1, header + max(len(data_rows), 1)
    for letter in "IJK":
        expected = f"=SUM({letter}{first}:{letter}{last})"
        cell = totals_rows[0][ord(letter) - ord("A")] if totals_rows else None
        if cell is None or cell.value != expected:
            problems.append(f"{tax.PAYMENTS}: totals formula in column {letter} is {getattr(cell, 'value', None)!r}, expected {expected!r}")
    summary = {r[0].value: _values(r) for r in sheets[tax.SUMMARY] if r and isinstance(r[0].value, str)}
    for label, keys in (
        ("이 달 결제 (전체)", ("payment_count", "total_charge", "supply_value", "vat")),
        ("취소된 결제", ("canceled_count", "canceled_total", "canceled_supply_value", "canceled_vat")),
        ("순매출 (전체 − 취소)", ("net_count", "net_total", "net_supply_value", "net_vat")),
    ):
        shown = summary.get(label, [None] * 6)[2:6]
        if list(shown) != [totals.get(k) for k in keys]:
            problems.append(f"{tax.SUMMARY}: '{label}' shows {shown}, the warehouse {[totals.get(k) for k in keys]}")
    for sheet_name, offset in ((tax.DAILY, 3), (tax.CULTURE, 3)):
        _, data_rows, _ = _table(sheets[sheet_name])
        values = [_values(r) for r in data_rows]
        for n, key in enumerate(tax.FIGURE_KEYS):
            shown = sum(v[offset + n] or 0 for v in values if len(v) > offset + n and isinstance(v[offset + n], int))
            if key in totals and shown != totals[key]:
                problems.append(f"{sheet_name}: rows give {key} = {shown}, the warehouse {totals[key]}")
    return problems


def _check_reconciliation(sheets: dict[str, list[list]], totals: dict[str, int]) -> list[str]:
    problems = []
    summary = {r[1].value: _value(r[2].value) for r in sheets[reconciliation.SUMMARY] if len(r) > 2 and isinstance(r[1].value, str)}
    for key, label in (
        ("opening_balance", "opening balance"), ("closing_balance", "closing balance"),
        ("payments_in", "payments in"), ("cancellations_out", "cancellations out"),
        ("unexplained", reconciliation.UNEXPLAINED_EN), ("observation_count", "observations"),
    ):  # fmt: skip
        if summary.get(label) != totals.get(key):
            problems.append(f"{reconciliation.SUMMARY}: {label} shows {summary.get(label)}, the warehouse {totals.get(key)}")
    _, data_rows, _ = _table(sheets[reconciliation.DAYS])
    values = [_values(r) for r in data_rows]
    for key, index in (("payments_in", 8), ("cancellations_out", 9), ("unexplained", 12)):
        shown = sum(v[index] or 0 for v in values if len(v) > index and isinstance(v[index], int))
        if shown != totals.get(key, 0):
            problems.append(f"{reconciliation.DAYS}: rows give {key} = {shown}, the warehouse {totals.get(key, 0)}")
    return problems

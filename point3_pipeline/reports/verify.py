"""Re-read a written workbook and check it against the warehouse (Dagster's asset check).

A workbook is compared with what its version was rendered from: the totals recorded in
report_versions and the snapshot of that version (its filing movements for a tax or VAT
workbook, its payments for a reconciliation), so an older version still verifies after newer
data arrived. The checks catch edited amounts, edited or stretched formulas, cached values that
disagree with the figures, and formulas where none belong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from openpyxl import load_workbook

from point3_pipeline.periods import Period
from point3_pipeline.reports import filing, reconciliation, tax
from point3_pipeline.reports.data import report_sql
from point3_pipeline.reports.versions import FILING_KINDS
from point3_pipeline.reports.workbook import beyond_excel
from point3_pipeline.warehouse import Warehouse

_DIGITS = re.compile(r"-?[0-9]+")
_FILE = re.compile(r"^point3-(tax|vat|reconciliation)-(\d{4}(?:-\d{2}|-Q[1-4]|-H[12])?)-v(\d+)\.xlsx$")
_DETAIL_RANGE = re.compile(r"'" + filing.DETAIL + r"'!\$[A-Z]+\$(\d+):\$[A-Z]+\$(\d+)")
SUMMARY_TOTAL_LABEL = "전체 (이 키의 모든 결제)"


def verify_report(warehouse: Warehouse, path: Path) -> list[str]:
    """Problems found in the workbook at `path`; [] when it agrees with the warehouse."""
    path = Path(path)
    match = _FILE.match(path.name)
    if not match:
        return [f"{path.name}: not a point3 report file name"]
    kind, label, version = match.group(1), match.group(2), int(match.group(3))
    keys = {"kind": kind, "period": Period.parse(label).label, "version": version}
    with warehouse.connect() as conn:
        recorded = conn.execute(report_sql("version_totals"), keys).fetchone()
        if recorded is None:
            return [f"{path.name}: the warehouse has no record of this version"]
        cursor = conn.execute(report_sql("filing_snapshot_totals" if kind in FILING_KINDS else "payment_snapshot_totals"), keys)
        snapshot = dict(zip([d[0] for d in cursor.description], (int(v) for v in cursor.fetchone())))
    totals = json.loads(recorded[0])
    problems = [
        f"recorded total {key} = {totals.get(key)} but the version's rows sum to {value}"
        for key, value in snapshot.items()
        if totals.get(key) != value
    ]
    if kind in FILING_KINDS:
        problems += _check_filing(path, totals)
    else:
        sheets = _sheets(path, data_only=False)
        problems += _formulas_only_in_totals(sheets)
        problems += _check_reconciliation(sheets, totals)
    return [f"{path.name}: {p}" for p in problems]


def _sheets(path: Path, *, data_only: bool) -> dict[str, list[list]]:
    wb = load_workbook(path, read_only=True, data_only=data_only)
    try:
        return {ws.title: [list(r) for r in ws.iter_rows()] for ws in wb.worksheets}
    finally:
        wb.close()


def _values(row: list) -> list:
    return [_value(getattr(c, "value", None)) for c in row]


def _value(value):
    # an amount beyond a spreadsheet number's exact range is written as its digits (workbook.beyond_excel)
    if isinstance(value, str) and _DIGITS.fullmatch(value) and beyond_excel(int(value)):
        return int(value)
    return value


def _check_filing(path: Path, totals: dict[str, int]) -> list[str]:
    formulas = _sheets(path, data_only=False)
    cached = _sheets(path, data_only=True)
    problems = list(_detail_rows_match(formulas[filing.DETAIL], totals))
    problems += _formulas_cover_the_detail(formulas)
    problems += _summary_shows_the_totals(cached[tax.SUMMARY], totals)
    return problems


def _detail_rows_match(rows: list[list], totals: dict[str, int]) -> Iterator[str]:
    body = [_values(r) for r in rows[filing.DETAIL_ABOVE + 1 :]]
    body = [r for r in body if r and r[0] in (filing.SALE_KO, filing.CANCELLATION_KO)]
    found = {field: sum(r[filing.COL[field]] or 0 for r in body) for field in filing.AMOUNTS}
    found["sale_count"] = sum(1 for r in body if r[0] == filing.SALE_KO)
    found["canceled_count"] = sum(1 for r in body if r[0] == filing.CANCELLATION_KO)
    for key, value in found.items():
        if totals.get(key) != value:
            yield f"{filing.DETAIL}: rows give {key} = {value}, the warehouse {totals.get(key)}"
    formulas = [c.coordinate for r in rows for c in r if getattr(c, "data_type", None) == "f"]
    if formulas:
        yield f"{filing.DETAIL}!{formulas[0]}: a formula in the detail sheet"


def _formulas_cover_the_detail(sheets: dict[str, list[list]]) -> Iterator[str]:
    """Every range a formula takes from the detail sheet is exactly its data rows."""
    rows = sheets[filing.DETAIL]
    data_rows = [r for r in rows[filing.DETAIL_ABOVE + 1 :] if r and getattr(r[0], "value", None) is not None]
    first = filing.DETAIL_ABOVE + 2
    last = first + max(len(data_rows), 1) - 1
    for title, sheet in sheets.items():
        for row in sheet:
            for c in row:
                if getattr(c, "data_type", None) != "f":
                    continue
                for start, end in _DETAIL_RANGE.findall(str(c.value)):
                    if (int(start), int(end)) != (first, last):
                        yield f"{title}!{c.coordinate}: takes rows {start}:{end} of {filing.DETAIL}, its data rows are {first}:{last}"
                        break


def _summary_shows_the_totals(rows: list[list], totals: dict[str, int]) -> Iterator[str]:
    shown = next((_values(r) for r in rows if r and getattr(r[0], "value", None) == SUMMARY_TOTAL_LABEL), None)
    if shown is None:
        yield f"{tax.SUMMARY}: no '{SUMMARY_TOTAL_LABEL}' row"
        return
    keys = (*tax.SUMMARY_FIELDS, "sale_count", "canceled_count")
    values = dict(zip(keys, shown[3:]))
    for key in keys:
        if values.get(key) != totals.get(key):
            yield f"{tax.SUMMARY}: '{SUMMARY_TOTAL_LABEL}' shows {key} = {values.get(key)!r}, the warehouse {totals.get(key)}"


def _formulas_only_in_totals(sheets: dict[str, list[list]]) -> Iterator[str]:
    for title, rows in sheets.items():
        for row in rows:
            formulas = [c for c in row if getattr(c, "data_type", None) == "f"]
            if formulas and not str(row[0].value or "").startswith(("합계", "취소 canceled", "순액")):
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

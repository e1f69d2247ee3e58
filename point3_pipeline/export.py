"""The filing export: per business, a CSV of the period's daily summary lines from tax_filing_daily.

One file per declared business (even with no sales in the period) and per undeclared
clientNickname with sales in it, named `filing_<first>-<last>_<사업자등록번호>.csv` (undeclared:
`..._undeclared-<hash of the name>.csv`). One line per (KST day, tax class, payment method),
columns in EXPORT_COLUMNS (documented in docs/data-dictionary.md). Amounts are whole won;
net = sales − 취소. UTF-8 with a byte-order mark (what Excel needs to read Korean), or CP949.
All files are encoded before any is written, so a text CP949 cannot hold writes nothing; each
file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from point3_pipeline.businesses import format_registration_number

ENCODINGS = {"utf-8": "utf-8-sig", "cp949": "cp949"}
# (header, tax_filing_daily column); the header is what an accountant's importer shows.
EXPORT_COLUMNS = (
    ("일자", "filing_date"),
    ("사업자등록번호", "registration_number"),
    ("상호", "business_name"),
    ("과세구분", "tax_class_name"),
    ("과세구분코드", "tax_class"),
    ("결제수단", "payment_method_name"),
    ("결제수단코드", "payment_method_type"),
    ("건수", "payment_count"),
    ("공급가액", "taxable_supply"),
    ("부가세", "vat"),
    ("면세금액", "exempt_amount"),
    ("미분류금액", "unclassified_amount"),
    ("합계금액", "total_charge"),
    ("취소건수", "canceled_count"),
    ("취소공급가액", "canceled_taxable_supply"),
    ("취소부가세", "canceled_vat"),
    ("취소면세금액", "canceled_exempt_amount"),
    ("취소미분류금액", "canceled_unclassified_amount"),
    ("취소합계금액", "canceled_total"),
    ("취소일미상건수", "canceled_date_unknown_count"),
    ("경계불확실건수", "canceled_straddling_count"),
)
_LINES = (
    "SELECT business_id, business_name, " + ", ".join(column for _, column in EXPORT_COLUMNS)
    + " FROM tax_filing_daily WHERE filing_date BETWEEN ? AND ?"
    " ORDER BY filing_date, tax_class_sort_order, payment_method_sort_order, payment_method_type"
)
_BUSINESSES = (
    "SELECT DISTINCT business_id, business_name, registration_number FROM business_declarations "
    "UNION SELECT DISTINCT business_id, business_name, registration_number FROM tax_filing_daily "
    "WHERE filing_date BETWEEN ? AND ? ORDER BY business_id NULLS LAST, business_name NULLS LAST"
)


class ExportError(ValueError):
    """The export cannot be written as asked; one sentence naming what to fix."""


@dataclass(frozen=True)
class _File:
    name: str
    data: bytes


def export_filing(conn: duckdb.DuckDBPyConnection, first_day: dt.date, last_day: dt.date, out_dir: str | Path,
                  encoding: str = "utf-8") -> list[Path]:
    """Write one CSV per business for the KST days first_day..last_day; returns the paths."""
    if encoding not in ENCODINGS:
        raise ExportError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}.")
    if first_day > last_day:
        raise ExportError(f"the period's first day {first_day} is after its last day {last_day}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; give a folder for the filing export.")
    lines: dict[tuple, list[tuple]] = {}
    for row in conn.execute(_LINES, [first_day, last_day]).fetchall():
        lines.setdefault((row[0], row[1]), []).append(row[2:])
    files = [
        _encode(_file_name(first_day, last_day, business), lines.get(business[:2], []), encoding)
        for business in conn.execute(_BUSINESSES, [first_day, last_day]).fetchall()
    ]
    try:
        out.mkdir(parents=True, exist_ok=True)
        return [_write_atomically(out / f.name, f.data) for f in files]
    except OSError as exc:
        raise ExportError(f"cannot write the filing export into {out} ({exc.strerror}).") from None


def filing_who(business_id: str | None, name: str | None, number: str | None) -> str:
    """The business's part of its file name: its 사업자등록번호, or undeclared-<hash of the name>."""
    if business_id is None:
        return f"undeclared-{hashlib.sha256((name or '').encode('utf-8')).hexdigest()[:10]}"
    return number


def _file_name(first_day: dt.date, last_day: dt.date, business: tuple) -> str:
    return f"filing_{first_day:%Y%m%d}-{last_day:%Y%m%d}_{filing_who(*business)}.csv"


def _cell(column: str, value: object) -> object:
    if value is None:
        return ""
    if column == "registration_number":
        return format_registration_number(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _encode(name: str, rows: list[tuple], encoding: str) -> _File:
    columns = [column for _, column in EXPORT_COLUMNS]
    header = _csv_line([h for h, _ in EXPORT_COLUMNS])
    chunks = [header.encode(ENCODINGS[encoding])]
    for line_number, row in enumerate(rows, start=2):
        cells = [_cell(column, value) for column, value in zip(columns, row)]
        text = _csv_line(cells)
        try:
            chunks.append(text.encode(encoding))
        except UnicodeEncodeError as exc:
            column = _column_of(cells, exc)
            raise ExportError(
                f"{name} line {line_number} ({row[0]}): the {column} text {exc.object[exc.start:exc.end]!r} "
                "cannot be written in CP949; export in UTF-8 instead or rename it in the businesses file."
            ) from None
    return _File(name, b"".join(chunks))


def _csv_line(cells: list[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()


def _column_of(cells: list[object], exc: UnicodeEncodeError) -> str:
    """The header of the cell holding the character that failed to encode (the line is made of cells)."""
    bad = exc.object[exc.start:exc.end]
    return next(header for (header, _), cell in zip(EXPORT_COLUMNS, cells) if bad in str(cell))


def _write_atomically(target: Path, data: bytes) -> Path:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target

"""Shared workbook plumbing: write-only sheets with one look, safe text cells, figures and print.

Sheets are written with openpyxl's write-only mode so a period of 300,000 payments streams to
disk instead of living in memory. Write-only mode fixes the order of things: column widths,
frozen panes and header row height must be set before the first row, rows are appended
top to bottom, and the autofilter is set once the last data row is known.

Formulas carry their cached value. A formula cell in an .xlsx file is `<f>` (the formula)
and `<v>` (its last computed value); Excel recalculates on open, but pandas.read_excel, mail
and file previewers and LibreOffice's default load only read `<v>`. openpyxl writes every
formula with an empty `<v>` and has no way to give one. The smallest honest way around it:
openpyxl's cell writer is
wrapped so that a `FormulaCell` is written as `<f>` plus the `<v>` we computed in SQL from the
very rows the formula adds up; every other cell goes through openpyxl's own writer unchanged. No sheet XML is
rewritten after the save (that would mean re-reading and recompressing a 300,000-row sheet),
and tests recalculate the formulas to prove the cached values are what they compute.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from openpyxl import Workbook
from openpyxl.worksheet import _writer as sheet_writer
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell import _writer as cell_writer
from openpyxl.cell.cell import Cell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.xml.functions import Element, SubElement
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from point3_pipeline.models import KST

WON = "#,##0"
COUNT = "#,##0"
DATETIME = "yyyy-mm-dd hh:mm:ss"
DATE = "yyyy-mm-dd"

# Excel and LibreOffice read a leading = + - @ as the start of a formula (DDE and
# HYPERLINK tricks included); such API text is written as an explicit text cell.
FORMULA_PREFIXES = ("=", "+", "-", "@")
# A text starting with one of these (or empty) takes text_cell's careful path: # for error codes.
_NOT_PLAIN_START = "=+-@#"

_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_HEADER_ALIGN = Alignment(wrap_text=True, vertical="center", horizontal="center")
_TOTAL_FONT = Font(bold=True)
_TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
_TOTAL_BORDER = Border(top=Side(style="thin"), bottom=Side(style="double"))
_TITLE_FONT = Font(bold=True, size=14)
_WARNING_FONT = Font(bold=True, color="C00000")
_NOTE_FONT = Font(italic=True, color="595959")
_SECTION_FONT = Font(bold=True, size=12)
_WRAP = Alignment(wrap_text=True, vertical="top")

_FORMATS = {"won": WON, "count": COUNT, "datetime": DATETIME, "date": DATE}


EXCEL_CELL_LIMIT = 32_767  # characters; Excel calls a longer cell corrupt content
# The largest integer a spreadsheet number (a double) holds exactly. A larger amount (a HUGEINT
# sum, or a record stored before amounts were bounded) is written as its digits in a text cell
# rather than rounded silently; Excel's SUM skips such a cell, which verify_report accounts for.
EXCEL_EXACT_INT = 2**53 - 1


def beyond_excel(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > EXCEL_EXACT_INT


@contextlib.contextmanager
def sheet_files_in(folder: Path) -> Iterator[None]:
    """Have this thread's write-only sheets stream to temp files in `folder`, not the system
    temp folder, where a killed render's stay for good with nothing saying whose they are."""
    folder.mkdir(parents=True, exist_ok=True)
    _this_thread.sheet_files = folder
    try:
        yield
    finally:
        _this_thread.sheet_files = None


def _create_sheet_file(suffix: str = "") -> str:
    folder = getattr(_this_thread, "sheet_files", None)
    if folder is None:
        return _openpyxl_create_temporary_file(suffix)
    handle, name = tempfile.mkstemp(suffix=suffix, prefix="openpyxl.", dir=folder)
    os.close(handle)
    sheet_writer.ALL_TEMP_FILES.append(name)  # openpyxl removes it after the save, or at exit
    return name


class FormulaCell(Cell):
    """A formula with the value it computes, written as `<f>` and `<v>` (see the module's note)."""

    __slots__ = ("cached",)


def _write_cell_with_cached_value(xf, worksheet, cell, styled=None):
    if not isinstance(cell, FormulaCell) or cell.data_type != "f":
        return _openpyxl_write_cell(xf, worksheet, cell, styled)
    attributes = {"r": cell.coordinate}
    if styled:
        attributes["s"] = f"{cell.style_id}"
    if isinstance(cell.cached, str):
        attributes["t"] = "str"
    element = Element("c", attributes)
    SubElement(element, "f").text = cell.value[1:]
    SubElement(element, "v").text = str(cell.cached)
    xf.write(element)


# openpyxl looks up its temp-file maker and its cell writer by module name, with no option to
# pass either. Both are replaced once, for the whole process, by versions that do what openpyxl
# does unless this thread's render asks otherwise (a folder of its own; a FormulaCell): renders
# of different merchants may run at once in one process, so nothing is swapped per render.
_this_thread = threading.local()
_openpyxl_create_temporary_file = sheet_writer.create_temporary_file
_openpyxl_write_cell = cell_writer.write_cell
sheet_writer.create_temporary_file = _create_sheet_file
sheet_writer.write_cell = _write_cell_with_cached_value


def clean_text(value: str) -> str:
    """Untrusted text with the control characters XML cannot hold replaced, and cut (with a
    visible marker) to what one Excel cell holds."""
    value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    if len(value) > EXCEL_CELL_LIMIT:
        marker = f" …(잘림: 전체 {len(value):,}자)"
        value = value[: EXCEL_CELL_LIMIT - len(marker)] + marker
    return value


def naive_kst(value: dt.datetime | None) -> dt.datetime | None:
    """Excel has no time zones: KST wall-clock time, labelled KST in the header."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(KST).replace(tzinfo=None)
    return value


@dataclass(frozen=True)
class Column:
    ko: str
    en: str
    kind: str = "text"  # text | won | count | datetime | date
    width: float = 14


@dataclass(frozen=True)
class Styled:
    """A value to write in one of the report's styles (see `styled`)."""

    value: object
    style: str = "text"
    number_format: str | None = None


@dataclass(frozen=True)
class Figure:
    """A formula and the value it computes (an int, or None for an empty cell)."""

    formula: str
    cached: int | None
    style: str = "text"
    number_format: str = WON


def line(text: str | None, style: str = "text") -> list:
    return [Styled(text, style)] if text else []


def free_sheet(wb: Workbook, title: str, widths: Sequence[float]):
    """A sheet of free-form rows (title blocks, key/value pairs) with the print set-up."""
    ws = wb.create_sheet(title)
    for index, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(index)].width = width
    setup_print(ws)
    return ws


def write_rows(ws, rows: Iterable[Sequence]) -> None:
    for row in rows:
        ws.append([_cell(ws, item) for item in row])


class Sheet:
    """A list sheet: free-form rows above, one header row (Korean over English), data rows
    and totals rows, with frozen header, autofilter and the header repeated on every page."""

    def __init__(
        self, wb: Workbook, title: str, columns: Sequence[Column], *, above: Sequence[Sequence] = (),
        autofilter: bool = True,
    ):  # fmt: skip
        self.ws = wb.create_sheet(title)
        self.columns = list(columns)
        self.autofilter = autofilter
        for index, column in enumerate(self.columns, 1):
            self.ws.column_dimensions[get_column_letter(index)].width = column.width
        self.header_row = len(above) + 1
        self.first_data_row = self.header_row + 1
        self.next_row = 1
        self.data_rows = 0
        self._last_data_row: int | None = None
        self.ws.freeze_panes = f"A{self.first_data_row}"
        self.ws.row_dimensions[self.header_row].height = 45  # Korean over English, either may wrap
        self.ws.print_title_rows = f"{self.header_row}:{self.header_row}"
        setup_print(self.ws)
        for row in above:
            self._append([_cell(self.ws, item) for item in row])
        self._append([styled(self.ws, f"{c.ko}\n{c.en}", "header") for c in self.columns])
        # One reusable cell per formatted column: openpyxl serialises a row as soon as it is
        # appended, so the same cell objects can carry the next row (no per-cell style lookup).
        self._templates = [_template(self.ws, c.kind) for c in self.columns]

    def _append(self, row: list) -> None:
        self.ws.append(row)
        self.next_row += 1

    def row(self, values: Sequence) -> int:
        out = []
        for value, template in zip(values, self._templates):
            # the common cases first, without a call: a long list is hundreds of thousands of rows
            kind = type(value)
            if kind is str and value[:1] not in _NOT_PLAIN_START and value.isprintable() and len(value) <= EXCEL_CELL_LIMIT:
                out.append(value)  # no control characters, nothing openpyxl would read as a formula or error
            elif value is None:
                out.append(None)
            elif kind is int and template is not None and -EXCEL_EXACT_INT <= value <= EXCEL_EXACT_INT:
                template.value = value
                out.append(template)
            elif isinstance(value, (Figure, Styled)):
                out.append(_cell(self.ws, value))
            elif isinstance(value, str):
                out.append(text_cell(self.ws, value))
            elif beyond_excel(value):
                out.append(text_cell(self.ws, str(value)))
            elif template is None:
                out.append(value)
            else:
                template.value = naive_kst(value) if isinstance(value, dt.datetime) else value
                out.append(template)
        self._append(out)
        self.data_rows += 1
        return self.next_row - 1

    def note_row(self, text: str) -> None:
        """A data row saying the sheet has nothing, so totals still have a range to sum."""
        self._append([styled(self.ws, text, "note")])
        self.data_rows += 1

    def cell_ref(self, index: int, row: int) -> str:
        return f"{get_column_letter(index + 1)}{row}"

    def column_range(self, index: int, first: int, last: int) -> str:
        letter = get_column_letter(index + 1)
        return f"{letter}{first}:{letter}{last}"

    def formula_row(self, label: str, formulas: dict[int, str], *, formats: dict[int, str] | None = None) -> int:
        """A totals row of literal formulas by column index; returns its row number."""
        if self._last_data_row is None:
            self._last_data_row = self.next_row - 1
        formats = formats or {}
        cells = []
        for index in range(len(self.columns)):
            value = label if index == 0 else formulas.get(index)
            if isinstance(value, Figure):
                cells.append(figure_cell(self.ws, value.formula, value.cached, "total", formats.get(index, value.number_format)))
            else:
                cells.append(styled(self.ws, value, "total", number_format=formats.get(index, WON)))
        self._append(cells)
        return self.next_row - 1

    def totals(self, label: str, templates: dict[int, str], *, formats: dict[int, str] | None = None) -> int:
        """A totals row over all data rows; templates use {range} for the column's own data
        rows and {colN} for column N's (e.g. "=SUMIF({col11},\"취소\",{range})")."""
        if self.data_rows == 0:
            self.note_row("(없음 / none)")
        first = self.first_data_row
        last = self._last_data_row or self.next_row - 1
        ranges = {f"col{n}": self.column_range(n, first, last) for n in range(len(self.columns))}
        return self.formula_row(
            label,
            {i: t.format(range=self.column_range(i, first, last), **ranges) for i, t in templates.items()},
            formats=formats,
        )

    def finish(self) -> None:
        if self.autofilter:
            last = max(self._last_data_row or self.next_row - 1, self.header_row)
            self.ws.auto_filter.ref = f"A{self.header_row}:{get_column_letter(len(self.columns))}{last}"


def figure_cell(ws, formula: str, cached, style: str = "text", number_format: str = WON):
    """A formula with its cached value; an amount beyond a spreadsheet number's exact range is
    written as its digits instead (a formula there would compute a rounded number)."""
    if beyond_excel(cached):
        return styled(ws, str(cached), style, number_format=number_format)
    cell = FormulaCell(worksheet=ws, column=1, row=1, value=formula)
    cell.cached = 0 if cached is None else cached
    _apply_style(cell, style)
    cell.number_format = number_format  # always styled: openpyxl reuses an unstyled cell for the next value
    return cell


def _header_text(text: str, limit: int) -> str:
    # & starts a header code (&P, &N, ...): text from a file or the API gets it doubled, after
    # the cut (Excel refuses a header of more than 255 characters), so no lone & is left
    return clean_text(text)[:limit].replace("&", "&&")


def print_header(ws, *, report: str, business: str, period: str, version: int, as_of: str) -> None:
    """Every printed page: report, business and period on top; version, as-of and page N of M
    at the bottom (Excel's and LibreOffice's own &P / &N fields)."""
    ws.oddHeader.left.text = _header_text(report, 60)
    ws.oddHeader.center.text = _header_text(business, 60)
    ws.oddHeader.right.text = _header_text(period, 40)
    ws.oddFooter.left.text = _header_text(f"v{version} · 데이터 기준 {as_of}", 60)
    ws.oddFooter.right.text = "&P / &N 쪽"
    for part in (ws.oddHeader.left, ws.oddHeader.center, ws.oddHeader.right, ws.oddFooter.left, ws.oddFooter.right):
        part.size = 8
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.page_margins.header = ws.page_margins.footer = 0.25


def print_on_a3(ws) -> None:
    """A wide list (every payment with its amounts and notes) prints on A3, still one page wide:
    on A4 its text would shrink below reading size."""
    ws.page_setup.paperSize = Worksheet.PAPERSIZE_A3


def setup_print(ws) -> None:
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_margins.left = ws.page_margins.right = 0.4


def text_cell(ws, value: str) -> WriteOnlyCell | str:
    """API text as a cell that can never be a formula."""
    value = clean_text(value)
    # A plain str is cheapest in write-only mode, but openpyxl reads "=..." as a formula and
    # "#N/A" and its kin as error cells: those get an explicit text cell.
    if not value.startswith(FORMULA_PREFIXES) and value not in ERROR_CODES:
        return value
    cell = WriteOnlyCell(ws, value)
    cell.data_type = "s"
    return cell


def styled(ws, value, style: str, *, number_format: str | None = None) -> WriteOnlyCell:
    """A cell in one of the report's styles: title, warning, note, section, header, total, label.
    Only totals cells may hold formulas; any other text is forced to a text cell."""
    if isinstance(value, dt.datetime):
        value = naive_kst(value)
    elif beyond_excel(value):
        value = str(value)
    is_formula = style == "total" and isinstance(value, str) and value.startswith("=")
    if isinstance(value, str) and not is_formula:
        value = clean_text(value)
    cell = WriteOnlyCell(ws, value)
    if isinstance(value, str) and not is_formula:
        cell.data_type = "s"
    _apply_style(cell, style)
    if number_format is None:
        number_format = _default_format(value)
    if number_format:
        cell.number_format = number_format
    return cell


def _apply_style(cell, style: str) -> None:
    if style == "title":
        cell.font = _TITLE_FONT
    elif style == "warning":
        cell.font = _WARNING_FONT
    elif style == "note":
        cell.font = _NOTE_FONT
    elif style == "section":
        cell.font = _SECTION_FONT
    elif style == "header":
        cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGN
    elif style == "total":
        cell.font, cell.fill, cell.border = _TOTAL_FONT, _TOTAL_FILL, _TOTAL_BORDER
    elif style == "label":
        cell.font, cell.alignment = _HEADER_FONT, _WRAP
    elif style == "wrap":
        cell.alignment = _WRAP


def _default_format(value) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, dt.datetime):
        return DATETIME
    if isinstance(value, dt.date):
        return DATE
    if isinstance(value, int):
        return WON
    return None


def _cell(ws, item):
    if isinstance(item, Figure):
        return figure_cell(ws, item.formula, item.cached, item.style, item.number_format)
    if isinstance(item, Styled):
        return styled(ws, item.value, item.style, number_format=item.number_format)
    if isinstance(item, str):
        return text_cell(ws, item)
    if item is None:
        return None
    return styled(ws, item, "text")


class _TemplateCell(Cell):
    """A formatted cell reused for every row of its column. openpyxl first tries it as a value
    and formats its repr into the error it then catches: a short repr keeps that cheap."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<template cell>"


def _template(ws, kind: str) -> WriteOnlyCell | None:
    fmt = _FORMATS.get(kind)
    if fmt is None:
        return None
    cell = _TemplateCell(worksheet=ws, column=1, row=1)
    cell.number_format = fmt
    return cell

"""One sheet per business of a tax or VAT workbook, in the shape of the return.

For the business and period: the 부가가치세 신고서 과세표준 lines these sales fill, 면세 수입금액 and
미분류, the 신용카드매출전표 등 발행금액 집계표 split 과세분 / 면세분, and the figures by payment
method, by tax class and (beside the split, never in it) by culture-expense code. Every figure is
a formula over the detail sheet with its cached value (filing.FilingFigures). Where point3's data
cannot tell which line a sale belongs on, the sheet says so instead of guessing.
"""

from __future__ import annotations

import re

from openpyxl import Workbook

from point3_pipeline.reports.filing import Business, FilingFigures
from point3_pipeline.reports.workbook import Styled, free_sheet, line, write_rows

WIDTHS = [40, 38, 15, 15, 15, 15, 15, 15, 15]
# Which return line and which 집계표 column each known method's sales go to, as far as point3's
# data tells: a card payment is a card slip; for the others point3 does not say.
RETURN_LINES = {
    "CARD": ("(3)란 신용카드·현금영수증 발행분", "신용·직불·선불카드", None),
    "EASY_PAY": (
        "(3)란 또는 (4)란: 확인 필요",
        "카드 또는 직불·선불 전자지급수단: 확인 필요",
        "간편결제가 카드로 결제됐는지 선불 잔액(전자지급수단)으로 결제됐는지 point3가 알려주지 않습니다.",
    ),
    "BANK_TRANSFER": (
        "현금영수증 발급분은 (3)란, 아니면 (4)란: 확인 필요",
        "현금영수증 (발급분만): 확인 필요",
        "계좌이체에 현금영수증이 발급됐는지 point3가 알려주지 않습니다.",
    ),
}
UNKNOWN_LINE = ("확인 필요 (알 수 없는 결제수단)", "확인 필요", "point3의 결제수단 코드가 알려진 값이 아닙니다: 경고.")
FIGURE_COLUMNS = (
    ("taxable_supply", "공급가액"), ("vat", "부가세"), ("exempt_amount", "면세"),
    ("unclassified_amount", "미분류"), ("total_charge", "결제금액"),
)  # fmt: skip
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\']")


def sheet_title(business: Business) -> str:
    """The business's sheet name: its key and name, within Excel's 31 characters and rules."""
    name = _SHEET_NAME_BAD.sub("_", business.display_name)
    return f"{business.sheet_key} {name}"[:31].rstrip()


def header(text: str) -> Styled:
    return Styled(text, "header")


def business_lines(business: Business) -> list[list]:
    taxation = {"all_taxable": "전부 과세", "all_exempt": "전부 면세", "by_vat": "부가세 금액으로 구분 (규칙)"}
    return [
        [Styled("사업자", "label"), "business", business.display_name],
        [Styled("사업자등록번호", "label"), "registration number", business.number_text],
        [Styled("과세유형", "label"), "taxpayer type", business.taxpayer_type or "미등록: 알 수 없음"],
        [Styled("매출 과세 방식", "label"), "sales taxation",
         taxation.get(business.sales_taxation or "", "사업자 정보 없음: 금액 규칙으로 구분")],
    ]  # fmt: skip


def _method_rows(figures: FilingFigures, key: str) -> list[tuple[str, str, str, tuple]]:
    """(method key, label, raw code, (return line, 집계표 column, note)) for every known method
    and each unknown one this business has."""
    rows = [(code, f"{name} ({code})", code, RETURN_LINES.get(code, UNKNOWN_LINE)) for code, name in figures.known_methods]
    for row in figures.methods(key):
        raw = row["payment_method_type"]
        label = f"알 수 없는 결제수단: {raw}" if raw is not None else "결제수단 없음"
        rows.append((row["method_key"], label, raw or "", UNKNOWN_LINE))
    return rows


def return_rows(figures: FilingFigures, key: str) -> list[list]:
    """The 과세표준 lines of the VAT return these sales fill, with 면세 수입금액 and 미분류."""
    f = figures
    rows = [
        line("1. 부가가치세 신고서 — 과세표준 및 매출세액 (이 사업자의 point3 매출분)", "section"),
        [header("구분"), header("신고서 란"), header("공급가액"), header("세액")],
        [Styled("과세 세금계산서 발급분", "label"), Styled("(1)란: point3 자료에 없음", "wrap")],
    ]  # fmt: skip
    notes = []
    for method_key, label, _, (return_line, _, note) in _method_rows(f, key):
        rows.append([
            Styled(f"과세 · {label} 결제분", "label"), Styled(return_line, "wrap"),
            f.amount("taxable_supply", sheet_key=key, method_key=method_key),
            f.amount("vat", sheet_key=key, method_key=method_key),
        ])  # fmt: skip
        if note and note not in notes:
            notes.append(note)
    rows += [
        [Styled("과세표준 합계 (과세 매출 전체)", "label"), "과세분 합계",
         f.amount("taxable_supply", "total", sheet_key=key), f.amount("vat", "total", sheet_key=key)],
        [Styled("  그중 부가세 확인 필요 (1/11 초과)", "label"), "과세로 포함, 검증 시트",
         f.amount("taxable_supply", sheet_key=key, tax_class="impossible_vat"),
         f.amount("vat", sheet_key=key, tax_class="impossible_vat")],
        [Styled("  그중 과세·면세 혼합 결제의 과세분", "label"), "과세분 = 부가세 × 11 (±5원)",
         f.amount("taxable_supply", sheet_key=key, tax_class="mixed"), f.amount("vat", sheet_key=key, tax_class="mixed")],
        line("주: 세금계산서를 따로 발급했다면 그 매출은 point3 자료로 알 수 없습니다: (1)란에 직접 넣으십시오.", "note"),
        *(line(f"주: {n}", "note") for n in notes),
        [],
        line("2. 면세 수입금액과 미분류", "section"),
        [header("구분"), header("신고서"), header("금액")],
        [Styled("면세 수입금액", "label"), "면세수입금액 / 사업장현황신고", f.amount("exempt_amount", "total", sheet_key=key)],
        [Styled("미분류 (분류 전에는 신고 불가)", "label"), "검증 시트에서 분류", f.amount("unclassified_amount", "total", sheet_key=key)],
        [],
    ]  # fmt: skip
    return rows


def card_slip_rows(figures: FilingFigures, key: str) -> list[list]:
    """신용카드매출전표 등 발행금액 집계표: 공급대가 (VAT included) split 과세분 / 면세분, by method."""
    f = figures
    rows = [
        line("3. 신용카드매출전표 등 발행금액 집계표 — 공급대가 (부가세 포함)", "section"),
        [header("결제수단"), header("집계표 칸"), header("과세분"), header("면세분"), header("합계")],
    ]
    for method_key, label, _, (_, column, _) in _method_rows(f, key):
        rows.append([
            Styled(label, "label"), Styled(column, "wrap"),
            f.amounts(("taxable_supply", "vat"), sheet_key=key, method_key=method_key),
            f.amount("exempt_amount", sheet_key=key, method_key=method_key),
            f.amounts(("taxable_supply", "vat", "exempt_amount"), sheet_key=key, method_key=method_key),
        ])  # fmt: skip
    rows.append([
        Styled("합계", "label"), "",
        f.amounts(("taxable_supply", "vat"), "total", sheet_key=key), f.amount("exempt_amount", "total", sheet_key=key),
        f.amounts(("taxable_supply", "vat", "exempt_amount"), "total", sheet_key=key),
    ])  # fmt: skip
    rows.append(line("미분류 금액은 과세분·면세분을 알 수 없어 이 표에 없습니다. 확인 필요 칸은 결제 방식을 확인한 뒤 옮기십시오.", "note"))
    rows.append([])
    return rows


def breakdown_header(first: str, second: str) -> list:
    return [header(first), header(second), header("매출 건수"), header("취소 건수"), *(header(n) for _, n in FIGURE_COLUMNS)]


def breakdown_row(figures: FilingFigures, label, code, criteria: dict[str, str], style: str = "text") -> list:
    return [
        Styled(label, "label"), code,
        figures.count("sale", style, **criteria), figures.count("cancellation", style, **criteria),
        *(figures.amount(field, style, **criteria) for field, _ in FIGURE_COLUMNS),
    ]  # fmt: skip


def breakdown_rows(figures: FilingFigures, key: str) -> list[list]:
    f = figures
    rows = [
        line("4. 결제수단별 — 순액 = 이 기간 매출 − 이 기간에 속하는 취소", "section"),
        breakdown_header("결제수단", "point3 코드"),
    ]
    rows += [breakdown_row(f, label, raw, {"sheet_key": key, "method_key": mk}) for mk, label, raw, _ in _method_rows(f, key)]
    rows += [breakdown_row(f, "합계", "", {"sheet_key": key}, "total"), []]
    rows += [line("5. 과세구분별", "section"), breakdown_header("과세구분", "코드")]
    rows += [breakdown_row(f, name, code, {"sheet_key": key, "tax_class": code}) for code, name in f.tax_classes]
    rows += [breakdown_row(f, "합계", "", {"sheet_key": key}, "total"), []]
    rows += [
        line("6. 문화비 (참고) — 구매자의 소득공제·지출증빙 구분이며 부가세 구분이 아닙니다", "section"),
        breakdown_header("문화비 유형", "코드"),
    ]
    rows += [breakdown_row(f, name, code, {"sheet_key": key, "culture_key": code}) for code, name in f.culture_types]
    rows += [breakdown_row(f, "합계", "", {"sheet_key": key}, "total")]
    return rows


def write_business_sheet(wb: Workbook, figures: FilingFigures, business: Business, title_lines: list[list]) -> object:
    ws = free_sheet(wb, sheet_title(business), WIDTHS)
    rows = [*title_lines, *business_lines(business), []]
    rows += return_rows(figures, business.sheet_key)
    rows += card_slip_rows(figures, business.sheet_key)
    rows += breakdown_rows(figures, business.sheet_key)
    write_rows(ws, rows)
    return ws


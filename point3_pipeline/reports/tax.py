"""The tax workbook of any period: a month (kind 'tax') or a VAT period (kind 'vat': a quarter
for 예정, a half-year for 확정, a year for 간이과세자 and 사업장현황신고).

The filing view is primary: a period's figures are the payments accepted in it minus the
cancellations that belong to it (korean-vat.md), read from payment_tax_split through the
period's filing movements (data.prepare_filing). Sheets:

- 요약: the key's figures and one row per business (사업자등록번호, taxpayer type), reconciled;
- one sheet per business in the shape of the return (tax_business);
- 일별: the filing figures per day;
- 결제월 기준 (months only): the payment-month view for management, reconciled on one line;
- 신고내역: every movement, a cancellation's amounts negative, the rows the figures add up;
- 검증: what a person should look at, each with its row; 변경내역 (from v2 on).

Every figure is a formula over 신고내역 with its cached value (workbook.FormulaCell), so a
viewer that does not calculate shows the same numbers.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import duckdb
from openpyxl import Workbook

from point3_pipeline.periods import MONTH, Period
from point3_pipeline.reports import data, filing
from point3_pipeline.reports.data import Coverage, report_sql
from point3_pipeline.reports.filing import DETAIL, DETAIL_COLUMNS, FilingFigures
from point3_pipeline.reports.summary import header_rows
from point3_pipeline.reports.tax_business import write_business_sheet
from point3_pipeline.reports.versions import (
    ReportContext,
    ReportResult,
    changed_movements_sql,
    filing_kind,
    has_filing_snapshot,
    render,
)
from point3_pipeline.reports.workbook import (
    Column,
    Figure,
    Sheet,
    Styled,
    free_sheet,
    line,
    print_header,
    print_on_a3,
    write_rows,
)
from point3_pipeline.warehouse import Warehouse

SUMMARY, DAILY, PAYMENT_MONTH, CHECKS, CHANGES = "요약", "일별", "결제월 기준 (관리용)", "검증", "변경내역"
COUNT_SUFFIX = filing.COUNT_FORMAT
ALL_BUSINESSES = "전체 사업자"
NO_BUSINESSES_FILE = (
    "사업자 정보 파일(POINT3_BUSINESSES)이 없습니다: 과세·면세 구분은 결제별 금액 규칙(부가세가 결제금액의 1/11인지)으로만 "
    "나눴고, 사업자는 point3의 가맹점명(clientNickname)으로 나눴습니다."
)


def render_tax_report(
    warehouse: Warehouse, period: str, reports_dir: Path, *, now: dt.datetime | None = None
) -> ReportResult:
    """Write the period's tax workbook as a new version, unless what it shows did not change."""
    kind = filing_kind(Period.parse(period))
    return render(kind, warehouse, period, Path(reports_dir), now, tax_totals, write_tax_workbook)


def tax_totals(conn: duckdb.DuckDBPyConnection, period: Period, coverage: Coverage) -> dict[str, int]:
    return filing.totals(filing.load(conn, period))


def report_title(ctx: ReportContext) -> str:
    return "point3 월간 부가세 보고서" if ctx.period.kind == MONTH else "point3 부가세 신고 자료"


def write_tax_workbook(ctx: ReportContext, path: Path) -> None:
    figures = filing.load(ctx.conn, ctx.period)
    wb = Workbook(write_only=True)
    printed = [(_summary(wb, ctx, figures), ALL_BUSINESSES)]
    for business in figures.businesses:
        title = [line(f"{business.display_name} — {ctx.period.label_ko} 신고 자료 (v{ctx.version})", "title"), *_status_lines(ctx)]
        printed.append((write_business_sheet(wb, figures, business, title), f"{business.display_name} ({business.number_text})"))
    printed.append((_daily(wb, ctx, figures), ALL_BUSINESSES))
    if ctx.period.kind == MONTH:
        printed.append((_payment_month(wb, ctx, figures), ALL_BUSINESSES))
    printed.append((_detail(wb, ctx, figures), ALL_BUSINESSES))
    printed.append((_checks(wb, ctx), ALL_BUSINESSES))
    if ctx.previous is not None:
        printed.append((_changes(wb, ctx), ALL_BUSINESSES))
    as_of = f"{ctx.coverage.as_of:%Y-%m-%d %H:%M} KST" if ctx.coverage.as_of else "동기화 없음"
    for ws, business in printed:
        print_header(
            ws, report=f"{report_title(ctx)} · {ws.title}", business=business,
            period=f"{ctx.period.label_ko} ({ctx.period.label})", version=ctx.version, as_of=as_of,
        )  # fmt: skip
    wb.save(path)


def _status_lines(ctx: ReportContext) -> list[list]:
    """Why the period is not final yet, on every sheet's top (days not synced, unclassified)."""
    lines = []
    cover = ctx.coverage
    if not cover.is_final:
        lines.append(line(cover.warning_ko(), "warning"))
    unclassified = _unclassified_warning(ctx)
    if unclassified:
        lines.append(line(unclassified, "warning"))
    if not cover.is_final or unclassified:
        lines.append(line("Warning: this report is not final (days not synced or payments unclassified).", "note"))
    return lines


# --- 요약 -----------------------------------------------------------------------------------

SUMMARY_FIELDS = ("taxable_supply", "vat", "exempt_amount", "unclassified_amount", "total_charge")
SUMMARY_HEADER = ["사업자", "사업자등록번호", "과세유형", "과세 공급가액", "부가세", "면세 수입금액", "미분류", "결제금액 순액", "매출 건수", "취소 건수"]


def _business_figures(figures: FilingFigures, style: str = "text", **criteria) -> list:
    return [
        *(figures.amount(field, style, **criteria) for field in SUMMARY_FIELDS),
        figures.count("sale", style, **criteria), figures.count("cancellation", style, **criteria),
    ]  # fmt: skip


def _summary(wb: Workbook, ctx: ReportContext, figures: FilingFigures):
    ws = free_sheet(wb, SUMMARY, [30, 21, 21, 16, 14, 16, 14, 16, 11, 11])
    t = ctx.totals
    rows = header_rows(ctx, f"{report_title(ctx)} — {ctx.period.label_ko}")
    rows[1:1] = _unclassified_only(ctx)
    rows.append(line(
        NO_BUSINESSES_FILE if figures.declared_count == 0
        else f"사업자 정보 파일(POINT3_BUSINESSES)의 사업자 {figures.declared_count}곳으로 나눴습니다; 파일에 없는 가맹점명은 '미등록'입니다.",
        "note",
    ))  # fmt: skip
    rows += [[], line("사업자별 신고 수치 — 순액 = 이 기간 매출 − 이 기간에 속하는 취소", "section")]
    rows.append([Styled(h, "header") for h in SUMMARY_HEADER])
    first = len(rows) + 1
    for b in figures.businesses:
        rows.append([
            Styled(f"{b.sheet_key} {b.display_name}", "label"), b.number_text if b.registration_number else "미등록",
            b.taxpayer_type or "—", *_business_figures(figures, sheet_key=b.sheet_key),
        ])  # fmt: skip
    last = len(rows)
    rows.append(_sum_row("사업자 합계", rows[first - 1 : last], first, last))
    rows.append([Styled("전체 (이 키의 모든 결제)", "label"), "", "", *_business_figures(figures, "total")])
    rows.append(_difference_row(len(rows) - 1, len(rows)))
    rows += [[], *_summary_notes(ctx, t)]
    write_rows(ws, rows)
    return ws


def _unclassified_warning(ctx: ReportContext) -> str | None:
    unclassified = ctx.totals.get("unclassified_count", 0)
    if not unclassified:
        return None
    return f"주의: 미분류 결제 {unclassified}건이 있어 최종본이 아닙니다 — 검증 시트의 결제를 `point3 classify`로 분류하십시오."


def _unclassified_only(ctx: ReportContext) -> list[list]:
    # header_rows already carries the coverage warning; the unclassified one is the tax workbook's own
    return [line(_unclassified_warning(ctx), "warning")] if _unclassified_warning(ctx) else []


def _sum_row(label: str, rows: list[list], first: int, last: int) -> list:
    """Column sums of the business rows (columns D onwards), each with its cached value."""
    out = [Styled(label, "label"), "", ""]
    for index in range(3, len(SUMMARY_HEADER)):
        letter = chr(ord("A") + index)
        cached = sum(r[index].cached for r in rows)
        fmt = COUNT_SUFFIX if index >= 8 else "#,##0"
        out.append(Figure(f"=SUM({letter}{first}:{letter}{last})" if rows else "=0", cached, "total", fmt))
    return out


def _difference_row(sum_row: int, total_row: int) -> list:
    out = [Styled("차이 (전체 − 사업자 합계, 0이어야 함)", "label"), "", ""]
    for index in range(3, len(SUMMARY_HEADER)):
        letter = chr(ord("A") + index)
        out.append(Figure(f"={letter}{total_row}-{letter}{sum_row}", 0))
    return out


def _summary_notes(ctx: ReportContext, t: dict[str, int]) -> list[list]:
    notes = [
        "공급가액은 과세 매출의 공급가액(부가세 제외)입니다. point3의 taxFreeAmount(부가세 제외 결제액)는 면세분까지 담고 있어 공급가액으로 쓰지 않습니다.",
        "과세·면세 혼합 결제는 과세분을 부가세 × 11로 봅니다: 부가세 반올림 때문에 실제 과세분과 결제당 ±5원까지 다를 수 있습니다.",
        "취소는 취소된 기간에서 뺍니다: 취소를 본 동기화의 날에 속합니다. 처음 볼 때 이미 취소된 결제는 취소일을 알 수 없어 결제일에 속합니다 (취소일 미상).",
        f"이 기간: 취소일 미상 {t.get('canceled_date_unknown_count', 0)}건, 경계 불확실 {t.get('straddling_count', 0)}건 "
        f"(취소 하한이 이전 기간), 부가세 확인 필요 {t.get('impossible_vat_count', 0)}건, 미분류 {t.get('unclassified_count', 0)}건, "
        f"알 수 없는 결제수단 {t.get('unknown_method_count', 0)}건 — 검증 시트에 행마다 있습니다.",
        "문화비(cultureExpenseType)는 구매자의 소득공제·지출증빙 구분입니다: 사업자 시트에 따로 있고 과세 구분에 섞지 않습니다.",
        "수치는 모두 신고내역 시트의 행을 더하는 수식이며, 계산된 값이 함께 저장되어 있습니다.",
    ]
    return [line(n, "note") for n in notes]


# --- 일별 -------------------------------------------------------------------------------------

DAILY_COLUMNS = [
    Column("귀속일", "filing day", "date", 12), Column("요일", "weekday", width=9), Column("동기화", "synced", width=9),
    Column("매출 건수", "sales", "count", 11), Column("취소 건수", "cancellations", "count", 14),
    Column("과세 공급가액", "taxable supply", "won", 15), Column("부가세", "VAT", "won", 13),
    Column("면세", "exempt", "won", 15), Column("미분류", "unclassified", "won", 13),
    Column("결제금액 순액", "net total", "won", 15),
]  # fmt: skip
DAILY_FIELDS = ("taxable_supply", "vat", "exempt_amount", "unclassified_amount", "total_charge")


def _daily(wb: Workbook, ctx: ReportContext, figures: FilingFigures):
    above = [line(f"일별 신고 수치 — {ctx.period.label_ko} (귀속일 KST, 순액)", "title"), *_status_lines(ctx)]
    sheet = Sheet(wb, DAILY, DAILY_COLUMNS, above=above)
    sums = [0] * (len(DAILY_COLUMNS) - 3)
    first = sheet.first_data_row
    for day in ctx.period.days:
        cell = f"$A{sheet.next_row}"
        values = [
            figures.day_count("sale", day, cell), figures.day_count("cancellation", day, cell),
            *(figures.day_amount(field, day, cell) for field in DAILY_FIELDS),
        ]  # fmt: skip
        sums = [s + v.cached for s, v in zip(sums, values)]
        synced = "완료" if day in ctx.coverage.synced else "미완료"
        sheet.row([day, data.WEEKDAYS_KO[day.weekday()], synced, *values])
    last = sheet.next_row - 1
    sheet.formula_row("합계 total", {
        i + 3: Figure(f"=SUM({sheet.column_range(i + 3, first, last)})", s, number_format=COUNT_SUFFIX if i < 2 else "#,##0")
        for i, s in enumerate(sums)
    })  # fmt: skip
    sheet.finish()
    return sheet.ws


# --- 결제월 기준 (management) --------------------------------------------------------------------

PM_HEADER = [
    "사업자", "이 달 결제 건수", "결제금액", "과세 공급가액", "부가세", "면세", "미분류",
    "그중 취소: 이 달에 속함", "그중 취소: 이후 기간에 속함", "결제월 순액",
]  # fmt: skip


def _payment_month(wb: Workbook, ctx: ReportContext, figures: FilingFigures):
    ws = free_sheet(wb, PAYMENT_MONTH, [30, 15, 17, 17, 15, 15, 13, 17, 17, 15])
    rows = [
        line(f"결제월 기준 (관리용) — {ctx.period.label_ko}에 결제된 매출과 그중 취소된 것", "title"),
        *_status_lines(ctx),
        line("관리용 시트입니다: 신고 수치는 요약과 사업자 시트(신고 기준: 매출 − 이 기간에 속하는 취소)를 쓰십시오.", "note"),
        line(f"취소 여부는 이 버전을 만든 시각({ctx.generated_at:%Y-%m-%d %H:%M} KST) 현재입니다; 이후의 취소는 그 취소가 속하는 기간의 보고서에 나옵니다.", "note"),
        [],
        [Styled(h, "header") for h in PM_HEADER],
    ]
    by_key = {r["sheet_key"]: r for r in data.filing_period_rows(ctx.conn, "payment_month", ctx.period)}
    first = len(rows) + 1
    for b in figures.businesses:
        r = by_key[b.sheet_key]
        rows.append([
            Styled(f"{b.sheet_key} {b.display_name}", "label"), Styled(r["sale_count"], number_format=COUNT_SUFFIX),
            r["total_charge"], r["taxable_supply"], r["vat"], r["exempt_amount"], r["unclassified_amount"],
            r["canceled_here_total"], r["canceled_later_total"],
            r["total_charge"] - r["canceled_here_total"] - r["canceled_later_total"],
        ])  # fmt: skip
    last = len(rows)
    keys = ("sale_count", "total_charge", "taxable_supply", "vat", "exempt_amount", "unclassified_amount",
            "canceled_here_total", "canceled_later_total")  # fmt: skip
    sums = [sum(int(r[k]) for r in by_key.values()) for k in keys]
    sums.append(sums[1] - sums[6] - sums[7])
    total_row = last + 1
    rows.append([Styled("합계", "label"), *(
        Figure(f"=SUM({chr(66 + i)}{first}:{chr(66 + i)}{last})" if last >= first else "=0", s, "total",
               COUNT_SUFFIX if i == 0 else "#,##0")
        for i, s in enumerate(sums)
    )])  # fmt: skip
    earlier = sum(int(r["earlier_total"]) for r in by_key.values())
    filing_net = figures.total("total_charge")
    rows += [[], line("신고 기준과의 대사 (결제금액): 결제월 순액 + 이후 기간에 속하는 취소 − 이전 결제의 이 달 취소 = 신고 기준 순액", "section"), [Styled(h, "header") for h in (
        "", "결제월 순액", "+ 이후 기간에 속하는 취소", "− 이전 결제의 이 달 취소", "= 신고 기준 순액", "신고내역 합계", "차이")]]
    row = len(rows) + 1
    rows.append([
        Styled("대사 (0이면 일치)", "label"),
        Figure(f"=J{total_row}", sums[8]), Figure(f"=I{total_row}", sums[7]), earlier,
        Figure(f"=B{row}+C{row}-D{row}", sums[8] + sums[7] - earlier),
        figures.amount("total_charge"), Figure(f"=F{row}-E{row}", filing_net - (sums[8] + sums[7] - earlier)),
    ])  # fmt: skip
    write_rows(ws, rows)
    return ws


# --- 신고내역 (detail) ----------------------------------------------------------------------------


def _detail(wb: Workbook, ctx: ReportContext, figures: FilingFigures):
    warning = ctx.coverage.warning_ko() or _unclassified_warning(ctx)
    above = [
        line(f"신고내역 — {ctx.period.label_ko}: 이 기간의 매출과 이 기간에 속하는 취소 (취소는 음수)", "title"),
        [Styled(warning, "warning")] if warning else line("모든 날이 동기화됐습니다 (all days synced).", "note"),
        line("귀속일: 매출은 결제일, 취소는 취소를 감지한 날 (처음 볼 때 이미 취소됐으면 결제일, 취소일 미상). 사업자 열은 요약의 사업자 키입니다.", "note"),
    ]
    assert len(above) == filing.DETAIL_ABOVE
    sheet = Sheet(wb, DETAIL, DETAIL_COLUMNS, above=above)
    print_on_a3(sheet.ws)
    for row in data.stream(ctx.conn, report_sql("filing_detail"), {}):
        sheet.row(row)
    if sheet.data_rows == 0:
        sheet.note_row("이 기간의 매출·취소 없음 (none)")
    sheet.finish()
    return sheet.ws


# --- 검증 ---------------------------------------------------------------------------------------

CHECK_COLUMNS = [
    Column("검사", "check", width=36), Column("서명", "signature", width=36), Column("사업자", "business", width=18),
    Column("결제일", "payment date", "date", 11), Column("주문번호", "order id", width=20),
    Column("상품명", "product", width=24), Column("결제금액", "total", "won", 12),
    Column("taxFreeAmount", "point3 taxFreeAmount", "won", 12), Column("부가세 (point3)", "point3 vat", "won", 11),
    Column("과세구분", "tax class", width=16), Column("내용", "detail", width=60),
]  # fmt: skip
CHECK_NAMES = {
    1: "미분류 (부가세 + taxFreeAmount ≠ 결제금액)",
    2: "부가세 확인 필요 (부가세가 1/11 초과)",
    3: "과세·면세 혼합 결제",
    4: "사업자 신고와 금액이 맞지 않음",
    5: "사람 분류가 금액과 맞지 않음",
    6: "알 수 없는 결제수단",
    7: "0원 이하 결제금액, 음수 금액",
    8: "문화비 유형 미상",
    9: "주문번호 중복",
    10: "거부된 레코드 (동기화가 받지 않은 레코드와 이유)",
    11: "취소 철회 이상 (취소 후 다시 정상)",
    12: "취소일 미상 (처음 볼 때 이미 취소됨)",
    13: "경계 불확실 (취소 하한이 이전 기간)",
}


def _checks(wb: Workbook, ctx: ReportContext):
    params = {"first": ctx.period.first, "last": ctx.period.last}
    counts = Counter(row[0] for row in data.stream(ctx.conn, report_sql("checks"), params))
    above = [line(f"검증 — {ctx.period.label_ko}", "title"), *_status_lines(ctx)]
    above += [[Styled(name, "label"), Styled(counts.get(k, 0), number_format=COUNT_SUFFIX)] for k, name in CHECK_NAMES.items()]
    above.append([])
    sheet = Sheet(wb, CHECKS, CHECK_COLUMNS, above=above)
    print_on_a3(sheet.ws)
    for k, *row, detail in data.stream(ctx.conn, report_sql("checks"), params):
        sheet.row([CHECK_NAMES[k], *row, Styled(detail, "wrap")])
    if sheet.data_rows == 0:
        sheet.note_row("문제 없음 (no findings)")
    sheet.finish()
    return sheet.ws


# --- 변경내역 -------------------------------------------------------------------------------------

CHANGE_COLUMNS = [
    Column("변경", "change", width=24), Column("서명", "signature", width=36), Column("구분", "movement", width=7),
    Column("귀속일", "filing day", "date", 11), Column("이유", "why", width=44),
    Column("이전 결제금액", "total before", "won", 12), Column("현재 결제금액", "total now", "won", 12),
    Column("이전 공급가액", "supply before", "won", 12), Column("현재 공급가액", "supply now", "won", 12),
    Column("이전 부가세", "VAT before", "won", 10), Column("현재 부가세", "VAT now", "won", 10),
    Column("이전 면세", "exempt before", "won", 12), Column("현재 면세", "exempt now", "won", 12),
    Column("이전 미분류", "unclassified before", "won", 12), Column("현재 미분류", "unclassified now", "won", 12),
]  # fmt: skip
TOTAL_LABELS = {
    "taxable_supply": "과세 공급가액", "vat": "부가세", "exempt_amount": "면세 수입금액", "unclassified_amount": "미분류",
    "total_charge": "결제금액 순액", "sale_count": "매출 건수", "canceled_count": "취소 건수",
    "sales_total": "매출 결제금액", "canceled_total": "취소 결제금액", "unclassified_count": "미분류 건수",
    "impossible_vat_count": "부가세 확인 필요 건수", "canceled_date_unknown_count": "취소일 미상 건수",
}  # fmt: skip


def totals_changes(ctx: ReportContext) -> list[list]:
    """Rows (label, key, before, now, difference) for the totals that moved since the previous version."""
    assert ctx.previous is not None
    before = ctx.previous.totals
    rows = [
        [Styled(label, "label"), key, before.get(key), ctx.totals.get(key), ctx.totals.get(key, 0) - before.get(key, 0)]
        for key, label in TOTAL_LABELS.items()
        if key in ctx.totals and before.get(key) != ctx.totals.get(key)
    ]
    return rows or [line("합계 변동 없음 (no total changed)", "note")]


def _changes(wb: Workbook, ctx: ReportContext):
    prev = ctx.previous
    assert prev is not None
    above = [
        line(f"변경내역 — v{prev.version} ({prev.created_at:%Y-%m-%d %H:%M} KST 생성) → v{ctx.version}", "title"),
        *_status_lines(ctx),
        [Styled("합계", "header"), Styled("key", "header"), Styled(f"v{prev.version}", "header"),
         Styled(f"v{ctx.version}", "header"), Styled("차이 difference", "header")],
        *totals_changes(ctx),
        [],
        line(f"바뀐 신고 행 {ctx.changes}건 (movements changed), 이유와 함께", "section"),
    ]  # fmt: skip
    sheet = Sheet(wb, CHANGES, CHANGE_COLUMNS, above=above)
    print_on_a3(sheet.ws)
    if has_filing_snapshot(prev):
        sql, params = changed_movements_sql(ctx)
        for row in data.stream(ctx.conn, sql, params):
            sheet.row(row)
    else:
        sheet.note_row(f"v{prev.version}은 신고 기준(이 기간에 속하는 취소) 이전 방식으로 만들어져 행 단위로 비교할 수 없습니다.")
    if sheet.data_rows == 0:
        sheet.note_row("바뀐 행 없음 (no movement changed)")
    sheet.finish()
    return sheet.ws


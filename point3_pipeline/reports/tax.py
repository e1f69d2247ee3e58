"""The monthly tax workbook: VAT and culture-expense figures for the merchant's accountant.

Sheets: 요약 (summary), 문화비·부가세 (per culture-expense code), 일별 (per day), 거래내역
(every payment), 취소내역 (cancellations), 검증 (checks), 변경내역 (changes, from v2 on).
Amounts are written as values; the only formulas are the totals rows, which sum the rows
above them so the accountant can see (and Excel can prove) how each total is made.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
from openpyxl import Workbook

from point3_pipeline.reports import data
from point3_pipeline.periods import Period
from point3_pipeline.reports.data import Coverage
from point3_pipeline.reports.summary import coverage_lines, header_rows
from point3_pipeline.reports.versions import ReportContext, ReportResult, changed_payments_sql, render
from point3_pipeline.reports.workbook import Column, Sheet, Styled, free_sheet, line, write_rows
from point3_pipeline.warehouse import Warehouse

SUMMARY, CULTURE, DAILY, PAYMENTS, CANCELLATIONS, CHECKS, CHANGES = (
    "요약", "문화비·부가세", "일별", "거래내역", "취소내역", "검증", "변경내역",
)  # fmt: skip
COUNT_SUFFIX = '#,##0"건"'
STATUS_ACTIVE, STATUS_CANCELED = "정상", "취소"
THIS_MONTH, EARLIER = "이번 달 결제의 취소", "이전 달 결제, 이번 달 감지"

# The figure columns shared by the culture-code and daily sheets (cancelled supply value and
# VAT are left out: net columns carry what the VAT return needs).
FIGURES = [
    Column("건수", "count", "count", 9),
    Column("결제금액", "total", "won", 14),
    Column("공급가액", "supply value", "won", 14),
    Column("부가세", "VAT", "won", 12),
    Column("취소 건수", "canceled count", "count", 9),
    Column("취소 금액", "canceled amount", "won", 14),
    Column("순 건수", "net count", "count", 9),
    Column("순 결제금액", "net total", "won", 14),
    Column("순 공급가액", "net supply value", "won", 14),
    Column("순 부가세", "net VAT", "won", 12),
]
FIGURE_KEYS = [
    "payment_count", "total_charge", "supply_value", "vat", "canceled_count", "canceled_total",
    "net_count", "net_total", "net_supply_value", "net_vat",
]  # fmt: skip


def render_tax_report(
    warehouse: Warehouse, month: str, reports_dir: Path, *, now: dt.datetime | None = None
) -> ReportResult:
    """Write the month's tax workbook as a new version, unless nothing changed since the last."""
    return render("tax", warehouse, month, Path(reports_dir), now, tax_totals, write_tax_workbook)


def tax_totals(conn: duckdb.DuckDBPyConnection, month: Period, coverage: Coverage) -> dict[str, int]:
    return data.month_totals(conn, month)


def write_tax_workbook(ctx: ReportContext, path: Path) -> None:
    wb = Workbook(write_only=True)
    _summary(wb, ctx)
    _culture(wb, ctx)
    _daily(wb, ctx)
    _payments(wb, ctx)
    _cancellations(wb, ctx)
    _checks(wb, ctx)
    if ctx.previous is not None:
        _changes(wb, ctx)
    wb.save(path)


def _figures(row: tuple, keys_from: tuple[str, ...] = data.SUM_KEYS) -> list[int]:
    by_key = dict(zip(keys_from, row))
    return [by_key[k] for k in FIGURE_KEYS]


def _summary(wb: Workbook, ctx: ReportContext) -> None:
    ws = free_sheet(wb, SUMMARY, [26, 34, 21, 16, 16, 16])
    t = ctx.totals
    rows = header_rows(ctx, "point3 월간 부가세·문화비 보고서")
    rows += [
        [Styled("항목", "header"), Styled("item", "header"), Styled("건수", "header"),
         Styled("결제금액", "header"), Styled("공급가액", "header"), Styled("부가세", "header")],
        [Styled("이 달 결제 (전체)", "label"), "payments (gross)", Styled(t["payment_count"], number_format=COUNT_SUFFIX),
         t["total_charge"], t["supply_value"], t["vat"]],
        [Styled("취소된 결제", "label"), "canceled", Styled(t["canceled_count"], number_format=COUNT_SUFFIX),
         t["canceled_total"], t["canceled_supply_value"], t["canceled_vat"]],
        [Styled("순매출 (전체 − 취소)", "label"), "net", Styled(t["net_count"], number_format=COUNT_SUFFIX),
         t["net_total"], t["net_supply_value"], t["net_vat"]],
        [],
        [Styled("이전 달 결제의 취소 (이번 달 감지)", "label"), "earlier months' payments canceled, detected this month",
         Styled(t["earlier_canceled_count"], number_format=COUNT_SUFFIX), t["earlier_canceled_total"]],
        [],
        line("공급가액은 point3의 taxFreeAmount입니다. 결제는 KST 결제일 기준으로 이 달에 속하며, 취소는 결제일의 달에서 빠집니다.", "note"),
        line("이전 달 결제의 취소는 위 수치에 포함되지 않습니다 — 해당 달의 수정 신고 자료로 따로 보십시오.", "note"),
        line("Supply value is point3's taxFreeAmount. Payments belong to their KST payment day's month; earlier "
             "months' cancellations detected this month are shown apart, not netted above.", "note"),
    ]  # fmt: skip
    write_rows(ws, rows)


def _culture(wb: Workbook, ctx: ReportContext) -> None:
    columns = [Column("구분", "group", width=12), Column("코드", "code", width=6), Column("유형", "type", width=20), *FIGURES]
    sheet = Sheet(wb, CULTURE, columns, above=[line(f"문화비 유형별 부가세 — {ctx.period.label}", "title"), *coverage_lines(ctx)], autofilter=False)
    rows = data.per_culture_type(ctx.conn, ctx.period)
    by_group: dict[str, list[tuple]] = {}
    for row in rows:
        by_group.setdefault(row[2], []).append(row)
    figure_cols = range(3, 3 + len(FIGURES))
    subtotal_rows = []
    for group, label in (("소득공제", "소득공제용 소계"), ("지출증빙", "지출증빙용 소계")):
        first = sheet.next_row
        for code, name, _, *figures in by_group.get(group, []):
            sheet.row([f"{group}용", code, name, *_figures(tuple(figures))])
        last = sheet.next_row - 1
        subtotal_rows.append(
            sheet.formula_row(label, {i: f"=SUM({sheet.column_range(i, first, last)})" for i in figure_cols})
        )
    for code, name, _, *figures in by_group.get("미상", []):
        subtotal_rows.append(sheet.row(["미상", "—", name, *_figures(tuple(figures))]))
    sheet.formula_row(
        "합계 total",
        {i: "=" + "+".join(sheet.cell_ref(i, r) for r in subtotal_rows) for i in figure_cols},
    )
    sheet.finish()


def _daily(wb: Workbook, ctx: ReportContext) -> None:
    columns = [Column("날짜", "date", "date", 12), Column("요일", "weekday", width=6), Column("동기화", "synced", width=10), *FIGURES]
    sheet = Sheet(wb, DAILY, columns, above=[line(f"일별 합계 — {ctx.period.label} (결제일 KST)", "title"), *coverage_lines(ctx)])
    for day, *figures in data.per_day(ctx.conn, ctx.period):
        synced = "완료" if day in ctx.coverage.synced else "미완료"
        sheet.row([day, data.WEEKDAYS_KO[day.weekday()], synced, *_figures(tuple(figures))])
    sheet.totals("합계 total", {i: "=SUM({range})" for i in range(3, 3 + len(FIGURES))})
    sheet.finish()


PAYMENT_COLUMNS = [
    Column("승인 시각 (KST)", "accepted at, KST", "datetime", 19),
    Column("결제일", "payment date", "date", 11),
    Column("서명", "signature", width=38),
    Column("주문번호", "order id", width=24),
    Column("상품명", "product", width=32),
    Column("문화비 코드", "culture code", width=9),
    Column("문화비 유형", "culture type", width=22),
    Column("결제수단", "method", width=15),
    Column("결제금액", "total", "won", 12),
    Column("공급가액", "supply value", "won", 12),
    Column("부가세", "VAT", "won", 10),
    Column("상태", "status", width=8),
    Column("취소 감지 시각 (KST)", "cancel detected at, KST", "datetime", 19),
]

PAYMENT_ROWS_SQL = """
    SELECT p.accepted_at, p.payment_date, p.signature, p.order_id_from_client, p.purchasing_product_name,
           p.culture_expense_type, coalesce(t.name_ko, '유형 미상'), p.payment_method_type, p.total_charge, p.tax_free_amount, p.vat,
           CASE WHEN p.is_canceled THEN '취소' ELSE '정상' END, p.canceled_detected_at
    FROM payments AS p LEFT JOIN culture_expense_types AS t ON t.culture_expense_type = p.culture_expense_type
    WHERE p.payment_date BETWEEN ? AND ?
    ORDER BY p.payment_date, p.accepted_at NULLS LAST, p.signature
"""


def _payments(wb: Workbook, ctx: ReportContext) -> None:
    sheet = Sheet(wb, PAYMENTS, PAYMENT_COLUMNS, above=[line(f"거래내역 — {ctx.period.label}", "title"), *coverage_lines(ctx)])
    for row in data.stream(ctx.conn, PAYMENT_ROWS_SQL, [ctx.period.first, ctx.period.last]):
        sheet.row(row)
    write_payment_totals(sheet, status_col=11, signature_col=2, amount_cols=(8, 9, 10))
    sheet.finish()


def write_payment_totals(sheet: Sheet, *, status_col: int, signature_col: int, amount_cols: tuple[int, ...]) -> None:
    counts = {signature_col: COUNT_SUFFIX}
    sheet.totals("합계 (전체) total", {signature_col: "=COUNTA({range})", **{i: "=SUM({range})" for i in amount_cols}}, formats=counts)
    for label, status in (("취소 canceled", STATUS_CANCELED), ("순액 (정상) net", STATUS_ACTIVE)):
        status_range = f"{{col{status_col}}}"
        sheet.totals(
            label,
            {
                signature_col: f'=COUNTIF({status_range},"{status}")',
                **{i: f'=SUMIF({status_range},"{status}",{{range}})' for i in amount_cols},
            },
            formats=counts,
        )


CANCELLATION_COLUMNS = [
    Column("구분", "which", width=22),
    Column("결제일", "payment date", "date", 11),
    Column("승인 시각 (KST)", "accepted at, KST", "datetime", 19),
    Column("서명", "signature", width=38),
    Column("주문번호", "order id", width=24),
    Column("상품명", "product", width=32),
    Column("문화비 코드", "culture code", width=9),
    Column("결제금액", "total", "won", 12),
    Column("공급가액", "supply value", "won", 12),
    Column("부가세", "VAT", "won", 10),
    Column("취소 감지 시각 (KST)", "detected at, KST", "datetime", 19),
    Column("취소 시점 하한 (KST)", "canceled after (lower bound), KST", "datetime", 19),
    Column("비고", "note", width=30),
]

CANCELLATION_ROWS_SQL = f"""
    SELECT * FROM (
        SELECT '{THIS_MONTH}' AS which, p.payment_date, p.accepted_at, p.signature, p.order_id_from_client,
               p.purchasing_product_name, coalesce(p.culture_expense_type, 'unknown'),
               p.total_charge, p.tax_free_amount, p.vat,
               coalesce(c.detected_at, p.canceled_detected_at) AS detected_at, c.canceled_after,
               c.first_seen_canceled, 1 AS part
        FROM payments AS p LEFT JOIN cancellations AS c USING (signature)
        WHERE p.payment_date BETWEEN ? AND ? AND p.is_canceled
        UNION ALL
        SELECT '{EARLIER}', payment_date, accepted_at, signature, order_id_from_client, purchasing_product_name,
               culture_expense_type, total_charge, tax_free_amount, vat, detected_at, canceled_after,
               first_seen_canceled, 2
        FROM ({data.EARLIER_CANCELLATIONS})
    )
    ORDER BY part, detected_at NULLS LAST, signature
"""


def _cancellation_note(detected_at, canceled_after, first_seen_canceled) -> str | None:
    if detected_at is None:
        return "감지 시각 미상 (detection time unknown)"
    if first_seen_canceled:
        return "처음 볼 때 이미 취소됨: 하한 없음 (canceled when first seen)"
    if canceled_after is None:
        return "하한 미상 (no earlier active sighting)"
    return None


def _cancellations(wb: Workbook, ctx: ReportContext) -> None:
    above = [
        line(f"취소내역 — {ctx.period.label}", "title"),
        *coverage_lines(ctx),
        line("point3는 취소 시각을 주지 않습니다: 취소를 처음 본 동기화 시각이 감지 시각, 그 전에 정상으로 본 마지막 동기화 시각이 하한입니다.", "note"),
        line(f"구분이 '{THIS_MONTH}'인 행은 순매출에서 빠진 금액이고, '{EARLIER}'인 행은 이전 달 결제라 이 달 수치에 들어 있지 않습니다.", "note"),
    ]  # fmt: skip
    sheet = Sheet(wb, CANCELLATIONS, CANCELLATION_COLUMNS, above=above)
    params = [ctx.period.first, ctx.period.last, ctx.period.first, ctx.period.last, ctx.period.first]
    for *row, first_seen_canceled, _part in data.stream(ctx.conn, CANCELLATION_ROWS_SQL, params):
        sheet.row([*row, _cancellation_note(row[10], row[11], first_seen_canceled)])
    counts = {3: COUNT_SUFFIX}
    for label, which in ((f"합계: {THIS_MONTH}", THIS_MONTH), (f"합계: {EARLIER}", EARLIER)):
        sheet.totals(
            label,
            {3: f'=COUNTIF({{col0}},"{which}")', **{i: f'=SUMIF({{col0}},"{which}",{{range}})' for i in (7, 8, 9)}},
            formats=counts,
        )
    sheet.finish()


CHECK_COLUMNS = [
    Column("검사", "check", width=26),
    Column("서명", "signature", width=38),
    Column("결제일", "payment date", "date", 11),
    Column("주문번호", "order id", width=24),
    Column("상품명", "product", width=32),
    Column("결제금액", "total", "won", 12),
    Column("공급가액", "supply value", "won", 12),
    Column("부가세", "VAT", "won", 10),
    Column("내용", "detail", width=50),
]

CHECKS_SQL = """
    WITH month_payments AS (SELECT * FROM payments WHERE payment_date BETWEEN ? AND ?),
    repeated AS (
        SELECT order_id_from_client, count(*) AS n FROM payments
        WHERE order_id_from_client IN (SELECT order_id_from_client FROM month_payments)
        GROUP BY ALL HAVING count(*) > 1
    ),
    checks AS (
        SELECT 1 AS k, '부가세 + 공급가액 ≠ 결제금액' AS check_name, signature, payment_date, order_id_from_client,
               purchasing_product_name, total_charge, tax_free_amount, vat,
               '차이 difference ' || CAST(CAST(total_charge AS HUGEINT) - tax_free_amount - vat AS VARCHAR) || '원' AS detail
        FROM month_payments WHERE CAST(tax_free_amount AS HUGEINT) + vat <> total_charge
        UNION ALL
        SELECT 2, '0원 이하 금액 zero amount', signature, payment_date, order_id_from_client, purchasing_product_name,
               total_charge, tax_free_amount, vat,
               concat_ws(', ', CASE WHEN total_charge <= 0 THEN '결제금액' END,
                         CASE WHEN tax_free_amount <= 0 THEN '공급가액' END,
                         CASE WHEN vat <= 0 THEN '부가세' END) || ' ≤ 0'
        FROM month_payments WHERE total_charge <= 0 OR tax_free_amount <= 0 OR vat <= 0
        UNION ALL
        SELECT 3, '문화비 유형 미상 unknown code', signature, payment_date, order_id_from_client,
               purchasing_product_name, total_charge, tax_free_amount, vat,
               CASE WHEN culture_expense_type IS NULL THEN '유형 없음 (missing)'
                    ELSE '알 수 없는 유형: ' || culture_expense_type END
        FROM month_payments
        WHERE culture_expense_type IS NULL
           OR culture_expense_type NOT IN (SELECT culture_expense_type FROM culture_expense_types WHERE culture_expense_type <> 'unknown')
        UNION ALL
        SELECT 4, '주문번호 중복 repeated orderId', p.signature, p.payment_date, p.order_id_from_client,
               p.purchasing_product_name, p.total_charge, p.tax_free_amount, p.vat,
               '같은 주문번호의 결제 ' || CAST(r.n AS VARCHAR) || '건 (전체 기간)'
        FROM month_payments AS p JOIN repeated AS r USING (order_id_from_client)
        UNION ALL
        SELECT 5, '거부된 레코드 rejected record', signature, window_date, NULL, NULL, NULL, NULL, NULL,
               reason || CASE WHEN copies > 1 THEN ' (' || CAST(copies AS VARCHAR) || '건 동일)' ELSE '' END
                      || ' — ' || left(raw_text, 300)
        FROM rejected_records WHERE window_date BETWEEN ? AND ?
        UNION ALL
        SELECT 6, '취소 철회 anomaly (canceled, then active again)', signature, payment_date, order_id_from_client,
               purchasing_product_name, total_charge, tax_free_amount, vat,
               '취소 감지 ' || strftime(detected_at, '%Y-%m-%d %H:%M') || ', 다시 정상 ' || strftime(reverted_at, '%Y-%m-%d %H:%M')
        FROM cancellations
        WHERE is_anomaly AND (payment_date BETWEEN ? AND ? OR detected_date BETWEEN ? AND ?)
    )
"""
CHECK_NAMES = [
    (1, "부가세 + 공급가액 ≠ 결제금액 (vat + taxFreeAmount ≠ totalCharge)"),
    (2, "0원 이하 금액 (zero or negative amounts)"),
    (3, "문화비 유형 미상 (unknown culture-expense code)"),
    (4, "주문번호 중복 (repeated orderIdFromClient)"),
    (5, "거부된 레코드 (records rejected by the sync, with reason)"),
    (6, "취소 철회 이상 (cancellation reverted)"),
]


def _checks(wb: Workbook, ctx: ReportContext) -> None:
    m = ctx.period
    params = [m.first, m.last, m.first, m.last, m.first, m.last, m.first, m.last]
    counts = dict(ctx.conn.execute(CHECKS_SQL + "SELECT k, count(*) FROM checks GROUP BY k", params).fetchall())
    above = [line(f"검증 — {m.label}", "title"), *coverage_lines(ctx)]
    above += [[Styled(name, "label"), Styled(counts.get(k, 0), number_format=COUNT_SUFFIX)] for k, name in CHECK_NAMES]
    above.append([])
    sheet = Sheet(wb, CHECKS, CHECK_COLUMNS, above=above)
    sql = CHECKS_SQL + "SELECT * EXCLUDE (k) FROM checks ORDER BY k, payment_date, signature"
    for row in data.stream(ctx.conn, sql, params):
        sheet.row(row)
    if sheet.data_rows == 0:
        sheet.note_row("문제 없음 (no findings)")
    sheet.finish()


CHANGE_COLUMNS = [
    Column("변경", "change", width=22),
    Column("서명", "signature", width=38),
    Column("결제일", "payment date", "date", 11),
    Column("주문번호", "order id", width=24),
    Column("상품명", "product", width=32),
    Column("이전 결제금액", "total before", "won", 12),
    Column("현재 결제금액", "total now", "won", 12),
    Column("이전 공급가액", "supply before", "won", 12),
    Column("현재 공급가액", "supply now", "won", 12),
    Column("이전 부가세", "VAT before", "won", 10),
    Column("현재 부가세", "VAT now", "won", 10),
    Column("이전 상태", "status before", width=8),
    Column("현재 상태", "status now", width=8),
    Column("이전 유형", "type before", width=8),
    Column("현재 유형", "type now", width=8),
]

TOTAL_LABELS = {
    "payment_count": "결제 건수", "total_charge": "결제금액", "supply_value": "공급가액", "vat": "부가세",
    "canceled_count": "취소 건수", "canceled_total": "취소 금액", "net_count": "순 건수",
    "net_total": "순 결제금액", "net_supply_value": "순 공급가액", "net_vat": "순 부가세",
    "earlier_canceled_count": "이전 달 결제 취소 건수", "earlier_canceled_total": "이전 달 결제 취소 금액",
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


def _changes(wb: Workbook, ctx: ReportContext) -> None:
    prev = ctx.previous
    assert prev is not None
    above = [
        line(f"변경내역 — v{prev.version} ({prev.created_at:%Y-%m-%d %H:%M} KST 생성) → v{ctx.version}", "title"),
        *coverage_lines(ctx),
        [Styled("합계", "header"), Styled("key", "header"), Styled(f"v{prev.version}", "header"),
         Styled(f"v{ctx.version}", "header"), Styled("차이 difference", "header")],
        *totals_changes(ctx),
        [],
        line(f"변경된 결제 {ctx.changes}건 (payments changed)", "section"),
    ]  # fmt: skip
    sheet = Sheet(wb, CHANGES, CHANGE_COLUMNS, above=above)
    sql, params = changed_payments_sql(ctx)
    for row in data.stream(ctx.conn, sql, params):
        sheet.row(row)
    if sheet.data_rows == 0:
        sheet.note_row("변경된 결제 없음 (no payment changed)")
    sheet.finish()


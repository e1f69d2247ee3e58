"""The reconciliation workbook's sheets (the figures come from reconciliation.build)."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook

from point3_pipeline import rollforward as rf
from point3_pipeline.models import KST
from point3_pipeline.reports import data
from point3_pipeline.reports.reconciliation import (
    DAYS,
    MISMATCHES,
    OBSERVATIONS,
    PAYOUTS,
    SUMMARY,
    UNEXPLAINED,
    UNEXPLAINED_EN,
    Reconciliation,
    build,
)
from point3_pipeline.reports.summary import coverage_lines, header_rows
from point3_pipeline.reports.versions import ReportContext
from point3_pipeline.reports.workbook import Column, Sheet, Styled, free_sheet, line, write_rows

SOURCE_KO = {"api": "API", "imported": "가져옴 (imported)"}


def write_workbook(ctx: ReportContext, path: Path, *, terms: rf.Terms) -> None:
    rec = build(ctx.conn, ctx.period, terms)
    wb = Workbook(write_only=True)
    _summary(wb, ctx, rec)
    _days(wb, ctx, rec)
    _payouts(wb, ctx, rec)
    _observations(wb, ctx, rec)
    _mismatches(wb, ctx, rec)
    wb.save(path)


def _label(ko: str, en: str, value, note: str | None = None) -> list:
    return [Styled(ko, "label"), en, value, *([Styled(note, "note")] if note else [])]


def _summary(wb: Workbook, ctx: ReportContext, rec: Reconciliation) -> None:
    ws = free_sheet(wb, SUMMARY, [30, 40, 18, 70])
    rows = header_rows(ctx, "point3 월간 정산 잔액 대사 (미정산금 잔액 대사)")
    r = rec.month
    if r is None:
        rows.append(line("이 달에는 정산 잔액 관측이 없어 대사할 수 없습니다 (no settlement balance observed this month): "
                         "`point3 settlement` 로 관측하거나 `point3 settlement import FILE.csv` 로 이전 관측을 가져오세요.", "warning"))
    else:
        rows += _roll_lines(r)
    rows += [[]] + _fee_lines(rec) + [[]] + _tie_lines(rec, r) + [[]] + _deposit_lines(rec) + [[]]
    t = ctx.totals
    rows += [
        _label("잔액 관측 수", "observations", t["observation_count"]),
        _label("그중 가져온 관측", "of which imported", t["imported_observation_count"]),
        _label("맞지 않는 날", "days not tying", t["days_not_tying"]),
        _label("잔액 관측이 없는 날", "days without observations", t["days_without_observations"]),
        [],
        line("잔액은 30분마다 갱신됩니다: 관측값은 그 30분 구간 시작 시점의 잔액입니다. 어떤 시점의 잔액은 그 시점 이전 마지막 관측에"
             " 그 뒤 들어온 결제(수수료 차감)를 더한 값이며, 그 구간의 취소·지급·미확인은 다음 관측 쪽(이후)에 셉니다.", "note"),
        line("지급: 취소로 설명되지 않는 잔액 감소, 또는 00:00에 잔액을 0으로 비우거나 그 전 7일 안 어느 00:00의 잔액만큼 줄인 변동"
             " (같은 00:00에 들어온 정산금에 가려진 일별 지급). 잔액만으로는 같은 구간의 지급과 들어오지 않은 결제를 가를 수 없어,"
             " 그런 차이는 입금과의 대사(금액 차이, 입금 없는 지급)에서 드러납니다.", "note"),
        line("취소 시각은 point3가 주지 않으므로, 범위(마지막 정상 확인 ~ 취소 확인) 안에서 그 금액(여러 건이면 가장 적은 건수의 합)만큼"
             " 잔액이 줄어든 첫 구간에 둡니다 (없으면 취소 확인 시각).", "note"),
        line("구간은 (시작, 끝]입니다: 정확히 00:00에 일어난 일(예: 수요일 00:00 지급)은 전날 24:00 잔액에 들어 있어 전날에 셉니다.", "note"),
        line(f"적용한 설정 (settings): {rec.terms.describe()}.", "note"),
    ]
    write_rows(ws, rows)


def _roll_lines(r: rf.Roll) -> list[list]:
    return [
        _label("기초 잔액", "opening balance", r.opening.balance, f"{r.opening.at.astimezone(KST):%Y-%m-%d %H:%M} 기준: {r.opening.basis()}"),
        _label("+ 결제", "payments in", r.sales, f"{r.sales_count:,}건, 잔액에 들어온 시각 기준"),
        _label("− 취소", "cancellations out", r.cancellations, f"{r.cancellation_count:,}건"),
        _label("− 수수료 (부가세 포함)", "fees (with their VAT)", r.fees, f"그중 부가세 {r.fee_vat:,}원"),
        _label("− 지급", "payouts", r.payouts),
        _label("= 예상 기말 잔액", "expected closing", r.expected_closing),
        _label("관측 기말 잔액", "closing balance", r.closing.balance, f"{r.closing.at.astimezone(KST):%Y-%m-%d %H:%M} 기준: {r.closing.basis()}"),
        _label(UNEXPLAINED, UNEXPLAINED_EN, r.unexplained, "0이 아니면 '불일치' 시트를 보세요" if r.unexplained else None),
        *[line(n, "warning") for n in r.notes],
    ]


def _fee_lines(rec: Reconciliation) -> list[list]:
    terms, r = rec.terms, rec.month
    declared = "없음 (none)" if terms.fee_ppm == 0 else f"{rf.percent_text(terms.fee_ppm)} ({terms.fee_ppm / 100:g} bp)"
    rows = [
        line("수수료 (fees)", "section"),
        _label("약정 수수료율 (설정)", "declared fee rate", declared,
               "부가세 10% 별도 부과" if terms.fee_vat else "부가세 부과 없음 (no VAT on the fee)"),
    ]
    implied = rec.implied_ppm
    if implied is None:
        rows.append(_label("데이터가 말하는 수수료율", "implied fee rate", "계산 불가 (no sales between payouts)"))
    else:
        note = "지급 사이 잔액 증가를 가장 잘 설명하는 비율 (부가세 포함): 계약과 비교하세요"
        rows.append(_label("데이터가 말하는 수수료율", "implied fee rate (VAT included)",
                           f"{rf.percent_text(implied)} ({float(implied) / 100:.2f} bp)", note))
    if r is not None:
        rows.append(_label("수수료 부가세 (매입세액 후보)", "VAT on fees: candidate input VAT", r.fee_vat,
                           "증빙은 point3가 발행하는 세금계산서입니다 (the tax invoice is the evidence)"))
    return rows


def _tie_lines(rec: Reconciliation, r: rf.Roll | None) -> list[list]:
    sales = r.sales if r else 0
    cancellations = r.cancellations if r else 0
    return [
        line("부가세 워크북과의 연결 (tie to the tax workbook)", "section"),
        _label("결제: 부가세 워크북 기준", "sales as the tax workbook counts (payment day)", rec.tax_sales),
        _label("결제: 대사 기준", "sales as the roll-forward counts (when credited)", sales),
        _label("결제 시차", "sales timing difference", rec.tax_sales - sales,
               "월말·월초 경계의 결제 (잔액 반영 시각과 결제일의 차이)"),
        _label("취소: 부가세 워크북 기준", "cancellations as the tax workbook counts", rec.tax_cancellations,
               "이 달 결제 중 취소된 것 + 이전 달 결제로 이 달에 확인된 취소"),
        _label("취소: 대사 기준", "cancellations as the roll-forward counts (when the balance fell)", cancellations),
        _label("취소 시차", "cancellations timing difference", rec.tax_cancellations - cancellations,
               "부가세는 결제 또는 확인 기준, 대사는 잔액이 줄어든 때 기준"),
    ]


def _deposit_lines(rec: Reconciliation) -> list[list]:
    pairs = [m for m in rec.matches if m.payout and m.deposit]
    rows = [
        line("지급과 입금 (payouts and bank deposits)", "section"),
        _label("지급 건수", "payouts", sum(1 for m in rec.matches if m.payout)),
        _label("입금과 맞춘 지급", "payouts matched to a deposit", len(pairs)),
        _label("금액이 다른 짝", "pairs with an amount difference", sum(1 for m in pairs if m.difference)),
        _label("입금 없는 지급", "payouts without a deposit", sum(1 for m in rec.matches if m.payout and not m.deposit)),
        _label("지급 없는 입금", "deposits without a payout", sum(1 for m in rec.matches if m.deposit and not m.payout)),
    ]
    if not rec.deposits_imported:
        rows.append(line("은행 입금 내역을 가져오지 않았습니다: `point3 deposits import FILE.csv` (no deposits imported).", "warning"))
    if rec.overdue:
        rows.append(line(f"입금 기한({rec.terms.deposit_overdue_days}일)이 지난 입금 없는 지급 {len(rec.overdue)}건.", "warning"))
    return rows


DAY_COLUMNS = [
    Column("날짜", "date", "date", 11),
    Column("요일", "weekday", width=5),
    Column("동기화", "synced", width=8),
    Column("관측 수", "observations", "count", 8),
    Column("기초 잔액 시점 (KST)", "opening as at, KST", "datetime", 18),
    Column("기초 잔액", "opening balance", "won", 14),
    Column("기말 잔액 시점 (KST)", "closing as at, KST", "datetime", 18),
    Column("관측 기말 잔액", "observed closing", "won", 14),
    Column("결제", "payments in", "won", 13),
    Column("취소", "cancellations out", "won", 13),
    Column("수수료", "fees", "won", 12),
    Column("지급", "payouts", "won", 13),
    Column(UNEXPLAINED, UNEXPLAINED_EN, "won", 16),
    Column("예상 기말 잔액", "expected closing", "won", 14),
    Column("기초·기말 잔액의 근거", "what the balances rest on", width=60),
]


def _days(wb: Workbook, ctx: ReportContext, rec: Reconciliation) -> None:
    sheet = Sheet(wb, DAYS, DAY_COLUMNS, above=[line(f"일별 대사 — {ctx.period.label}", "title"), *coverage_lines(ctx)])
    counts = _observation_counts(rec)
    for day, r in rec.days:
        synced = "완료" if day in ctx.coverage.synced else "미완료"
        head = [day, data.WEEKDAYS_KO[day.weekday()], synced, counts.get(day, 0)]
        if r is None:
            sheet.row([*head, *[None] * 10, "이 날 대사할 잔액 관측 없음 (no observation reaches this day)"])
            continue
        basis = f"기초: {r.opening.basis()} / 기말: {r.closing.basis()}" + "".join(f" / {n}" for n in r.notes)
        sheet.row([*head, r.opening.at, r.opening.balance, r.closing.at, r.closing.balance, r.sales, r.cancellations,
                   r.fees, r.payouts, r.unexplained, r.expected_closing, basis])  # fmt: skip
    sheet.totals("합계 total", {n: "=SUM({range})" for n in range(8, 13)})
    sheet.finish()


def _observation_counts(rec: Reconciliation) -> dict:
    counts: dict = {}
    for o in rec.history.observations:
        day = o.observed_at.astimezone(KST).date()
        counts[day] = counts.get(day, 0) + 1
    return counts


PAYOUT_COLUMNS = [
    Column("구분", "kind", width=16),
    Column("지급 이후 (KST)", "payout after, KST", "datetime", 18),
    Column("지급 이전 (KST)", "payout by, KST", "datetime", 18),
    Column("지급액", "payout", "won", 14),
    Column("입금 일시 (KST)", "deposited at, KST", "datetime", 18),
    Column("입금액", "deposit", "won", 14),
    Column("차이 (입금 − 지급)", "difference (deposit − payout)", "won", 14),
    Column("적요·내용", "bank text", width=24),
    Column("비고", "note", width=40),
]


def _payouts(wb: Workbook, ctx: ReportContext, rec: Reconciliation) -> None:
    above = [line(f"지급과 은행 입금 — {ctx.period.label}", "title"), *coverage_lines(ctx),
             line(f"지급은 잔액 이력에서 찾은 감소이며, 입금은 지급 구간 시작일부터 끝난 날 + {rec.terms.match_days}일 안의 은행 입금과 맞춥니다"
                  " (같은 금액 먼저, 그다음 5% 이내의 가장 가까운 금액).", "note")]
    sheet = Sheet(wb, PAYOUTS, PAYOUT_COLUMNS, above=above)
    overdue = {id(p) for p in rec.overdue}
    for m in rec.matches:
        p, d = m.payout, m.deposit
        if p and d:
            kind, note = ("맞음 matched", None) if not m.difference else ("금액 차이 differs", "입금액이 지급액과 다릅니다")
        elif p:
            kind = "입금 없음 no deposit"
            note = f"입금 기한 {rec.terms.deposit_overdue_days}일 지남 (overdue)" if id(p) in overdue else None
        else:
            kind, note = "지급 없음 no payout", "잔액 이력에 맞는 지급이 없습니다"
        bank = f"{d.summary} {d.memo}".strip() if d else None
        sheet.row([kind, p.after if p else None, p.by if p else None, p.amount if p else None,
                   d.deposited_at if d else None, d.amount if d else None, m.difference, bank, note])  # fmt: skip
    sheet.totals("합계 total", {3: "=SUM({range})", 5: "=SUM({range})", 6: "=SUM({range})"})
    sheet.finish()


OBSERVATION_COLUMNS = [
    Column("관측 시각 (KST)", "observed at, KST", "datetime", 18),
    Column("갱신 구간 시작 (KST)", "refresh slot, KST", "datetime", 18),
    Column("출처", "source", width=14),
    Column("잔액", "balance", "won", 14),
    Column("이전 관측 대비 변동", "change since previous", "won", 14),
    Column("결제", "payments in", "won", 13),
    Column("취소", "cancellations out", "won", 13),
    Column("수수료", "fees", "won", 12),
    Column("지급", "payouts", "won", 13),
    Column(UNEXPLAINED, UNEXPLAINED_EN, "won", 16),
]


def _observations(wb: Workbook, ctx: ReportContext, rec: Reconciliation) -> None:
    above = [line(f"정산 잔액 관측 — {ctx.period.label} (앞뒤 달의 기준 관측 포함)", "title"), *coverage_lines(ctx)]
    sheet = Sheet(wb, OBSERVATIONS, OBSERVATION_COLUMNS, above=above)
    shown = _observations_shown(rec)
    by_closing = {id(i.closing): i for i in rec.history.intervals}
    for n, o in enumerate(shown):
        head = [o.observed_at, o.slot, SOURCE_KO.get(o.source, o.source), o.balance]
        i = by_closing.get(id(o))
        if n == 0 or i is None:
            sheet.row(head)
        else:
            sheet.row([*head, i.actual, i.sales, i.cancellations, i.fees, i.payout, i.unexplained])
    if not shown:
        sheet.note_row("이 달에는 잔액 관측이 없습니다 (no observations this month)")
    sheet.totals("합계 total", {n: "=SUM({range})" for n in range(4, 10)})
    sheet.finish()


def _observations_shown(rec: Reconciliation) -> list[rf.Observation]:
    """The month's observations with the one each end of the month rests on."""
    start, end = rec.period.start, rec.period.end
    observations = rec.history.observations
    before = [n for n, o in enumerate(observations) if o.slot <= start]
    after = [n for n, o in enumerate(observations) if o.slot >= end]
    first = before[-1] if before else 0
    last = after[0] if after else len(observations) - 1
    return observations[first:last + 1]


MISMATCH_COLUMNS = [
    Column("종류", "kind", width=12),
    Column("날짜", "date", "date", 11),
    Column("구간 시작 (KST)", "from, KST", "datetime", 18),
    Column("구간 끝 (KST)", "to, KST", "datetime", 18),
    Column("금액", "amount", "won", 14),
    Column("비고", "note", width=60),
]


def _mismatches(wb: Workbook, ctx: ReportContext, rec: Reconciliation) -> None:
    above = [line(f"맞지 않는 것 — {ctx.period.label}", "title"), *coverage_lines(ctx)]
    sheet = Sheet(wb, MISMATCHES, MISMATCH_COLUMNS, above=above)
    start, end = ctx.period.start, ctx.period.end
    for i in rec.history.intervals:
        if start < i.closing.slot <= end and i.unexplained:
            sheet.row(["미확인", i.closing.slot.astimezone(KST).date(), i.opening.slot, i.closing.slot, i.unexplained,
                       f"{UNEXPLAINED_EN}: 이 구간 잔액 변동 {i.actual:,}원, 예상 {i.actual - i.unexplained:,}원"])  # fmt: skip
    for day, r in rec.days:
        if r is None:
            sheet.row(["관측 없음", day, None, None, None, "이 날 대사할 잔액 관측 없음 (no observation)"])
        if day not in ctx.coverage.synced:
            sheet.row(["동기화 미완료", day, None, None, None, "결제·취소가 빠졌을 수 있음 (not synced)"])
    for m in rec.matches:
        if m.payout and not m.deposit:
            sheet.row(["입금 없음", m.payout.by.astimezone(KST).date(), m.payout.after, m.payout.by, m.payout.amount,
                       "이 지급의 은행 입금이 없습니다 (payout without a deposit)"])  # fmt: skip
        elif m.deposit and not m.payout:
            sheet.row(["지급 없음", m.deposit.deposit_date, None, None, m.deposit.amount,
                       "이 입금에 맞는 지급이 없습니다 (deposit without a payout)"])  # fmt: skip
        elif m.difference:
            sheet.row(["금액 차이", m.deposit.deposit_date, m.payout.after, m.payout.by, m.difference,
                       f"지급 {m.payout.amount:,}원, 입금 {m.deposit.amount:,}원"])  # fmt: skip
    if sheet.data_rows == 0:
        sheet.note_row("모두 맞습니다 (everything ties)")
    sheet.finish()

"""The monthly reconciliation workbook: does the settlement balance move as the payments say?

point3 reports only the current balance, refreshed every 30 minutes, so an observation is
taken as the balance at the start of its 30-minute refresh slot. Between two observations
the balance should move by the payments accepted (money in, cancelled later or not) minus
the cancellations detected in between. What remains is payouts, fees and timing, which
point3's API does not show: it is reported as the unexplained difference, never hidden.
Days without observations say so instead of inventing numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
from openpyxl import Workbook

from point3_pipeline.models import KST
from point3_pipeline.reports import data
from point3_pipeline.periods import Period
from point3_pipeline.reports.data import Coverage
from point3_pipeline.reports.summary import coverage_lines, header_rows
from point3_pipeline.reports.versions import ReportContext, ReportResult, render
from point3_pipeline.reports.workbook import Column, Sheet, Styled, free_sheet, line, write_rows
from point3_pipeline.warehouse import Warehouse

SUMMARY, DAYS, OBSERVATIONS, MISMATCHES = "요약", "일별 대사", "잔액 관측", "불일치"
UNEXPLAINED = "설명되지 않은 차이"
UNEXPLAINED_EN = "unexplained: payouts, fees and timing (not in point3's API)"


@dataclass(frozen=True)
class Observation:
    observed_at: dt.datetime
    slot: dt.datetime  # the balance is as at this instant
    balance: int


@dataclass(frozen=True)
class Interval:
    opening: Observation
    closing: Observation
    payments_in: int = 0
    cancellations_out: int = 0

    @property
    def expected(self) -> int:
        return self.payments_in - self.cancellations_out

    @property
    def actual(self) -> int:
        return self.closing.balance - self.opening.balance

    @property
    def unexplained(self) -> int:
        return self.actual - self.expected


def render_reconciliation_report(
    warehouse: Warehouse, month: str, reports_dir: Path, *, now: dt.datetime | None = None
) -> ReportResult:
    """Write the month's reconciliation workbook as a new version, unless nothing changed."""
    return render("reconciliation", warehouse, month, Path(reports_dir), now, reconciliation_totals, write_workbook)


def observations(conn: duckdb.DuckDBPyConnection, month: Period) -> tuple[Observation | None, list[Observation]]:
    """The last observation before the month (the opening balance) and the month's own."""
    rows = conn.execute(
        """
        SELECT observed_at, refresh_slot, balance FROM settlement_balance_history
        WHERE observed_at >= ? AND observed_at < ? ORDER BY observed_at
        """,
        [month.start, month.end],
    ).fetchall()
    before = conn.execute(
        """
        SELECT observed_at, refresh_slot, balance FROM settlement_balance_history
        WHERE observed_at < ? ORDER BY observed_at DESC LIMIT 1
        """,
        [month.start],
    ).fetchone()
    return (Observation(*before) if before else None), [Observation(*r) for r in rows]


def with_flows(conn: duckdb.DuckDBPyConnection, intervals: list[tuple[Observation, Observation]]) -> list[Interval]:
    """Money in and out between each pair of observations' slots, (opening slot, closing slot]."""
    if not intervals:
        return []
    rows = conn.execute(
        """
        WITH intervals AS (
            SELECT unnest(?::BIGINT[]) AS idx, unnest(?::TIMESTAMPTZ[]) AS lo, unnest(?::TIMESTAMPTZ[]) AS hi
        ),
        moves AS (
            SELECT coalesce(accepted_at, CAST(payment_date AS TIMESTAMP) AT TIME ZONE 'Asia/Seoul') AS at,
                   total_charge AS amount_in, 0 AS amount_out
            FROM payments
            UNION ALL
            -- a reverted cancellation (is_anomaly) is listed as a finding, not as money out. One
            -- already cancelled when first seen (a quick refund between two syncs, or any before a
            -- first backfill) has no detection worth the name: it leaves at its payment's time,
            -- so the payment and its refund net out where they happened
            SELECT CASE
                       WHEN first_seen_canceled
                       THEN coalesce(accepted_at, CAST(payment_date AS TIMESTAMP) AT TIME ZONE 'Asia/Seoul')
                       ELSE detected_at
                   END,
                   0, total_charge
            FROM cancellations WHERE NOT is_anomaly
        )
        SELECT i.idx, coalesce(sum(m.amount_in), 0), coalesce(sum(m.amount_out), 0)
        FROM intervals AS i LEFT JOIN moves AS m ON m.at > i.lo AND m.at <= i.hi
        GROUP BY i.idx ORDER BY i.idx
        """,
        [list(range(len(intervals))), [a.slot for a, _ in intervals], [b.slot for _, b in intervals]],
    ).fetchall()
    return [Interval(a, b, money_in, money_out) for (a, b), (_, money_in, money_out) in zip(intervals, rows)]


@dataclass(frozen=True)
class DayRow:
    day: dt.date
    observation_count: int
    interval: Interval | None
    note: str | None


def day_rows(
    conn: duckdb.DuckDBPyConnection, month: Period, before: Observation | None, observed: list[Observation]
) -> list[DayRow]:
    """Per day: opening = last balance at or before the day's start (else the day's first),
    closing = last balance of the day. The days chain, so their changes add up to the month's."""
    pairs: list[tuple[dt.date, Observation, Observation]] = []
    counts: dict[dt.date, int] = {}
    notes: dict[dt.date, str] = {}
    last = before
    for day in month.days:
        start = dt.datetime.combine(day, dt.time(), KST)
        end = start + dt.timedelta(days=1)
        todays = [o for o in observed if start <= o.slot < end]
        counts[day] = len([o for o in observed if o.observed_at.astimezone(KST).date() == day])
        if not todays:
            notes[day] = "이 날 잔액 관측 없음 (no balance observed this day)"
            continue
        opening = last if last is not None else todays[0]
        if last is None:
            notes[day] = "이전 관측 없음: 이 날 첫 관측부터 (no earlier observation)"
        pairs.append((day, opening, todays[-1]))
        last = todays[-1]
    intervals = dict(zip((d for d, _, _ in pairs), with_flows(conn, [(a, b) for _, a, b in pairs])))
    return [DayRow(day, counts[day], intervals.get(day), notes.get(day)) for day in month.days]


def observation_rows(
    conn: duckdb.DuckDBPyConnection, before: Observation | None, observed: list[Observation]
) -> list[tuple[Observation, Interval | None]]:
    previous = [before, *observed[:-1]]
    pairs = [(p, o) for p, o in zip(previous, observed) if p is not None]
    flows = {id(i.closing): i for i in with_flows(conn, pairs)}
    return [(o, flows.get(id(o))) for o in observed]


def reconciliation_totals(conn: duckdb.DuckDBPyConnection, month: Period, coverage: Coverage) -> dict[str, int]:
    totals = data.month_totals(conn, month)
    before, observed = observations(conn, month)
    days = day_rows(conn, month, before, observed)
    totals.update(_balance_totals(days, len(observed)))
    return totals


def _balance_totals(days: list[DayRow], observation_count: int) -> dict[str, int]:
    tied = [d.interval for d in days if d.interval is not None]
    out = {
        "observation_count": observation_count,
        "days_without_observations": sum(1 for d in days if d.interval is None),
        "days_not_tying": sum(1 for i in tied if i.unexplained != 0),
    }
    if tied:
        out.update(
            opening_balance=tied[0].opening.balance,
            closing_balance=tied[-1].closing.balance,
            payments_in=sum(i.payments_in for i in tied),
            cancellations_out=sum(i.cancellations_out for i in tied),
            expected_change=sum(i.expected for i in tied),
            actual_change=sum(i.actual for i in tied),
            unexplained=sum(i.unexplained for i in tied),
        )
    return out


def write_workbook(ctx: ReportContext, path: Path) -> None:
    before, observed = observations(ctx.conn, ctx.period)
    days = day_rows(ctx.conn, ctx.period, before, observed)
    per_observation = observation_rows(ctx.conn, before, observed)
    wb = Workbook(write_only=True)
    _summary(wb, ctx)
    _days(wb, ctx, days)
    _observations(wb, ctx, per_observation)
    _mismatches(wb, ctx, days, per_observation)
    wb.save(path)


def _summary(wb: Workbook, ctx: ReportContext) -> None:
    ws = free_sheet(wb, SUMMARY, [30, 34, 18])
    t = ctx.totals
    rows = header_rows(ctx, "point3 월간 정산 잔액 대사")
    if "opening_balance" not in t:
        rows.append(line("이 달에는 정산 잔액 관측이 없어 대사할 수 없습니다 (no settlement balance observed this month).", "warning"))
    else:
        rows += [
            [Styled("기초 잔액", "label"), "opening balance", t["opening_balance"]],
            [Styled("결제 유입", "label"), "payments in", t["payments_in"]],
            [Styled("취소 유출", "label"), "cancellations out", t["cancellations_out"]],
            [Styled("예상 변동", "label"), "expected change", t["expected_change"]],
            [Styled("기말 잔액", "label"), "closing balance", t["closing_balance"]],
            [Styled("실제 변동", "label"), "actual change", t["actual_change"]],
            [Styled(UNEXPLAINED, "label"), UNEXPLAINED_EN, t["unexplained"]],
        ]
    rows += [
        [Styled("잔액 관측 수", "label"), "observations", t["observation_count"]],
        [Styled("맞지 않는 날", "label"), "days not tying", t["days_not_tying"]],
        [Styled("잔액 관측이 없는 날", "label"), "days without observations", t["days_without_observations"]],
        [],
        line("잔액은 30분마다 갱신됩니다: 관측값은 그 30분 구간 시작 시점의 잔액으로 봅니다.", "note"),
        line("결제 유입은 그 사이 승인된 결제 전액(나중에 취소된 것 포함), 취소 유출은 그 사이 동기화가 처음 본 취소입니다"
             " (처음 볼 때 이미 취소된 결제는 그 결제 시각에 나갑니다).", "note"),
        line(f"{UNEXPLAINED}: 지급(정산), 수수료, 시차 — point3 API에 나오지 않습니다 ({UNEXPLAINED_EN}).", "note"),
    ]
    untimed = ctx.conn.execute(
        "SELECT count(*) FROM payments WHERE accepted_at IS NULL AND payment_date BETWEEN ? AND ?",
        [ctx.period.first, ctx.period.last],
    ).fetchone()[0]
    if untimed:
        rows.append(line(
            f"승인 시각이 없는 결제 {untimed:,}건은 결제일 00:00에 들어온 것으로 계산했습니다"
            f" ({untimed:,} payments without an accept time are placed at 00:00 KST of their day).", "note",
        ))
    write_rows(ws, rows)


DAY_COLUMNS = [
    Column("날짜", "date", "date", 11),
    Column("요일", "weekday", width=5),
    Column("동기화", "synced", width=8),
    Column("관측 수", "observations", "count", 8),
    Column("기초 잔액 시점 (KST)", "opening as at, KST", "datetime", 18),
    Column("기초 잔액", "opening balance", "won", 14),
    Column("기말 잔액 시점 (KST)", "closing as at, KST", "datetime", 18),
    Column("기말 잔액", "closing balance", "won", 14),
    Column("결제 유입", "payments in", "won", 13),
    Column("취소 유출", "cancellations out", "won", 13),
    Column("예상 변동", "expected change", "won", 13),
    Column("실제 변동", "actual change", "won", 13),
    Column(UNEXPLAINED, UNEXPLAINED_EN, "won", 22),
    Column("비고", "note", width=36),
]


def _days(wb: Workbook, ctx: ReportContext, days: list[DayRow]) -> None:
    sheet = Sheet(wb, DAYS, DAY_COLUMNS, above=[line(f"일별 대사 — {ctx.period.label}", "title"), *coverage_lines(ctx)])
    for d in days:
        synced = "완료" if d.day in ctx.coverage.synced else "미완료"
        head = [d.day, data.WEEKDAYS_KO[d.day.weekday()], synced, d.observation_count]
        i = d.interval
        if i is None:
            sheet.row([*head, None, None, None, None, None, None, None, None, None, d.note])
            continue
        note = d.note or (None if i.unexplained == 0 else "맞지 않음 (does not tie)")
        sheet.row([*head, i.opening.slot, i.opening.balance, i.closing.slot, i.closing.balance,
                   i.payments_in, i.cancellations_out, i.expected, i.actual, i.unexplained, note])  # fmt: skip
    sheet.totals("합계 total", {n: "=SUM({range})" for n in range(8, 13)})
    sheet.finish()


OBSERVATION_COLUMNS = [
    Column("관측 시각 (KST)", "observed at, KST", "datetime", 18),
    Column("갱신 구간 시작 (KST)", "refresh slot, KST", "datetime", 18),
    Column("잔액", "balance", "won", 14),
    Column("이전 관측 대비 변동", "change since previous", "won", 14),
    Column("결제 유입", "payments in", "won", 13),
    Column("취소 유출", "cancellations out", "won", 13),
    Column("예상 변동", "expected change", "won", 13),
    Column(UNEXPLAINED, UNEXPLAINED_EN, "won", 22),
]


def _observations(wb: Workbook, ctx: ReportContext, rows: list[tuple[Observation, Interval | None]]) -> None:
    above = [line(f"정산 잔액 관측 — {ctx.period.label}", "title"), *coverage_lines(ctx)]
    sheet = Sheet(wb, OBSERVATIONS, OBSERVATION_COLUMNS, above=above)
    for o, i in rows:
        if i is None:
            sheet.row([o.observed_at, o.slot, o.balance])
        else:
            sheet.row([o.observed_at, o.slot, o.balance, i.actual, i.payments_in, i.cancellations_out, i.expected, i.unexplained])
    if not rows:
        sheet.note_row("이 달에는 잔액 관측이 없습니다 (no observations this month)")
    sheet.totals("합계 total", {n: "=SUM({range})" for n in range(3, 8)})
    sheet.finish()


MISMATCH_COLUMNS = [
    Column("종류", "kind", width=10),
    Column("날짜", "date", "date", 11),
    Column("관측 시각 (KST)", "observed at, KST", "datetime", 18),
    Column("예상 변동", "expected change", "won", 13),
    Column("실제 변동", "actual change", "won", 13),
    Column(UNEXPLAINED, UNEXPLAINED_EN, "won", 22),
    Column("비고", "note", width=44),
]


def _mismatches(wb: Workbook, ctx: ReportContext, days: list[DayRow], rows: list[tuple[Observation, Interval | None]]) -> None:
    above = [line(f"맞지 않는 날과 관측 — {ctx.period.label}", "title"), *coverage_lines(ctx)]
    sheet = Sheet(wb, MISMATCHES, MISMATCH_COLUMNS, above=above)
    for d in days:
        if d.interval is None:
            sheet.row(["일 day", d.day, None, None, None, None, d.note])
        elif d.interval.unexplained != 0:
            i = d.interval
            sheet.row(["일 day", d.day, None, i.expected, i.actual, i.unexplained, f"{UNEXPLAINED} ({UNEXPLAINED_EN})"])
        if d.day not in ctx.coverage.synced:
            sheet.row(["일 day", d.day, None, None, None, None, "동기화 미완료: 결제·취소가 빠졌을 수 있음 (not synced)"])
    for o, i in rows:
        if i is not None and i.unexplained != 0:
            sheet.row(["관측 obs.", o.observed_at.astimezone(KST).date(), o.observed_at, i.expected, i.actual,
                       i.unexplained, f"{UNEXPLAINED} ({UNEXPLAINED_EN})"])  # fmt: skip
    if sheet.data_rows == 0:
        sheet.note_row("모든 날과 관측이 맞습니다 (everything ties)")
    sheet.finish()

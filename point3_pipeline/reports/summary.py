"""The opening block of the workbooks' first sheet, and the warning every sheet repeats."""

from __future__ import annotations

from point3_pipeline.reports import data
from point3_pipeline.reports.versions import FILING_KINDS, ReportContext
from point3_pipeline.reports.workbook import Styled, line

CHANGES_SHEET = "변경내역"


def coverage_lines(ctx: ReportContext) -> list[list]:
    """The warning lines every sheet of a non-final report starts with."""
    cover = ctx.coverage
    if cover.is_final:
        return []
    return [line(cover.warning_ko(), "warning"), line(cover.warning_en(), "note")]


def header_rows(ctx: ReportContext, title: str) -> list[list]:
    """The header block shared by the summary sheets of both workbooks."""
    cover = ctx.coverage
    nickname, identification = data.merchant(ctx.conn, ctx.period)
    if cover.as_of is None:
        as_of_text = "없음 — 이 기간의 어느 날도 완전히 동기화되지 않았습니다 (no day of this period is synced)"
    else:
        as_of_text = cover.as_of
    rows = [
        line(f"{title} — {ctx.period.label} (v{ctx.version})", "title"),
        *coverage_lines(ctx),
        [],
        [Styled("가맹점", "label"), "merchant", nickname or "(이 기간 결제 없음 / no payments)"],
        [Styled("point3 가맹점 식별자", "label"), "clientIdentification", identification],
        [Styled("기간 (KST)", "label"), "period",
         f"{ctx.period.label_ko}: {ctx.period.first:%Y-%m-%d} ~ {ctx.period.last:%Y-%m-%d}"],
        [Styled("생성 시각 (KST)", "label"), "generated at", ctx.generated_at],
        [Styled("데이터 기준 시각 (KST)", "label"), "data as of", as_of_text],
        [
            "",
            "",
            Styled("이 기간 각 날짜의 마지막 완전 동기화 중 가장 오래된 시각: 모든 수치는 적어도 이 시각 현재의 데이터입니다.", "note"),
        ],
        [Styled("가장 최근 동기화 (KST)", "label"), "newest sync", cover.newest_sync_at or "없음 (none)"],
        [
            Styled("동기화된 날", "label"),
            "days synced",
            f"{cover.days_synced} / {cover.days_in_period}일" + ("" if cover.is_final else " (최종본 아님 / not final)"),
        ],
        [
            Styled("버전", "label"),
            "version",
            f"v{ctx.version}"
            + (f" — v{ctx.previous.version} 대비 {ctx.changes}건 변경" if ctx.previous else "")
            + (f" ('{CHANGES_SHEET}' 시트)" if ctx.previous and ctx.kind in FILING_KINDS else ""),
        ],
        [],
    ]
    return rows

"""The monthly reconciliation workbook: the settlement balance rolled forward (미정산금 잔액 대사).

opening + sales − cancellations − fees − payouts = expected closing, against the observed
closing; what remains is 미확인 (unexplained), never hidden. Per month and per day, each
balance "as at" 00:00 with the observations it rests on; payouts found in the balance history
and matched to the bank deposits imported; the declared fee beside the rate the data implies;
and the tie to the tax workbook's sales and cancellations. The logic lives in
point3_pipeline.rollforward and point3_pipeline.deposits; this module reads and writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import duckdb

from point3_pipeline import rollforward as rf
from point3_pipeline.deposits import Match, latest_import, load_deposits, match
from point3_pipeline.models import KST
from point3_pipeline.periods import Period
from point3_pipeline.reports import data
from point3_pipeline.reports.data import Coverage
from point3_pipeline.reports.versions import ReportResult, render
from point3_pipeline.warehouse import Warehouse

SUMMARY, DAYS, PAYOUTS, OBSERVATIONS, MISMATCHES = "요약", "일별 대사", "지급·입금", "잔액 관측", "불일치"
UNEXPLAINED = "미확인 (설명되지 않은 차이)"
UNEXPLAINED_EN = "unexplained: observed closing − expected closing"


@dataclass
class Reconciliation:
    """Everything the workbook shows, computed once from one connection."""

    period: Period
    terms: rf.Terms
    history: rf.History
    month: rf.Roll | None
    days: list[tuple[dt.date, rf.Roll | None]]
    matches: list[Match]  # of this month's payouts and deposits
    overdue: list[rf.Payout]
    deposits_imported: bool
    implied_ppm: Fraction | None
    tax_sales: int
    tax_cancellations: int


def render_reconciliation_report(
    warehouse: Warehouse, month: str, reports_dir: Path, *, now: dt.datetime | None = None,
    terms: rf.Terms | None = None,
) -> ReportResult:
    """Write the month's reconciliation workbook as a new version, unless nothing it shows changed."""
    terms = terms or rf.Terms()
    from point3_pipeline.reports.reconciliation_sheets import write_workbook  # it imports this module

    return render(
        "reconciliation", warehouse, month, Path(reports_dir), now,
        partial(reconciliation_totals, terms=terms), partial(write_workbook, terms=terms),
        partial(fingerprint_parts, terms=terms),
    )  # fmt: skip


def _kst_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=KST)


def build(conn: duckdb.DuckDBPyConnection, period: Period, terms: rf.Terms) -> Reconciliation:
    start, end = period.start, period.end
    # From match_days before the month: deposits early in the month may belong to its payouts.
    h = rf.history(conn, start - dt.timedelta(days=terms.match_days), end, terms)
    days = [(d, rf.roll(h, _kst_start(d), _kst_start(d) + dt.timedelta(days=1))) for d in period.days]
    candidates = [p for p in h.payouts() if p.by > start - dt.timedelta(days=terms.match_days)]
    deposits = load_deposits(conn, period.first - dt.timedelta(days=2 * terms.match_days),
                             period.last + dt.timedelta(days=terms.match_days))
    matches = [
        m for m in match(candidates, deposits, terms.match_days)
        if (m.payout is not None and start < m.payout.by <= end)
        or (m.payout is None and m.deposit is not None and period.contains(m.deposit.deposit_date))
    ]
    imported_until = latest_import(conn)
    overdue = [
        m.payout for m in matches
        if m.payout is not None and m.deposit is None and imported_until is not None
        and m.payout.by + dt.timedelta(days=terms.deposit_overdue_days) < imported_until
    ]  # fmt: skip
    totals = data.month_totals(conn, period)
    return Reconciliation(
        period, terms, h, rf.roll(h, start, end), days, matches, overdue, imported_until is not None,
        rf.implied_fee_ppm(h, start, end), totals["total_charge"],
        totals["canceled_total"] + totals["earlier_canceled_total"],
    )  # fmt: skip


def fingerprint_parts(conn: duckdb.DuckDBPyConnection, period: Period, *, terms: rf.Terms) -> list[str]:
    """What the workbook shows beyond the month's own rows, as text to hash: every observation,
    interval, payout and deposit it rests on, those before and after the month included."""
    rec = build(conn, period, terms)
    shown = repr((rec.terms, rec.history.observations, rec.history.intervals, rec.history.unplaced,
                  rec.month, rec.days, rec.matches, rec.overdue, rec.implied_ppm))  # fmt: skip
    return [hashlib.sha256(shown.encode()).hexdigest()]


def reconciliation_totals(
    conn: duckdb.DuckDBPyConnection, period: Period, coverage: Coverage, *, terms: rf.Terms
) -> dict[str, int]:
    return totals_of(conn, build(conn, period, terms))


def totals_of(conn: duckdb.DuckDBPyConnection, rec: Reconciliation) -> dict[str, int]:
    totals = data.month_totals(conn, rec.period)
    observed = [o for o in rec.history.observations if rec.period.start <= o.slot < rec.period.end]
    totals.update(
        observation_count=len(observed),
        imported_observation_count=sum(1 for o in observed if o.source == "imported"),
        days_without_observations=sum(1 for _, r in rec.days if r is None),
        days_not_tying=sum(1 for _, r in rec.days if r is not None and r.unexplained != 0),
        fee_ppm_declared=rec.terms.fee_ppm,
        payouts_matched=sum(1 for m in rec.matches if m.payout and m.deposit),
        payouts_without_deposit=sum(1 for m in rec.matches if m.payout and not m.deposit),
        deposits_without_payout=sum(1 for m in rec.matches if m.deposit and not m.payout),
        deposit_difference=sum(m.difference or 0 for m in rec.matches),
        payouts_overdue=len(rec.overdue),
        tax_sales=rec.tax_sales,
        tax_cancellations=rec.tax_cancellations,
    )
    if rec.implied_ppm is not None:
        totals["fee_ppm_implied"] = round(rec.implied_ppm)
    r = rec.month
    if r is not None:
        totals.update(
            opening_balance=r.opening.balance, closing_balance=r.closing.balance, payments_in=r.sales,
            cancellations_out=r.cancellations, fees=r.fees, fee_vat=r.fee_vat, payouts=r.payouts,
            payout_count=sum(1 for m in rec.matches if m.payout), expected_closing=r.expected_closing,
            unexplained=r.unexplained,
        )  # fmt: skip
    return totals


@dataclass(frozen=True)
class MonthCheck:
    month: str
    unexplained: int
    overdue: list[rf.Payout]


def check_reported_months(conn: duckdb.DuckDBPyConnection, terms: rf.Terms) -> list[MonthCheck]:
    """Each month with a reconciliation workbook, as the warehouse stands now: its unexplained
    balance change and its payouts still without a deposit after the latest deposits import."""
    from point3_pipeline.summaries import latest_reports

    out = []
    for period in latest_reports(conn, "reconciliation"):
        rec = build(conn, period, terms)
        out.append(MonthCheck(period.label, rec.month.unexplained if rec.month else 0, rec.overdue))
    return out

"""Planning: which KST day windows a run reads, and when a day counts as synced.

A day is synced ("final") when some read of its window was whole and finished at least
`SETTLE_MARGIN` after the day ended (margin for point3's 30-second confirm and its 5-minute
cancellation batch). The sync decides it per read (`closed_reason`, stored as
`sync_windows.is_complete`); the `sync_coverage` view aggregates it per day; the plan here,
the reports' coverage and `point3 status` all read that view, so there is one definition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import duckdb

from point3_pipeline.models import KST, kst_day_start
from point3_pipeline.sync.statements import sql

SETTLE_MARGIN = dt.timedelta(minutes=30)
DEFAULT_LOOKBACK_DAYS = 2
DEFAULT_SWEEP_DAYS = 35

Clock = Callable[[], dt.datetime]


def kst_now() -> dt.datetime:
    return dt.datetime.now(KST)


def days_between(first_day: dt.date, last_day: dt.date) -> list[dt.date]:
    return [first_day + dt.timedelta(days=i) for i in range((last_day - first_day).days + 1)]


def window_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The day's window: its midnight to the next (KST); windows overlap at midnight."""
    return kst_day_start(day), kst_day_start(day + dt.timedelta(days=1))


def closed_reason(finished_at: dt.datetime, window_end: dt.datetime) -> str | None:
    """Why a whole read finishing at `finished_at` is not yet final, or None when it is."""
    if finished_at < window_end + SETTLE_MARGIN:
        return "window not yet closed (contains now or ended less than 30 minutes ago)"
    return None


def synced_days(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> list[dt.date]:
    """The days from first to last that are synced (see the module docstring), in order."""
    rows = conn.execute(sql("synced_days"), {"first": first, "last": last}).fetchall()
    return [row[0] for row in rows]


def plan_incremental(
    warehouse, start_date: dt.date, today: dt.date, lookback_days: int = DEFAULT_LOOKBACK_DAYS
) -> tuple[dt.date, dt.date]:
    """First and last day for an incremental run: from the earliest day not yet synced, or
    the last synced day minus the lookback, whichever is earlier, through today."""
    with warehouse.connect() as conn:
        complete = set(synced_days(conn, start_date, today))
    if not complete:
        return start_date, today
    first_gap = next((d for d in days_between(start_date, today) if d not in complete), today)
    first = min(first_gap, max(complete) - dt.timedelta(days=lookback_days))
    return max(first, start_date), today

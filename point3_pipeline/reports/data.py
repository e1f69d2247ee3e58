"""A period's figures, read from the warehouse: coverage, the filing movements and row streams.

Every statement lives in sql/reports/ with its values bound. The tax and VAT workbooks read
one source, payment_tax_split, through the period's `filing_movements` temp table
(`prepare_filing`): a sale on its payment day, a cancellation on the day it belongs to. Sums of
won are HUGEINT in SQL and Python ints on the way out; counts are BIGINT.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

import duckdb

from point3_pipeline.periods import Period
from point3_pipeline.warehouse import WarehouseError

BATCH = 5000
WEEKDAYS_KO = "월화수목금토일"


@functools.cache
def report_sql(name: str) -> str:
    return resources.files("point3_pipeline.sql").joinpath("reports", f"{name}.sql").read_text(encoding="utf-8")


def day_ko(day: dt.date) -> str:
    return f"{day.month}월 {day.day}일"


@dataclass(frozen=True)
class Coverage:
    """Which days of the period rest on a complete sync taken after the day was over."""

    period: Period
    synced: dict[dt.date, dt.datetime]  # day -> its last complete sync
    newest_sync_at: dt.datetime | None  # newest sync of any of the period's days, complete or not
    today: dt.date

    @property
    def days_in_period(self) -> int:
        return len(self.period.days)

    @property
    def days_synced(self) -> int:
        return len(self.synced)

    @property
    def missing(self) -> list[dt.date]:
        return [d for d in self.period.days if d not in self.synced]

    @property
    def is_final(self) -> bool:
        return not self.missing

    @property
    def as_of(self) -> dt.datetime | None:
        """Every figure is at least this fresh: the oldest complete sync among synced days."""
        return min(self.synced.values()) if self.synced else None

    def warning_ko(self) -> str | None:
        missing = self.missing
        if not missing:
            return None
        past = [d for d in missing if d < self.today]
        later = len(missing) - len(past)
        parts = []
        if past:
            listed = ", ".join(day_ko(d) for d in past[:10]) + (" 외" if len(past) > 10 else "")
            parts.append(f"{len(past)}일({listed})이 동기화되지 않았습니다")
        if later:
            parts.append(f"{later}일은 아직 끝나지 않았거나 끝난 뒤 동기화되지 않았습니다")
        return "주의: " + ", ".join(parts) + ". 이 보고서는 최종본이 아닙니다."

    def warning_en(self) -> str | None:
        if self.is_final:
            return None
        return (
            f"Warning: {len(self.missing)} of {self.days_in_period} days have no complete sync taken "
            "after the day ended; this report is not final."
        )


def coverage(conn: duckdb.DuckDBPyConnection, period: Period, today: dt.date) -> Coverage:
    # A day counts as synced by the one definition, the sync_coverage view: a whole read
    # finished at least the settle margin after the day was over (one taken at noon cannot
    # know the afternoon's payments).
    rows = conn.execute(
        "SELECT window_date, last_complete_sync_at, last_sync_at FROM sync_coverage WHERE window_date BETWEEN ? AND ?",
        [period.first, period.last],
    ).fetchall()
    synced = {day: complete for day, complete, _ in rows if complete is not None}
    newest = max((latest for _, _, latest in rows), default=None)
    return Coverage(period, synced, newest, today)


def _bounds(period: Period) -> dict[str, dt.date]:
    return {"first": period.first, "last": period.last}


def month_totals(conn: duckdb.DuckDBPyConnection, period: Period) -> dict[str, int]:
    """The period's payments by payment day (gross, cancelled now, net) and the earlier
    payments' cancellations seen happening in it: the reconciliation workbook's figures."""
    cursor = conn.execute(report_sql("payment_month_totals"), _bounds(period))
    names = [d[0] for d in cursor.description]
    return dict(zip(names, (int(v) for v in cursor.fetchone())))


def prepare_filing(conn: duckdb.DuckDBPyConnection, period: Period) -> None:
    """Build the period's `filing_movements` and `filing_businesses` temp tables on `conn`."""
    built = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'payment_tax_split' AND table_type = 'BASE TABLE'"
    ).fetchone()[0]
    if not built:
        raise WarehouseError(
            "the warehouse has no tax split (payment_tax_split) yet: run `point3 sync` (it rebuilds the derived "
            "tables) before rendering a tax workbook."
        )
    conn.execute(report_sql("filing_movements"), _bounds(period))
    conn.execute(report_sql("filing_businesses"))


def rows_of(conn: duckdb.DuckDBPyConnection, name: str, params: dict | None = None) -> list[dict]:
    """A small result of the named statement as dicts (column name -> value)."""
    cursor = conn.execute(report_sql(name), params or {})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def filing_period_rows(conn: duckdb.DuckDBPyConnection, name: str, period: Period) -> list[dict]:
    return rows_of(conn, name, _bounds(period))


def declared_business_count(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.execute("SELECT count(DISTINCT business_id) FROM business_declarations").fetchone()[0]


def merchant(conn: duckdb.DuckDBPyConnection, period: Period) -> tuple[str | None, str | None]:
    """The merchant's nicknames and point3 clientIdentification, as the period's payments give them."""
    rows = conn.execute(
        """
        SELECT client_nickname, client_identification, count(*) AS n
        FROM payments WHERE payment_date BETWEEN ? AND ?
        GROUP BY ALL ORDER BY n DESC, client_nickname, client_identification
        """,
        [period.first, period.last],
    ).fetchall()
    if not rows:
        return None, None
    nicknames = list(dict.fromkeys(r[0] for r in rows if r[0]))
    identifications = list(dict.fromkeys(r[1] for r in rows if r[1]))
    return ", ".join(nicknames) or None, ", ".join(identifications) or None


def stream(conn: duckdb.DuckDBPyConnection, sql: str, params: list | dict) -> Iterator[tuple]:
    """Rows of a query in batches, so a period of payments never sits in memory at once."""
    cursor = conn.execute(sql, params)
    while batch := cursor.fetchmany(BATCH):
        yield from batch

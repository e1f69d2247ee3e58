"""The month's figures, read from the warehouse: coverage, totals and row streams.

A payment belongs to the month of its KST payment_date. Gross figures count every payment
of the month; cancelled ones (isCanceled now true) are also summed apart and net = gross -
cancelled, as in culture_vat_daily. Sums of won are HUGEINT in SQL (DuckDB's sum of a BIGINT,
so no month overflows) and Python ints on the way out; counts are BIGINT.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

from point3_pipeline.periods import Period

BATCH = 5000
WEEKDAYS_KO = "월화수목금토일"


def day_ko(day: dt.date) -> str:
    return f"{day.month}월 {day.day}일"


@dataclass(frozen=True)
class Coverage:
    """Which days of the month rest on a complete sync taken after the day was over."""

    period: Period
    synced: dict[dt.date, dt.datetime]  # day -> its last complete sync
    newest_sync_at: dt.datetime | None  # newest sync of any of the month's days, complete or not
    today: dt.date

    @property
    def days_in_month(self) -> int:
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
            f"Warning: {len(self.missing)} of {self.days_in_month} days have no complete sync taken "
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


SUM_KEYS = (
    "payment_count", "total_charge", "supply_value", "vat",
    "canceled_count", "canceled_total", "canceled_supply_value", "canceled_vat",
    "net_count", "net_total", "net_supply_value", "net_vat",
)  # fmt: skip

def _sums(counted: str = "*") -> str:
    """The SUM_KEYS aggregates over payment rows; `counted` is what count() counts (a column
    of the outer side's partner in a LEFT JOIN, so empty groups count 0)."""
    return f"""
    CAST(count({counted}) AS BIGINT),
    coalesce(sum(total_charge), 0),
    coalesce(sum(tax_free_amount), 0),
    coalesce(sum(vat), 0),
    CAST(count({counted}) FILTER (WHERE is_canceled) AS BIGINT),
    coalesce(sum(total_charge) FILTER (WHERE is_canceled), 0),
    coalesce(sum(tax_free_amount) FILTER (WHERE is_canceled), 0),
    coalesce(sum(vat) FILTER (WHERE is_canceled), 0),
    CAST(count({counted}) FILTER (WHERE NOT is_canceled) AS BIGINT),
    coalesce(sum(total_charge) FILTER (WHERE NOT is_canceled), 0),
    coalesce(sum(tax_free_amount) FILTER (WHERE NOT is_canceled), 0),
    coalesce(sum(vat) FILTER (WHERE NOT is_canceled), 0)
    """

def month_totals(conn: duckdb.DuckDBPyConnection, period: Period) -> dict[str, int]:
    row = conn.execute(
        f"SELECT {_sums()} FROM payments WHERE payment_date BETWEEN ? AND ?", [period.first, period.last]
    ).fetchone()
    totals = dict(zip(SUM_KEYS, row))
    earlier = conn.execute(
        f"""
        SELECT CAST(count(*) AS BIGINT), coalesce(sum(total_charge), 0)
        FROM ({EARLIER_CANCELLATIONS})
        """,
        [period.first, period.last, period.first],
    ).fetchone()
    totals["earlier_canceled_count"], totals["earlier_canceled_total"] = earlier
    return totals


# Payments of earlier months whose cancellation was detected this month (still cancelled).
# A payment already cancelled the first time the pipeline saw it (a first backfill) was not
# cancelled this month: its own month's report lists it as cancelled.
EARLIER_CANCELLATIONS = """
    SELECT c.signature, c.payment_date, c.accepted_at, c.total_charge, c.tax_free_amount, c.vat,
           c.culture_expense_type, c.order_id_from_client, c.purchasing_product_name,
           c.detected_at, c.canceled_after, c.first_seen_canceled
    FROM cancellations AS c
    WHERE c.detected_date BETWEEN ? AND ? AND c.payment_date < ? AND c.is_canceled_now
      AND NOT c.first_seen_canceled
"""


def per_culture_type(conn: duckdb.DuckDBPyConnection, period: Period) -> list[tuple]:
    """(code, name_ko, deduction_group, *SUM_KEYS) for every code, zeros included, in sort order."""
    return conn.execute(
        f"""
        WITH p AS (
            SELECT coalesce(culture_expense_type, 'unknown') AS code, total_charge, tax_free_amount, vat, is_canceled
            FROM payments WHERE payment_date BETWEEN ? AND ?
        )
        SELECT t.culture_expense_type, t.name_ko, t.deduction_group, {_sums("p.code")}
        FROM culture_expense_types AS t
        LEFT JOIN p ON p.code = t.culture_expense_type
        GROUP BY t.culture_expense_type, t.name_ko, t.deduction_group, t.sort_order
        ORDER BY t.sort_order
        """,
        [period.first, period.last],
    ).fetchall()


def per_day(conn: duckdb.DuckDBPyConnection, period: Period) -> list[tuple]:
    """(day, *SUM_KEYS) for every day of the month, zeros where none."""
    return conn.execute(
        f"""
        WITH days AS (
            SELECT CAST(d AS DATE) AS day FROM range(CAST(? AS DATE), CAST(? AS DATE) + 1, INTERVAL 1 DAY) AS r(d)
        ),
        p AS (SELECT * FROM payments WHERE payment_date BETWEEN ? AND ?)
        SELECT days.day, {_sums("p.signature")}
        FROM days LEFT JOIN p ON p.payment_date = days.day
        GROUP BY days.day ORDER BY days.day
        """,
        [period.first, period.last, period.first, period.last],
    ).fetchall()


def merchant(conn: duckdb.DuckDBPyConnection, period: Period) -> tuple[str | None, str | None]:
    """The merchant's nickname and point3 clientIdentification, as the month's payments give them."""
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


def stream(conn: duckdb.DuckDBPyConnection, sql: str, params: list) -> Iterator[tuple]:
    """Rows of a query in batches, so a month of payments never sits in memory at once."""
    cursor = conn.execute(sql, params)
    while batch := cursor.fetchmany(BATCH):
        yield from batch

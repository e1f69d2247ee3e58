"""Read-only figures over the warehouse: counts and totals for Dagster's metadata, findings
for its asset checks and for `point3 status`. Plain functions over a DuckDB connection."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from point3_pipeline.periods import Period
from point3_pipeline.reports.data import coverage
from point3_pipeline.reports.versions import PreviousVersion, all_versions, latest_version, period_of


def _row(conn: duckdb.DuckDBPyConnection, sql: str, names: tuple[str, ...]) -> dict[str, int]:
    return dict(zip(names, (int(v or 0) for v in conn.execute(sql).fetchone())))


def cancellation_totals(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return _row(
        conn,
        "SELECT count(*), count(*) FILTER (WHERE is_canceled_now), "
        "coalesce(sum(total_charge) FILTER (WHERE is_canceled_now), 0), count(*) FILTER (WHERE is_anomaly), "
        "count(*) FILTER (WHERE NOT first_seen_canceled AND canceled_after IS NOT NULL) FROM cancellations",
        ("rows", "canceled_now", "canceled_total", "anomalies", "canceled_after_seen_active"),
    )


def culture_vat_totals(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return _row(
        conn,
        "SELECT count(*), count(DISTINCT payment_date), sum(payment_count), sum(total_charge), sum(vat), "
        "sum(canceled_total), sum(net_total), sum(net_vat) FROM culture_vat_daily",
        ("rows", "days", "payment_count", "total_charge", "vat", "canceled_total", "net_total", "net_vat"),
    )



def duplicate_signatures(conn: duckdb.DuckDBPyConnection, table: str) -> tuple[int, list[tuple[str, int]]]:
    """How many signatures appear more than once in `table` (payments or cancellations), and some of them."""
    if table not in ("payments", "cancellations"):
        raise ValueError(f"no signature table {table!r}")
    dupes = f"SELECT signature, count(*) AS n FROM {table} GROUP BY signature HAVING count(*) > 1"
    count = conn.execute(f"SELECT count(*) FROM ({dupes})").fetchone()[0]
    return count, conn.execute(f"{dupes} ORDER BY n DESC, signature LIMIT 20").fetchall()


def rejected_reasons(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    return conn.execute(
        "SELECT reason, CAST(sum(copies) AS BIGINT) AS n FROM rejected_records GROUP BY reason ORDER BY n DESC, reason"
    ).fetchall()


def vat_rule_violations(conn: duckdb.DuckDBPyConnection) -> tuple[int, list[tuple]]:
    count = conn.execute("SELECT count(*) FROM vat_rule_violations").fetchone()[0]
    sample = conn.execute(
        "SELECT signature, payment_date, total_charge, tax_free_amount, vat FROM vat_rule_violations "
        "ORDER BY payment_date, signature LIMIT 10"
    ).fetchall()
    return count, sample


def latest_reports(conn: duckdb.DuckDBPyConnection, kind: str) -> dict[Period, PreviousVersion]:
    """The latest version of each period's `kind` report, oldest period first."""
    periods = sorted({period_of(row[1], row[8]) for row in all_versions(conn) if row[0] == kind})
    return {period: latest_version(conn, kind, period) for period in periods}


@dataclass(frozen=True)
class ReportFinality:
    months_reported: int
    final_but_days_missing: list[str]  # wrong: a workbook calling itself final over gaps
    not_final: list[str]  # honest: a workbook that says it is not final yet


def report_finality(conn: duckdb.DuckDBPyConnection, kind: str, today: dt.date) -> ReportFinality:
    """Whether each month's latest `kind` workbook may call itself final: every day of the
    month must have a complete sync."""
    latest = latest_reports(conn, kind)
    wrong, not_final = [], []
    for month, version in latest.items():
        missing = coverage(conn, month, today).missing
        if missing and version.is_final:
            wrong.append(f"{month.label} v{version.version} says final but misses {', '.join(map(str, missing))}")
        elif missing:
            not_final.append(f"{month.label} v{version.version}: {len(month.days) - len(missing)} / {len(month.days)} days synced")
    return ReportFinality(len(latest), wrong, not_final)

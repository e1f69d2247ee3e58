"""Read-only figures over the warehouse: counts and totals for Dagster's metadata, findings
for its asset checks and for `point3 status`. Plain functions over a DuckDB connection."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from point3_pipeline.businesses import format_registration_number
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
    """culture_vat_daily's net figures: culture-expense codes over the tax split."""
    return _row(
        conn,
        "SELECT count(*), count(DISTINCT payment_date), sum(payment_count), sum(net_total), sum(net_taxable_supply), "
        "sum(net_vat), sum(net_exempt_amount), sum(net_unclassified_amount) FROM culture_vat_daily",
        ("rows", "days", "payment_count", "net_total", "net_taxable_supply", "net_vat", "net_exempt_amount",
         "net_unclassified_amount"),
    )


def tax_split_totals(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """The split over every payment: how many of each class, and the filing view's net sums
    (sales − the cancellations that belong to their days) from tax_filing_daily."""
    counts = _row(
        conn,
        "SELECT count(*), count(*) FILTER (WHERE tax_class = 'taxable'), count(*) FILTER (WHERE tax_class = 'mixed'), "
        "count(*) FILTER (WHERE tax_class = 'exempt'), count(*) FILTER (WHERE tax_class = 'unclassified'), "
        "count(*) FILTER (WHERE tax_class = 'impossible_vat'), count(*) FILTER (WHERE class_source = 'person'), "
        "count(*) FILTER (WHERE declaration_conflict IS NOT NULL), count(DISTINCT coalesce(business_id, business_name)) "
        "FROM payment_tax_split",
        ("payments", "taxable", "mixed", "exempt", "unclassified", "impossible_vat", "classified_by_person",
         "declaration_conflicts", "businesses"),
    )
    sums = _row(
        conn,
        "SELECT sum(net_taxable_supply), sum(net_vat), sum(net_exempt_amount), sum(net_unclassified_amount), "
        "sum(net_total) FROM tax_filing_daily",
        ("net_taxable_supply", "net_vat", "net_exempt_amount", "net_unclassified_amount", "net_total"),
    )
    return counts | sums


@dataclass(frozen=True)
class BusinessSplit:
    """One business's filing figures for a period (tax_filing_daily: sales − cancellations
    that belong to the period)."""

    business: str  # display name, with its 사업자등록번호 when declared
    taxable_supply: int
    vat: int
    exempt_amount: int
    unclassified_amount: int
    unclassified_count: int
    impossible_vat_count: int


_PERIOD_SPLIT = """
    SELECT business_id, any_value(business_name), any_value(registration_number),
           sum(net_taxable_supply), sum(net_vat), sum(net_exempt_amount), sum(net_unclassified_amount),
           CAST(coalesce(sum(payment_count) FILTER (WHERE tax_class = 'unclassified'), 0) AS BIGINT),
           CAST(coalesce(sum(payment_count) FILTER (WHERE tax_class = 'impossible_vat'), 0) AS BIGINT)
    FROM tax_filing_daily
    WHERE filing_date BETWEEN ? AND ?
    GROUP BY business_id, CASE WHEN business_id IS NULL THEN business_name END
    ORDER BY business_id NULLS LAST, any_value(business_name)
"""


def period_split(conn: duckdb.DuckDBPyConnection, period: Period) -> list[BusinessSplit]:
    """Per business, the period's taxable supply, VAT, exempt and unclassified amounts and its
    unclassified and impossible-VAT payments; businesses with no line in the period are left out."""
    rows = conn.execute(_PERIOD_SPLIT, [period.first, period.last]).fetchall()
    return [
        BusinessSplit(
            f"{name} ({format_registration_number(number)})" if business_id else f"{name or '(no clientNickname)'} (undeclared)",
            *(int(v) for v in figures),
        )
        for business_id, name, number, *figures in rows
    ]


def period_split_totals(conn: duckdb.DuckDBPyConnection, period: Period) -> dict[str, int]:
    """The period's filing figures over every business (the sum of period_split)."""
    split = period_split(conn, period)
    return {
        name: sum(getattr(b, name) for b in split)
        for name in ("taxable_supply", "vat", "exempt_amount", "unclassified_amount", "unclassified_count",
                     "impossible_vat_count")
    }


# The payments an operator must look at, by finding (bound as the parameter `finding`).
FINDINGS = ("unclassified", "impossible_vat", "declaration_conflict")
_FINDING = """
    WITH found AS (
        SELECT signature, payment_date, business_name, total_charge, tax_free_amount, recorded_vat,
               coalesce(declaration_conflict, tax_class) AS what
        FROM payment_tax_split
        WHERE CASE $finding
            WHEN 'unclassified' THEN tax_class = 'unclassified'
            WHEN 'impossible_vat' THEN tax_class = 'impossible_vat'
            WHEN 'declaration_conflict' THEN declaration_conflict IS NOT NULL
        END
    )
"""


def split_findings(conn: duckdb.DuckDBPyConnection, finding: str) -> tuple[int, list[tuple]]:
    """How many payments have `finding` (one of FINDINGS), and the first ten of them:
    (signature, payment_date, business_name, total_charge, tax_free_amount, vat, what)."""
    if finding not in FINDINGS:
        raise ValueError(f"no finding {finding!r}; one of {', '.join(FINDINGS)}")
    params = {"finding": finding}
    count = conn.execute(_FINDING + "SELECT count(*) FROM found", params).fetchone()[0]
    sample = conn.execute(_FINDING + "SELECT * FROM found ORDER BY payment_date, signature LIMIT 10", params).fetchall()
    return count, sample


def unclassified_count(conn: duckdb.DuckDBPyConnection, period: Period) -> int:
    """Unclassified sales and cancellations in the period's filing figures: until a person
    classifies each, the period cannot be final."""
    return conn.execute(
        "SELECT CAST(coalesce(sum(payment_count + canceled_count), 0) AS BIGINT) FROM tax_filing_daily "
        "WHERE tax_class = 'unclassified' AND filing_date BETWEEN ? AND ?",
        [period.first, period.last],
    ).fetchone()[0]



def duplicate_signatures(conn: duckdb.DuckDBPyConnection, table: str) -> tuple[int, list[tuple[str, int]]]:
    """How many signatures appear more than once in `table` (payments or cancellations), and some of them."""
    if table not in ("payments", "cancellations"):
        raise ValueError(f"no signature table {table!r}")
    rows = conn.execute(
        "SELECT signature, count(*) AS n, count(*) OVER () AS signatures FROM query_table(?) "
        "GROUP BY signature HAVING count(*) > 1 ORDER BY n DESC, signature LIMIT 20",
        [table],
    ).fetchall()
    return (rows[0][2] if rows else 0), [(signature, n) for signature, n, _ in rows]


def rejected_reasons(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    return conn.execute(
        "SELECT reason, CAST(sum(copies) AS BIGINT) AS n FROM rejected_records GROUP BY reason ORDER BY n DESC, reason"
    ).fetchall()


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

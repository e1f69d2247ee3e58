"""Read-only figures the UI shows: counts and totals for metadata, findings for the checks.

Plain functions over a DuckDB connection (no Dagster here), so tests and the library's own
status command could use them as well.
"""

import duckdb


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
        "SELECT reason, count(*) FROM rejected_records GROUP BY reason ORDER BY count(*) DESC, reason"
    ).fetchall()


def vat_rule_violations(conn: duckdb.DuckDBPyConnection) -> tuple[int, list[tuple]]:
    count = conn.execute("SELECT count(*) FROM vat_rule_violations").fetchone()[0]
    sample = conn.execute(
        "SELECT signature, payment_date, total_charge, tax_free_amount, vat FROM vat_rule_violations "
        "ORDER BY payment_date, signature LIMIT 10"
    ).fetchall()
    return count, sample

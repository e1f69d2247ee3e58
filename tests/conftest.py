"""Shared fixtures: a sandbox on loopback, a client for it, a warehouse in tmp_path."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import duckdb
import pytest

from point3_pipeline.client import Point3Client
from point3_pipeline.models import KST
from point3_pipeline.retry import RetryPolicy
from point3_pipeline.sandbox import SandboxConfig, SandboxServer
from point3_pipeline.warehouse import Warehouse, migrations

# A fixed "now" so every test sees the same history: mid-afternoon KST, mid-month.
SANDBOX_NOW = dt.datetime(2026, 3, 18, 15, 0, 0, tzinfo=KST)
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.0, max_delay=0.0, jitter=0.0)


def make_sandbox(days: int = 20, per_day: int = 30, seed: int = 7, **kwargs) -> SandboxServer:
    return SandboxServer(SandboxConfig(seed=seed, days=days, per_day=per_day, start_at=SANDBOX_NOW, **kwargs))


@pytest.fixture
def sandbox():
    with make_sandbox() as server:
        yield server


@pytest.fixture
def client(sandbox):
    with Point3Client(sandbox.url, sandbox.key, retry=FAST_RETRY, page_size=30) as c:
        yield c


@pytest.fixture
def warehouse(tmp_path):
    return Warehouse(tmp_path / "point3.duckdb")


def sandbox_days(server: SandboxServer) -> list[tuple[dt.date, dict]]:
    """The sandbox's own payments with the KST day each was accepted (doc-shaped records carry
    no timestamp, so the day comes from the sandbox's store, not from the record)."""
    now = server.state.clock.timestamp()
    return [
        (dt.datetime.fromtimestamp(entry.epoch, KST).date(), entry.to_dict(now))
        for entry in server.state.store.visible(now)
    ]


def sandbox_first_day(server: SandboxServer) -> dt.date:
    return min(day for day, _ in sandbox_days(server))


def rule_split(total: int, tax_free: int, vat: int) -> tuple[int, int, int, int]:
    """korean-vat.md's split rule, written apart from the SQL: (taxable_supply, vat, exempt, unclassified)."""
    if vat + tax_free != total:
        return 0, 0, 0, total
    if vat == 0 and tax_free == total:
        return 0, 0, total, 0
    remainder = total - 11 * vat
    if remainder > 5:
        return 10 * vat, vat, remainder, 0
    return total - vat, vat, 0, 0  # taxable, or impossible VAT (r < -5) with the same amounts


def expected_totals(server: SandboxServer) -> dict[tuple[dt.date, str], tuple[int, ...]]:
    """Independent of the warehouse: (day, culture type) -> (count, total, taxable supply, VAT,
    exempt, unclassified, cancelled total), by the rule (no businesses declared)."""
    totals: dict[tuple[dt.date, str], list[int]] = defaultdict(lambda: [0] * 7)
    for day, order in sandbox_days(server):
        key = (day, order.get("cultureExpenseType") or "unknown")
        row = totals[key]
        row[0] += 1
        row[1] += order["totalCharge"]
        for i, amount in enumerate(rule_split(order["totalCharge"], order["taxFreeAmount"], order["vat"]), start=2):
            row[i] += amount
        row[6] += order["totalCharge"] if order["isCanceled"] else 0
    return {k: tuple(v) for k, v in totals.items()}


def warehouse_totals(warehouse: Warehouse) -> dict[tuple[dt.date, str], tuple[int, ...]]:
    with warehouse.connect(read_only=True) as conn:
        rows = conn.execute(
            "SELECT payment_date, culture_expense_type, payment_count, total_charge, taxable_supply, vat, exempt_amount, "
            "unclassified_amount, canceled_total FROM culture_vat_daily"
        ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def warehouse_state(warehouse: Warehouse) -> list[tuple]:
    """Everything a re-run must reproduce (not the sync times)."""
    with warehouse.connect(read_only=True) as conn:
        return conn.execute(
            "SELECT signature, payment_date, accepted_at, total_charge, tax_free_amount, vat, culture_expense_type, "
            "is_canceled, purchasing_product_name, record_hash FROM payments ORDER BY signature"
        ).fetchall()


def warehouse_before(path, version: int) -> duckdb.DuckDBPyConnection:
    """A warehouse file with the migrations before `version` applied, as an older
    point3-pipeline left it; the caller fills it, closes it and opens it with Warehouse."""
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                 "applied_at TIMESTAMPTZ NOT NULL)")
    for migration in migrations():
        if migration.version < version:
            conn.execute(migration.sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [migration.version, migration.name])
    return conn

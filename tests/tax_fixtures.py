"""Shared by the tax split and export tests: payments inserted straight into a warehouse, and
a frozen sandbox synced for real, refreshed by Warehouse.refresh_derived with the businesses given."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from point3_pipeline import sync
from point3_pipeline.businesses import Business
from point3_pipeline.client import Point3Client
from point3_pipeline.models import KST
from point3_pipeline.warehouse import Warehouse
from tests.conftest import FAST_RETRY, make_sandbox, sandbox_first_day

DEMO_BUSINESSES = Path(__file__).resolve().parent.parent / "docs" / "demo-businesses.toml"
DAY = dt.date(2026, 3, 10)


def shop(sales: str, *, nickname: str = "가게", identification: str | None = None, id_: str = "shop",
         number: str = "1248100998") -> Business:
    return Business(id_, f"상점 {id_}", number, "일반과세자", sales, (nickname,), identification)


def insert_payment(conn, signature: str, total: int, tax_free: int, vat: int, *, nickname: str = "가게",
                   identification: str = "ident01", method: str | None = "CARD", day: dt.date = DAY) -> None:
    accepted = dt.datetime.combine(day, dt.time(12), KST)
    conn.execute(
        "INSERT INTO payments (signature, payment_date, accepted_at, total_charge, tax_free_amount, vat, "
        "payment_method_type, is_canceled, client_nickname, client_identification, first_seen_at, last_seen_at, "
        "last_seen_active_at, first_seen_run_id, last_seen_run_id, record_hash, raw_record) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, false, ?, ?, ?, ?, ?, 1, 1, 'h', '{}')",
        [signature, day, accepted, total, tax_free, vat, method, nickname, identification, accepted, accepted, accepted],
    )


def refresh(warehouse: Warehouse, businesses=()) -> None:
    Warehouse(warehouse.path, businesses=businesses).refresh_derived()


def split_rows(warehouse: Warehouse) -> dict[str, dict]:
    with warehouse.connect(read_only=True) as conn:
        cursor = conn.execute("SELECT * FROM payment_tax_split")
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}


def split_of(tmp_path, total, tax_free, vat, businesses=(), **payment) -> dict:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", total, tax_free, vat, **payment)
    refresh(warehouse, businesses)
    return split_rows(warehouse)["P1"]


def amounts(row: dict) -> tuple:
    return row["tax_class"], row["taxable_supply"], row["vat"], row["exempt_amount"], row["unclassified_amount"]


@pytest.fixture
def frozen_sandbox():
    with make_sandbox(days=20, per_day=20, speed=0) as server:
        yield server


def sync_days(server, warehouse, first, last=None):
    with Point3Client(server.url, server.key, retry=FAST_RETRY, page_size=100) as client:
        result = sync.sync_range(client, warehouse, first, last or first, clock=server.state.clock.now)
    assert result.status == "succeeded"


def synced(server, tmp_path, businesses=()) -> Warehouse:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    sync_days(server, warehouse, sandbox_first_day(server), server.state.clock.now().date())
    refresh(warehouse, businesses)
    return warehouse

"""The derived tables' one order: the tax split is rebuilt with cancellations, in one transaction,
with the businesses of POINT3_BUSINESSES (or those given), and all or nothing."""

from __future__ import annotations

import duckdb
import pytest

from point3_pipeline import config
from point3_pipeline.businesses import load_businesses
from point3_pipeline.tax_split import refresh_tax_split
from point3_pipeline.warehouse import DERIVED_TABLES, Warehouse, WarehouseError, refresh_derived, with_readers
from tests.tax_fixtures import DEMO_BUSINESSES, insert_payment, shop


@pytest.mark.parametrize(("asked", "rebuilt"), [
    (("cancellations",), ("cancellations", "payment_tax_split", "tax_filing_daily", "culture_vat_daily")),
    (("payment_tax_split",), ("payment_tax_split", "tax_filing_daily", "culture_vat_daily")),
    (("culture_vat_daily",), ("culture_vat_daily",)),
    (("settlement_balance_history",), ("settlement_balance_history",)),
    (("culture_vat_daily", "cancellations"), ("cancellations", "payment_tax_split", "tax_filing_daily", "culture_vat_daily")),
    (DERIVED_TABLES, DERIVED_TABLES),
])  # fmt: skip
def test_a_table_is_rebuilt_with_its_readers_in_build_order(asked, rebuilt):
    assert with_readers(asked) == rebuilt


def test_an_unknown_table_is_refused():
    with pytest.raises(ValueError, match="not derived tables: \\['payments'\\]"):
        with_readers(["payments"])


def _classes(warehouse: Warehouse) -> dict[str, tuple]:
    with warehouse.connect(read_only=True) as conn:
        return {s: (c, b, k) for s, c, b, k in conn.execute(
            "SELECT signature, tax_class, business_id, is_canceled FROM payment_tax_split").fetchall()}


def test_refreshing_cancellations_rebuilds_the_split_with_the_businesses_given(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb", businesses=[shop("all_exempt")])
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 11000, 10000, 1000)
    counts = warehouse.refresh_derived("cancellations")
    assert set(counts) == {"cancellations", "payment_tax_split", "tax_filing_daily", "culture_vat_daily"}
    assert _classes(warehouse) == {"P1": ("exempt", "shop", False)}
    with warehouse.connect() as conn:  # a cancellation lands: the next cancellations refresh carries it into the split
        conn.execute("UPDATE payments SET is_canceled = true WHERE signature = 'P1'")
        conn.execute("INSERT INTO payment_events (signature, run_id, observed_at, event, is_canceled, previous_active_at) "
                     "VALUES ('P1', 1, now(), 'canceled', true, now() - INTERVAL 1 HOUR)")
    warehouse.refresh_derived("cancellations")
    assert _classes(warehouse) == {"P1": ("exempt", "shop", True)}


def test_without_businesses_given_the_warehouse_reads_points3_businesses(tmp_path, monkeypatch):
    monkeypatch.setenv("POINT3_BUSINESSES", str(DEMO_BUSINESSES))
    warehouse = Warehouse(tmp_path / "w.duckdb")
    assert warehouse.businesses == load_businesses(DEMO_BUSINESSES) == config.businesses()
    warehouse.refresh_derived()
    with warehouse.connect(read_only=True) as conn:
        declared = conn.execute("SELECT count(DISTINCT business_id) FROM business_declarations").fetchone()[0]
    assert declared == len(load_businesses(DEMO_BUSINESSES)) > 1
    monkeypatch.delenv("POINT3_BUSINESSES")
    assert Warehouse(tmp_path / "w.duckdb").businesses == []  # unset: every payment by the rule


def test_a_bad_businesses_file_stops_the_refresh_before_any_write(tmp_path, monkeypatch):
    bad = tmp_path / "b.toml"
    bad.write_text("[[business]]\nid = 1\n", encoding="utf-8")
    monkeypatch.setenv("POINT3_BUSINESSES", str(bad))
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with pytest.raises(config.ConfigError, match="id must be a non-empty string"):
        warehouse.refresh_derived()
    assert not warehouse.path.exists()


def test_a_migrations_refresh_keeps_the_declarations(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb", businesses=[shop("all_taxable")])
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 15000, 14909, 91)  # mixed by the rule
    warehouse.refresh_derived()
    with warehouse.connect() as conn:
        refresh_derived(conn, DERIVED_TABLES)  # no businesses: what a migration's refresh does
    assert _classes(warehouse)["P1"][:2] == ("taxable", "shop")


def test_a_split_that_cannot_be_rebuilt_leaves_every_derived_table_as_it_was(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb", businesses=[shop("by_vat")])
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 11000, 10000, 1000)
    warehouse.refresh_derived()
    with warehouse.connect() as conn:
        insert_payment(conn, "P2", 11000, 10000, 1000)
        conn.execute("DROP TABLE tax_classes")  # what payment_tax_split joins its labels from
    with pytest.raises(WarehouseError, match="could not rebuild the derived table payment_tax_split .*left as it was"):
        Warehouse(warehouse.path, businesses=[]).refresh_derived("cancellations")
    with warehouse.connect(read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM payment_tax_split").fetchone()[0] == 1
        assert conn.execute("SELECT sum(payment_count) FROM culture_vat_daily").fetchone()[0] == 1
        # the declarations replaced in the failed transaction are back too
        assert conn.execute("SELECT count(*) FROM business_declarations").fetchone()[0] == 1


def test_refresh_tax_split_in_a_callers_transaction_builds_the_same_rows(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb", businesses=[shop("all_exempt")])
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 11000, 10000, 1000)
        insert_payment(conn, "P2", 12000, 0, 0)
    warehouse.refresh_derived()
    before = _classes(warehouse)
    with warehouse.connect() as conn:
        conn.execute("BEGIN TRANSACTION")
        counts = refresh_tax_split(conn, [shop("all_exempt")])
        conn.execute("COMMIT")
    assert counts == {"payment_tax_split": 2, "tax_filing_daily": 2} and _classes(warehouse) == before
    assert before == {"P1": ("exempt", "shop", False), "P2": ("unclassified", "shop", False)}


def test_the_published_copy_opens_with_the_split(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb", businesses=[])
    with warehouse.connect() as conn:
        insert_payment(conn, "P1", 11000, 10000, 1000)
    warehouse.refresh_derived()
    with duckdb.connect(str(warehouse.publish()), read_only=True) as conn:
        assert conn.execute("SELECT tax_class, taxable_supply FROM payment_tax_split").fetchall() == [("taxable", 10000)]

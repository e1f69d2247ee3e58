"""The combined catalog: union views with merchant_id over every published copy, rebuilt only
when the merchants or their schema change, replaced whole or not at all."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import shutil
from pathlib import Path

import duckdb
import pytest

from point3_pipeline import catalog
from point3_pipeline.client import Point3Client
from point3_pipeline.merchants import Merchant
from point3_pipeline.sync import sync_range
from point3_pipeline.warehouse import Warehouse
from tests.conftest import FAST_RETRY, SANDBOX_NOW, make_sandbox


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    """Two merchants' published copies, synced from sandboxes with different seeds."""
    folder = tmp_path_factory.mktemp("published")
    copies = {}
    for id_, seed in (("arthall", 21), ("violet", 22)):
        with make_sandbox(days=3, per_day=6 if seed == 21 else 11, seed=seed, speed=0) as sandbox:
            warehouse = Warehouse(folder / id_ / "point3.duckdb")
            with Point3Client(sandbox.url, sandbox.key, retry=FAST_RETRY, page_size=30) as client:
                sync_range(client, warehouse, (SANDBOX_NOW - dt.timedelta(days=3)).date(), SANDBOX_NOW.date(),
                           clock=lambda: SANDBOX_NOW, refresh_derived=True)
            copies[id_] = warehouse.publish()
    return copies


def _merchant(root: Path, id_: str, name: str | None = None) -> Merchant:
    folder = root / id_
    return Merchant(id=id_, name=name or id_, api_url="http://127.0.0.1:9", start_date=dt.date(2026, 1, 1),
                    warehouse_path=folder / "warehouse" / "point3.duckdb", reports_dir=folder / "reports",
                    key_file=folder / "key", folder=folder)


def _fleet(root: Path, published: dict[str, Path], *ids: str) -> list[Merchant]:
    """Merchants under `root`; those in `published` get a copy of that merchant's published file."""
    merchants = []
    for id_ in ids:
        merchant = _merchant(root, id_)
        if id_ in published:
            merchant.published_path.parent.mkdir(parents=True)
            shutil.copyfile(published[id_], merchant.published_path)
        merchants.append(merchant)
    return merchants


def _rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_union_views_give_each_merchants_rows_under_its_id(tmp_path, published):
    root = tmp_path / "it's here"  # a quote in a path must not break the generated SQL
    merchants = _fleet(root, published, "arthall", "violet", "dalbit")
    result = catalog.ensure_catalog(merchants, root)
    assert result.rebuilt and result.included == ("arthall", "violet")
    assert result.left_out == (("dalbit", "no published copy yet: run a sync for it"),)
    relations = {name for (name,) in _rows(published["arthall"], "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")}
    assert {"payments", "cancellations", "culture_vat_daily", "sync_runs"} <= relations
    with catalog.connect(root) as conn:
        views = {name for (name,) in conn.execute("SELECT view_name FROM duckdb_views() WHERE database_name = 'point3_catalog' AND NOT internal").fetchall()}
        assert views == relations and result.views == len(relations)
        for id_, copy in published.items():
            own = set(_rows(copy, "SELECT signature, total_charge FROM payments"))
            assert own and set(conn.execute("SELECT signature, total_charge FROM payments WHERE merchant_id = ?", [id_]).fetchall()) == own
            totals = _rows(copy, "SELECT payment_date, sum(payment_count) FROM culture_vat_daily GROUP BY 1 ORDER BY 1")
            assert conn.execute("SELECT payment_date, sum(payment_count) FROM culture_vat_daily WHERE merchant_id = ? "
                                "GROUP BY 1 ORDER BY 1", [id_]).fetchall() == totals
        assert conn.execute("SELECT count(DISTINCT merchant_id) FROM sync_runs").fetchone()[0] == 2
        assert conn.execute("SELECT merchant_id, included, reason IS NULL FROM meta.merchants ORDER BY 1").fetchall() == [
            ("arthall", True, True), ("dalbit", False, False), ("violet", True, True)]
        with pytest.raises(duckdb.Error, match="read-only"):
            conn.execute("DELETE FROM m_arthall.main.payments")
    # Opened without its set-up, the catalog's views have nothing to read: ATTACH is per session.
    with pytest.raises(duckdb.CatalogException):
        _rows(result.path, "SELECT count(*) FROM payments")


def test_rebuilt_only_when_the_merchants_or_their_schema_change(tmp_path, published):
    merchants = _fleet(tmp_path, published, "arthall", "violet", "dalbit")
    first = catalog.ensure_catalog(merchants, tmp_path)
    inode = first.path.stat().st_ino
    again = catalog.ensure_catalog(merchants, tmp_path)
    assert not again.rebuilt and again.fingerprint == first.fingerprint and first.path.stat().st_ino == inode

    # New data in a copy (same schema): the views read it without a rebuild.
    with duckdb.connect(str(merchants[0].published_path)) as conn:
        conn.execute("DELETE FROM payments WHERE signature = (SELECT min(signature) FROM payments)")
    assert not catalog.ensure_catalog(merchants, tmp_path).rebuilt

    merchants[2].published_path.parent.mkdir(parents=True)
    shutil.copyfile(published["arthall"], merchants[2].published_path)
    grown = catalog.ensure_catalog(merchants, tmp_path)
    assert grown.rebuilt and grown.included == ("arthall", "violet", "dalbit")

    with duckdb.connect(str(merchants[1].published_path)) as conn:
        conn.execute("ALTER TABLE payments ADD COLUMN memo VARCHAR DEFAULT 'new column'")
    migrated = catalog.ensure_catalog(merchants, tmp_path)
    assert migrated.rebuilt
    with catalog.connect(tmp_path) as conn:
        assert set(conn.execute("SELECT merchant_id, memo FROM payments GROUP BY ALL").fetchall()) == {
            ("arthall", None), ("violet", "new column"), ("dalbit", None)}

    renamed = [dataclasses.replace(merchants[0], name="아트홀 푸른별"), *merchants[1:]]
    assert catalog.ensure_catalog(renamed, tmp_path).rebuilt
    assert _rows(tmp_path / "catalog.duckdb", "SELECT name FROM meta.merchants WHERE merchant_id = 'arthall'") == [("아트홀 푸른별",)]
    assert catalog.ensure_catalog(renamed[:2], tmp_path).rebuilt  # a merchant removed
    assert not catalog.ensure_catalog(renamed[:2], tmp_path).rebuilt


def test_a_catalog_whose_two_files_disagree_is_rebuilt(tmp_path, published):
    merchants = _fleet(tmp_path, published, "arthall")
    built = catalog.ensure_catalog(merchants, tmp_path)
    script = tmp_path / "catalog.sql"
    script.write_text(script.read_text().replace(built.fingerprint, "0" * 64))  # as after a crash between renames
    assert catalog.current_fingerprint(tmp_path) is None
    assert catalog.ensure_catalog(merchants, tmp_path).rebuilt
    assert catalog.current_fingerprint(tmp_path) == built.fingerprint


def test_a_failed_build_leaves_the_previous_catalog_whole(tmp_path, published, monkeypatch):
    merchants = _fleet(tmp_path, published, "arthall", "violet")
    catalog.ensure_catalog(merchants[:1], tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    def disk_full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(catalog, "_write_synced", disk_full)
    with pytest.raises(OSError, match="No space left"):
        catalog.ensure_catalog(merchants, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    with catalog.connect(tmp_path) as conn:
        assert conn.execute("SELECT DISTINCT merchant_id FROM payments").fetchall() == [("arthall",)]


def test_an_unreadable_copy_leaves_that_merchant_out_with_its_reason(tmp_path, published):
    merchants = _fleet(tmp_path, published, "arthall", "violet")
    merchants[1].published_path.write_bytes(b"not a DuckDB file" * 100)
    result = catalog.ensure_catalog(merchants, tmp_path)
    assert result.included == ("arthall",)
    [(id_, reason)] = result.left_out
    assert id_ == "violet" and reason.startswith(f"its published copy {merchants[1].published_path} cannot be read (")
    with catalog.connect(tmp_path) as conn:
        assert conn.execute("SELECT DISTINCT merchant_id FROM payments").fetchall() == [("arthall",)]


def test_litter_of_a_killed_build_is_removed(tmp_path, published):
    merchants = _fleet(tmp_path, published, "arthall")
    litter = tmp_path / ".catalog.duckdb.new.tmp-999999999"
    litter.write_bytes(b"half")
    catalog.ensure_catalog(merchants, tmp_path)
    assert not litter.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["catalog.duckdb", "catalog.sql"]


def test_no_merchant_to_include_gives_an_empty_catalog(tmp_path):
    # Every entry of the merchants file failed (say, their key files are gone): the catalog says
    # so by being empty, instead of failing on DuckDB's refusal of an empty executemany.
    result = catalog.ensure_catalog([], tmp_path)
    assert result.rebuilt and result.views == 0 and result.included == ()
    with duckdb.connect(str(result.path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM meta.merchants").fetchone() == (0,)

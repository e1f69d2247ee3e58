"""What the combined catalog costs. Prints, never asserts.

    .venv/bin/python bench/catalog.py [--merchants 5] [--days 100] [--per-day 100]

One sandbox history (days x per-day payments) is synced and published once, then its copy is
laid in every merchant's folder. Measured: building the catalog of union views (first build,
the unchanged check, a forced rebuild), a query over all merchants through it, and, for
comparison, copying every merchant's tables into one file instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from point3_pipeline import catalog
from point3_pipeline.client import Point3Client
from point3_pipeline.merchants import Merchant
from point3_pipeline.models import KST
from point3_pipeline.sandbox import SandboxConfig, SandboxServer
from point3_pipeline.sync import sync_range
from point3_pipeline.warehouse import Warehouse

NOW = dt.datetime(2026, 3, 18, 15, 0, tzinfo=KST)


def published_copy(folder: Path, days: int, per_day: int) -> tuple[Path, int]:
    warehouse = Warehouse(folder / "source" / "point3.duckdb")
    config = SandboxConfig(seed=5, days=days, per_day=per_day, future_days=0, start_at=NOW, speed=0)
    with SandboxServer(config) as sandbox, Point3Client(sandbox.url, sandbox.key, page_size=100) as client:
        sync_range(client, warehouse, (NOW - dt.timedelta(days=days)).date(), NOW.date(), clock=lambda: NOW,
                   refresh_derived=True)
    path = warehouse.publish()
    with duckdb.connect(str(path), read_only=True) as conn:
        return path, conn.execute("SELECT count(*) FROM payments").fetchone()[0]


def merchants_with(copy: Path, root: Path, count: int) -> list[Merchant]:
    merchants = []
    for number in range(count):
        folder = root / f"shop-{number}"
        merchant = Merchant(id=f"shop-{number}", name=f"shop {number}", api_url="http://127.0.0.1:9",
                            start_date=NOW.date(), warehouse_path=folder / "warehouse" / "point3.duckdb",
                            reports_dir=folder / "reports", key_file=folder / "key", folder=folder)
        merchant.published_path.parent.mkdir(parents=True)
        shutil.copyfile(copy, merchant.published_path)
        merchants.append(merchant)
    return merchants


def timed(action):
    started = time.perf_counter()
    value = action()
    return value, time.perf_counter() - started


def copy_in(merchants: list[Merchant], target: Path) -> None:
    """The alternative: every merchant's rows copied into one file (what each data change would redo)."""
    sources = [catalog.read_source(m) for m in merchants]
    with duckdb.connect(str(target)) as conn:
        for statement in catalog._attachments(sources):
            conn.execute(statement)
        for view in catalog._union_views(sources):
            conn.execute(view.replace("CREATE VIEW", "CREATE TABLE", 1))
        conn.execute("CHECKPOINT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=5)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--per-day", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="point3-bench-catalog-") as tmp:
        folder = Path(tmp)
        (copy, payments), seconds = timed(lambda: published_copy(folder, args.days, args.per_day))
        print(f"one published copy: {payments:,} payments, {copy.stat().st_size / 1e6:.1f} MB (synced in {seconds:.1f} s)")
        merchants = merchants_with(copy, folder / "root", args.merchants)
        root = folder / "root"
        built, first = timed(lambda: catalog.ensure_catalog(merchants, root))
        _, check = timed(lambda: catalog.ensure_catalog(merchants, root))
        _, forced = timed(lambda: catalog.ensure_catalog(merchants, root, force=True))
        size = built.path.stat().st_size + built.init_script.stat().st_size
        print(f"catalog of views, {args.merchants} merchants x {payments:,} payments, {built.views} views: "
              f"first build {first:.3f} s, unchanged check {check:.3f} s, forced rebuild {forced:.3f} s, "
              f"{size / 1e6:.2f} MB (catalog.duckdb + catalog.sql)")

        def query():
            with catalog.connect(root) as conn:
                return conn.execute("SELECT merchant_id, count(*), sum(total_charge) FROM payments GROUP BY 1").fetchall()

        rows, seconds = timed(query)
        print(f"query through it (attach {args.merchants} copies, count and sum per merchant): {seconds:.3f} s, "
              f"{sum(r[1] for r in rows):,} payments")
        target = folder / "copied.duckdb"
        _, seconds = timed(lambda: copy_in(merchants, target))
        print(f"for comparison, copying the rows in instead: {seconds:.2f} s, {target.stat().st_size / 1e6:.1f} MB, "
              "redone after every run of any merchant")


if __name__ == "__main__":
    main()

"""The hourly run for many merchants: one after another, and in parallel with point3_pipeline.fleet.
Prints, never asserts.

    .venv/bin/python bench/merchants.py [--merchants 50] [--per-day 40] [--latency-ms 40] [--workers 16]

Each merchant has its own in-process sandbox (its own key and history) and its own warehouse.
The history (--history-days) is synced first without latency; then the sandboxes answer every
request --latency-ms late and the hourly run (`fleet.sync_and_publish`: the incremental run
over the last days, the derived tables, the published copy) is timed for all merchants,
serially and then on the fleet's thread pool; then through Dagster: the same merchants from a
merchants file, the hourly schedule's days (yesterday and today) of every merchant as one
backfill run of point3_payments, then one run of their derived tables and analysts' copies
(`through_dagster`), each run doing the merchants --workers at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

from point3_pipeline import fleet
from point3_pipeline.fleet import MAX_PARALLEL_VAR
from point3_pipeline.merchants import Merchant
from point3_pipeline.models import KST
from point3_pipeline.sandbox import SandboxConfig, SandboxServer

NOW = dt.datetime(2026, 3, 18, 15, 0, tzinfo=KST)


def hourly(merchant: Merchant, client, warehouse):
    return fleet.sync_and_publish(merchant, client, warehouse, clock=lambda: NOW)


def merchant_for(number: int, sandbox: SandboxServer, root: Path, history_days: int) -> Merchant:
    folder = root / f"shop-{number}"
    folder.mkdir(parents=True)
    key_file = folder / "key"
    key_file.write_text(sandbox.key)
    key_file.chmod(0o600)
    return Merchant(id=f"shop-{number}", name=f"shop {number}", api_url=sandbox.url,
                    start_date=(NOW - dt.timedelta(days=history_days - 1)).date(),
                    warehouse_path=folder / "warehouse" / "point3.duckdb", reports_dir=folder / "reports",
                    key_file=key_file, folder=folder)


def timed_run(merchants: list[Merchant], workers: int) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process (every thread, the sandboxes' included) and
    how many merchants succeeded."""
    started, cpu = time.perf_counter(), time.process_time()
    outcomes = fleet.run_each(merchants, fleet.with_client(hourly, page_size=30), max_workers=workers)
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        print(f"  {outcome.merchant_id} failed: {outcome.error}")
    return time.perf_counter() - started, time.process_time() - cpu, len(outcomes) - len(failed)


def merchants_file(merchants: list[Merchant], root: Path) -> Path:
    """The merchants file the Dagster definitions load: the same merchants, folders and keys."""
    body = [f'root = "{root}"']
    for m in merchants:
        body.append(f'[[merchant]]\nid = "{m.id}"\nname = "{m.name}"\nkey_file = "{m.key_file}"\n'
                    f'start_date = {m.start_date}\napi_url = "{m.api_url}"')
    path = root / "merchants.toml"
    path.write_text("\n\n".join(body))
    return path


def through_dagster(merchants: list[Merchant], root: Path, workers: int) -> tuple[float, float, int]:
    """The hourly run through Dagster, in this process on a temporary instance: every merchant's
    yesterday and today as one run of point3_payments (merchants --workers at a time inside its
    step), then one run refreshing their derived tables and publishing their copies. Wall and
    CPU seconds, and how many merchants' partitions succeeded."""
    os.environ.update({"POINT3_MERCHANTS": str(merchants_file(merchants, root)), MAX_PARALLEL_VAR: str(workers)})
    # bench/ (this script's folder, first on sys.path) has a dagster.py of its own.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    from dagster import DagsterInstance, materialize

    from dagster_project import assets
    from dagster_project.definitions import defs

    first, last = merchants[0].id, merchants[-1].id
    today = NOW.date()
    runs = [
        ([assets.point3_payments], f"{today - dt.timedelta(days=1)}|{first}", f"{today}|{last}"),
        ([assets.payment_cancellations, assets.payment_tax_split, assets.culture_vat_breakdown,
          assets.analyst_warehouse_copy], first, last),
    ]
    with tempfile.TemporaryDirectory(prefix="point3-bench-dagster-") as home, DagsterInstance.local_temp(home) as instance:
        started, cpu = time.perf_counter(), time.process_time()
        ok = True
        for selection, start, end in runs:
            result = materialize(selection, instance=instance, resources=defs.resources, raise_on_error=False,
                                 tags={"dagster/asset_partition_range_start": start,
                                       "dagster/asset_partition_range_end": end})
            ok = ok and result.success
        return time.perf_counter() - started, time.process_time() - cpu, len(merchants) if ok else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=50)
    parser.add_argument("--per-day", type=int, default=40)
    parser.add_argument("--history-days", type=int, default=7)
    parser.add_argument("--latency-ms", type=int, default=40)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="point3-bench-merchants-") as tmp, contextlib.ExitStack() as stack:
        sandboxes = [
            stack.enter_context(SandboxServer(SandboxConfig(
                seed=100 + n, days=args.history_days, per_day=args.per_day, future_days=0, start_at=NOW, speed=0,
                key=f"sk_bench_merchant_{n:04d}")))
            for n in range(args.merchants)
        ]  # fmt: skip
        merchants = [merchant_for(n, s, Path(tmp), args.history_days) for n, s in enumerate(sandboxes)]
        seconds, _, ok = timed_run(merchants, args.workers)
        print(f"{args.merchants} merchants, history of {args.history_days} days x {args.per_day} payments synced "
              f"without latency in {seconds:.1f} s ({ok} succeeded)")
        load = os.getloadavg()[0]
        for sandbox in sandboxes:
            sandbox.state.set_faults(latency_ms=args.latency_ms)
        serial, serial_cpu, ok_serial = timed_run(merchants, 1)
        parallel, parallel_cpu, ok_parallel = timed_run(merchants, args.workers)
        print(f"hourly run, {args.latency_ms} ms added latency per request "
              f"({os.cpu_count()} cores, load average {load:.1f} before the runs):")
        print(f"  serially (library):              {serial:6.2f} s wall, {serial_cpu:6.2f} s CPU ({ok_serial} succeeded)")
        print(f"  in parallel ({args.workers:>2} workers, fleet):  {parallel:6.2f} s wall, {parallel_cpu:6.2f} s CPU "
              f"({ok_parallel} succeeded), {serial / parallel:.1f}x faster")
        dagster, dagster_cpu, ok_dagster = through_dagster(merchants, Path(tmp), args.workers)
        print(f"  through Dagster ({args.workers:>2} at a time, 2 runs): {dagster:6.2f} s wall, {dagster_cpu:6.2f} s CPU "
              f"({ok_dagster} succeeded), {dagster / parallel:.1f}x the parallel library run (floor: within 2x)")
        print(f"  load average after the runs: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

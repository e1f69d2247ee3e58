"""The hourly run for many merchants: one after another, and in parallel with point3_pipeline.fleet.
Prints, never asserts.

    .venv/bin/python bench/merchants.py [--merchants 50] [--per-day 40] [--latency-ms 40] [--workers 16]

Each merchant has its own in-process sandbox (its own key and history) and its own warehouse.
The history (--history-days) is synced first without latency; then the sandboxes answer every
request --latency-ms late and the hourly run (`fleet.sync_and_publish`: the incremental run
over the last days, the derived tables, the published copy) is timed for all merchants,
serially and then on the fleet's thread pool. Through Dagster is not measured yet: the
definitions do not have merchants.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from point3_pipeline import fleet
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
        print("  through Dagster:               not measured (the definitions have no merchants yet)")


if __name__ == "__main__":
    main()

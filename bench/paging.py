"""Paging throughput: orders per second pulled from the sandbox's date endpoint by one client.

Starts the sandbox as a subprocess (`python -m point3_pipeline.sandbox`), walks one wide
window with `Point3Client.iter_payment_pages` at page sizes 30, 100 and 1000, and prints
orders/s with the CPU each side spent: the sandbox's from /proc/<pid>/stat, the client's
from time.process_time. One untimed walk first fills the sandbox's per-record JSON cache,
as a long-running sandbox would have.

    .venv/bin/python bench/paging.py [--days 100] [--per-day 2000] [--sizes 30,100,1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import tempfile
import time
from pathlib import Path

from point3_pipeline.client import Point3Client
from point3_pipeline.models import parse_api_datetime
from point3_pipeline.sandbox.process import cpu_seconds, spawn

START_AT = "2026-03-18T15:00:00"  # fixed, so every run pages the same data


def start_sandbox(days: int, per_day: int, ready: Path) -> tuple[subprocess.Popen, dict]:
    return spawn(["--days", str(days), "--per-day", str(per_day), "--future-days", "0", "--start-at", START_AT,
                  "--speed", "0"], ready, stdout=subprocess.DEVNULL)


def walk(client: Point3Client, start, page_size: int) -> int:
    return sum(page.record_count for page in client.iter_payment_pages(start, None, page_size=page_size))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--sizes", default="30,100,1000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    start = parse_api_datetime(START_AT).replace(hour=0) - dt.timedelta(days=args.days)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        process, info = start_sandbox(args.days, args.per_day, Path(tmp) / "ready.json")
        print(f"sandbox up in {time.monotonic() - started:.1f}s ({args.days} days x ~{args.per_day}/day)")
        try:
            with Point3Client(info["url"], info["key"], page_size=max(sizes)) as client:
                total = walk(client, start, max(sizes))  # warm-up, untimed
                print(f"{total} orders in the window\n")
                print(f"{'page size':>9} {'orders':>8} {'wall s':>7} {'orders/s':>9} "
                      f"{'sandbox CPU s':>13} {'client CPU s':>12} {'sandbox/client':>14}")
                for size in sizes:
                    server_cpu, client_cpu, wall = cpu_seconds(process.pid), time.process_time(), time.perf_counter()
                    pulled = walk(client, start, size)
                    wall = time.perf_counter() - wall
                    client_cpu = time.process_time() - client_cpu
                    server_cpu = cpu_seconds(process.pid) - server_cpu
                    print(f"{size:>9} {pulled:>8} {wall:>7.2f} {pulled / wall:>9.0f} "
                          f"{server_cpu:>13.2f} {client_cpu:>12.2f} {server_cpu / client_cpu:>14.2f}")
        finally:
            process.terminate()
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

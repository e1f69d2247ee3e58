"""Sync throughput, against dlt and a bare loop; incremental cost against history size.

    .venv/bin/python bench/sync.py [--days 100 --per-day 2000] [--skip-dlt]

Prints figures, asserts nothing. Each case runs in its own process (so peak memory is its
own) against one sandbox subprocess holding the same data. CPU seconds are the client
process's own (the sandbox's apart): on a busy machine their ratio moves far less than the
wall-clock one. dlt runs from `.venv-bench`
(created on first use: dlt is a benchmark reference, not a dependency of the project).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from point3_pipeline.sandbox.process import cpu_seconds, spawn

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
DLT_VERSION = "1.31.0"


def start_sandbox(days: int, per_day: int, tmp: Path) -> tuple[subprocess.Popen, dict]:
    return spawn(["--days", str(days), "--per-day", str(per_day), "--future-days", "0"],
                 tmp / f"sandbox-{days}-{per_day}.json", timeout=600, stdout=subprocess.DEVNULL)


def run_case(code: str, env: dict, python: str = sys.executable) -> dict:
    """Run a case in a fresh process; it prints one JSON line of figures."""
    out = subprocess.run([python, "-c", textwrap.dedent(code)], env={**os.environ, **env},
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"a benchmark case failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# Where our sync's time goes, from wrappers around its steps (a few hundred calls: their own
# cost is microseconds): wall seconds until the last window was read (on the reading threads,
# overlapping each other and the writer), of each writer step, and of what is left once the
# last window is read (the writer's last batch, then closing the file, which checkpoints).
STEP_TIMERS = """
    from point3_pipeline.sync import run as sync_run, store as sync_store
    spent, marks = {}, {}

    def timed(owner, name, key):
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                marks[key] = time.perf_counter()
                spent[key] = spent.get(key, 0.0) + marks[key] - t0

        setattr(owner, name, wrapper)

    timed(sync_run, "read_window", "read")
    timed(sync_run, "_finish_run", "finish")
    for step in ("stage", "write", "classify", "log_events", "insert_new"):
        timed(sync_store.BatchStore, step, step)
"""

OUR_SYNC = """
    import datetime as dt, json, os, resource, time
    from point3_pipeline.client import Point3Client
    from point3_pipeline.sync import sync_range
    from point3_pipeline.warehouse import Warehouse
""" + STEP_TIMERS + """
    warehouse = Warehouse(os.environ["BENCH_WAREHOUSE"])
    first = dt.date.fromisoformat(os.environ["BENCH_FIRST"]); last = dt.date.fromisoformat(os.environ["BENCH_LAST"])
    with Point3Client(os.environ["BENCH_URL"], os.environ["BENCH_KEY"], page_size=int(os.environ["BENCH_PAGE"])) as c:
        with warehouse.connect():
            pass  # schema creation is not sync work
        t0 = time.perf_counter(); cpu0 = time.process_time()
        result = sync_range(c, warehouse, first, last)
        end = time.perf_counter()
    steps = {"reading (until the last window was read)": marks["read"] - t0, "staging": spent["stage"],
             "classify": spent["classify"], "events": spent["log_events"], "insert": spent["insert_new"],
             "other statements and commits": spent["write"] - spent["classify"] - spent["log_events"]
             - spent["insert_new"],
             "after the last read": marks["finish"] - marks["read"], "closing (checkpoint)": end - marks["finish"]}
    print(json.dumps({"seconds": end - t0, "cpu": time.process_time() - cpu0,
                      "payments": result.total("distinct_payments"),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "steps": steps}))
"""

BARE_LOOP = """
    import json, os, resource, time
    import duckdb, httpx, orjson, pyarrow as pa
    url, key, page_size = os.environ["BENCH_URL"], os.environ["BENCH_KEY"], int(os.environ["BENCH_PAGE"])
    conn = duckdb.connect(os.environ["BENCH_WAREHOUSE"])
    conn.execute("CREATE TABLE payments (signature VARCHAR PRIMARY KEY, total_charge BIGINT, tax_free_amount BIGINT, "
                 "vat BIGINT, is_canceled BOOLEAN, product VARCHAR, order_id VARCHAR)")
    t0 = time.perf_counter(); cpu0 = time.process_time()
    cols = {k: [] for k in ("signature", "total_charge", "tax_free_amount", "vat", "is_canceled", "product", "order_id")}
    with httpx.Client(base_url=url, headers={"Authorization": f"Basic {key}"}) as http:
        page = 1
        while True:
            body = orjson.loads(http.get("/api/payments/date", params={"startDate": os.environ["BENCH_START"],
                                "endDate": "", "page": page, "count": page_size}).content)
            orders = body["result"]["orders"]
            for o in orders:
                cols["signature"].append(o["signature"]); cols["total_charge"].append(o["totalCharge"])
                cols["tax_free_amount"].append(o["taxFreeAmount"]); cols["vat"].append(o["vat"])
                cols["is_canceled"].append(o["isCanceled"]); cols["product"].append(o.get("purchasingProductName"))
                cols["order_id"].append(o.get("orderIdFromClient"))
            if len(orders) < page_size:
                break
            page += 1
    batch = pa.table(cols)
    conn.execute("INSERT OR REPLACE INTO payments SELECT * FROM batch")
    print(json.dumps({"seconds": time.perf_counter() - t0, "cpu": time.process_time() - cpu0, "payments": batch.num_rows,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

DLT_DEFAULT = """
    import json, os, resource, time
    import dlt
    from dlt.sources.rest_api import rest_api_source
    source = rest_api_source({
        "client": {
            "base_url": os.environ["BENCH_URL"],
            "headers": {"Authorization": "Basic " + os.environ["BENCH_KEY"]},
            "paginator": {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": None,
                          "stop_after_empty_page": True},
        },
        "resources": [{
            "name": "payments",
            "primary_key": "signature",
            "write_disposition": "merge",
            "endpoint": {"path": "api/payments/date", "data_selector": "result.orders",
                         "params": {"startDate": os.environ["BENCH_START"], "endDate": "",
                                    "count": int(os.environ["BENCH_PAGE"])}},
        }],
    })
    pipeline = dlt.pipeline(pipeline_name="point3_bench", pipelines_dir=os.environ["BENCH_DLT_DIR"],
                            destination=dlt.destinations.duckdb(os.environ["BENCH_WAREHOUSE"]),
                            dataset_name="point3")
    t0 = time.perf_counter()
    pipeline.run(source)
    seconds = time.perf_counter() - t0
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT count(*) FROM payments")[0][0]
    print(json.dumps({"seconds": seconds, "payments": rows,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

INCREMENTAL = """
    import datetime as dt, json, os, time
    from point3_pipeline.client import Point3Client
    from point3_pipeline.sync import sync_range
    from point3_pipeline.warehouse import Warehouse
    warehouse = Warehouse(os.environ["BENCH_WAREHOUSE"])
    history = int(os.environ["BENCH_HISTORY"])
    day = dt.date.fromisoformat(os.environ["BENCH_DAY"])
    with warehouse.connect() as conn:
        # Older history, made in SQL: only its size matters here.
        conn.execute(
            "INSERT INTO payments (signature, payment_date, accepted_at, total_charge, tax_free_amount, vat, "
            "culture_expense_type, is_canceled, first_seen_at, last_seen_at, first_seen_run_id, last_seen_run_id, "
            "record_hash, raw_record) "
            "SELECT 'HIST' || lpad(i::VARCHAR, 28, '0'), DATE '2020-01-01' + (i // 2000)::INTEGER, "
            "TIMESTAMPTZ '2020-01-01 00:00:00+09' + to_seconds(i * 40), 11000, 10000, 1000, 'a', false, now(), now(), "
            "0, 0, md5(i::VARCHAR), '{}' FROM range(?) t(i)", [history])
        conn.execute("CHECKPOINT")
    timings = []
    with Point3Client(os.environ["BENCH_URL"], os.environ["BENCH_KEY"], page_size=1000) as client:
        for _ in range(5):
            t0 = time.perf_counter()
            sync_range(client, warehouse, day, day)
            timings.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": sorted(timings)[len(timings) // 2]}))
"""


def ensure_dlt() -> str:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {BENCH_VENV} with dlt {DLT_VERSION} (first run only)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"dlt[duckdb]=={DLT_VERSION}"], check=True)
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--skip-dlt", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        sandbox, info = start_sandbox(args.days, args.per_day, tmp)
        print(f"sandbox: {args.days} days x {args.per_day}/day, started in {time.perf_counter() - t0:.1f} s")
        try:
            today = dt.datetime.now(dt.timezone(dt.timedelta(hours=9))).date()
            first = today - dt.timedelta(days=args.days)
            env = {"BENCH_URL": info["url"], "BENCH_KEY": info["key"], "BENCH_FIRST": first.isoformat(),
                   "BENCH_LAST": today.isoformat(), "BENCH_START": f"{first}T00:00:00"}
            # The sandbox builds each record's JSON on first serve: one unmeasured pass first,
            # so every contender meets the same warm sandbox.
            run_case(BARE_LOOP, {**env, "BENCH_PAGE": "1000", "BENCH_WAREHOUSE": str(tmp / "warm-up.duckdb")})
            rows = []
            for page in (100, 1000):
                case_env = {**env, "BENCH_PAGE": str(page)}
                before = cpu_seconds(sandbox.pid)
                ours = run_case(OUR_SYNC, {**case_env, "BENCH_WAREHOUSE": str(tmp / f"ours-{page}.duckdb")})
                ours["sandbox_cpu"] = cpu_seconds(sandbox.pid) - before
                bare = run_case(BARE_LOOP, {**case_env, "BENCH_WAREHOUSE": str(tmp / f"bare-{page}.duckdb")})
                dlt = None
                if not args.skip_dlt:
                    dlt = run_case(DLT_DEFAULT, {**case_env, "BENCH_WAREHOUSE": str(tmp / f"dlt-{page}.duckdb"),
                                                 "BENCH_DLT_DIR": str(tmp / f"dlt-{page}")}, python=ensure_dlt())
                rows.append((page, ours, bare, dlt))
            print()
            print("full sync into a fresh warehouse")
            print(f"{'page':>5} {'payments':>9} {'ours s':>7} {'orders/s':>9} {'client cpu':>10} {'sandbox cpu':>11} "
                  f"{'peak MB':>8} {'bare s':>7} {'ours/bare':>9} {'bare cpu':>8} {'cpu ratio':>9} {'dlt s':>7} "
                  f"{'dlt/ours':>8}")
            for page, ours, bare, dlt in rows:
                rate = ours["payments"] / ours["seconds"]
                dlt_s = f"{dlt['seconds']:7.1f}" if dlt else "      -"
                dlt_ratio = f"{dlt['seconds'] / ours['seconds']:7.1f}x" if dlt else "       -"
                print(f"{page:>5} {ours['payments']:>9,} {ours['seconds']:7.2f} {rate:9,.0f} {ours['cpu']:10.2f} "
                      f"{ours['sandbox_cpu']:11.2f} {ours['peak_mb']:8.0f} {bare['seconds']:7.2f} "
                      f"{ours['seconds'] / bare['seconds']:8.2f}x {bare['cpu']:8.2f} {ours['cpu'] / bare['cpu']:8.2f}x "
                      f"{dlt_s} {dlt_ratio}")
            print()
            print("where our time goes (wall s): the reading, the writer thread's steps (overlapping the "
                  "reading), and what is left after the last window is read")
            for page, ours, _, _ in rows:
                print(f"  page {page:>4}: " + ", ".join(f"{name} {s:.2f}" for name, s in ours["steps"].items()))
        finally:
            sandbox.terminate()
            sandbox.wait()

        # Incremental cost: one day's window (2,000 payments) with small and large history.
        sandbox, info = start_sandbox(2, 2000, tmp)
        try:
            day = dt.datetime.now(dt.timezone(dt.timedelta(hours=9))).date() - dt.timedelta(days=1)
            env = {"BENCH_URL": info["url"], "BENCH_KEY": info["key"], "BENCH_DAY": day.isoformat()}
            print()
            print("one-day incremental run against history size (median of 5)")
            results = {}
            for history in (10_000, 1_000_000):
                results[history] = run_case(INCREMENTAL, {**env, "BENCH_HISTORY": str(history),
                                                          "BENCH_WAREHOUSE": str(tmp / f"inc-{history}.duckdb")})
                print(f"  {history:>9,} payments stored: {results[history]['seconds']:.3f} s")
            print(f"  ratio 1,000,000 / 10,000: {results[1_000_000]['seconds'] / results[10_000]['seconds']:.2f}")
        finally:
            sandbox.terminate()
            sandbox.wait()
    print(f"\nbench process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

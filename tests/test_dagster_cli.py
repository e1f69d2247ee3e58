"""A backfill through Dagster's CLI is one run, in a real instance (tmp DAGSTER_HOME)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from tests.conftest import make_sandbox

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_partition_range_backfill_on_the_cli_is_one_run(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    warehouse = tmp_path / "point3.duckdb"
    with make_sandbox(days=30, per_day=10) as sandbox:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "POINT3_START_DATE": "2026-02-01",
            "POINT3_API_URL": sandbox.url,
            "POINT3_SECRET_KEY": sandbox.key,
            "POINT3_WAREHOUSE": str(warehouse),
            "POINT3_REPORTS_DIR": str(tmp_path / "reports"),
        }
        env.pop("POINT3_SECRET_KEY_FILE", None)
        done = subprocess.run(
            [
                str(ROOT / ".venv/bin/dagster"), "asset", "materialize", "-m", "dagster_project.definitions",
                "--select", "point3_payments", "--partition-range", "2026-02-15|default...2026-03-10|default",
            ],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert sandbox.key not in done.stdout + done.stderr
    # nor in the instance's run and event storage
    assert not [p for p in home.rglob("*") if p.is_file() and sandbox.key.encode() in p.read_bytes()]

    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS]
        partitions = instance.get_materialized_partitions(
            next(iter(instance.get_asset_keys(prefix=["point3_payments"])))
        )
    assert len(partitions) == 24
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM sync_runs").fetchone()[0] == 1
        assert conn.execute("SELECT count(DISTINCT window_date) FROM sync_windows").fetchone()[0] == 24

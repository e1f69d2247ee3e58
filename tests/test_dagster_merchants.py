"""Two merchants through Dagster: each run writes its own merchant's warehouse; a merchant with a
bad key fails alone, in its own run and in a run over both, and the other's partitions succeed."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from point3_pipeline.sandbox import SandboxConfig, SandboxServer
from tests.conftest import SANDBOX_NOW, sandbox_days

ROOT = Path(__file__).resolve().parent.parent
DAYS = [f"2026-03-{d:02d}" for d in range(7, 19)]  # the sandboxes' history


def _merchants_file(tmp_path: Path, keys: dict[str, tuple[str, str]]) -> Path:
    """merchants.toml: id -> (the key in its key file, its sandbox's URL)."""
    body = ['root = "merchants"']
    for id_, (key, url) in keys.items():
        key_file = tmp_path / f"{id_}.key"
        key_file.write_text(key)
        key_file.chmod(0o600)
        body.append(f'[[merchant]]\nid = "{id_}"\nname = "{id_}"\nkey_file = "{key_file.name}"\n'
                    f'start_date = 2026-03-01\napi_url = "{url}"')
    path = tmp_path / "merchants.toml"
    path.write_text("\n\n".join(body))
    return path


def _materialize(env: dict[str, str], selection: str, partitions: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / ".venv/bin/dagster"), "asset", "materialize", "-m", "dagster_project.definitions",
         "--select", selection, "--partition-range", partitions],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _signatures(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with duckdb.connect(str(path), read_only=True) as conn:
        return {row[0] for row in conn.execute("SELECT signature FROM payments").fetchall()}


@pytest.mark.slow
def test_a_merchant_with_a_bad_key_fails_alone_and_each_warehouse_holds_its_own_payments(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    with contextlib.ExitStack() as stack:
        good, other = (
            stack.enter_context(SandboxServer(SandboxConfig(
                seed=seed, days=12, per_day=per_day, future_days=0, start_at=SANDBOX_NOW, speed=0,
                key=f"sk_sandbox_merchants_{seed}")))
            for seed, per_day in ((41, 9), (42, 13))
        )  # fmt: skip
        # `broken` holds a key its point3 does not know (the other sandbox's key is not its own).
        path = _merchants_file(tmp_path, {"good": (good.key, good.url), "broken": ("sk_sandbox_not_a_key", other.url)})
        env = {k: v for k, v in os.environ.items() if not k.startswith("POINT3_")}
        env.update(DAGSTER_HOME=str(home), POINT3_MERCHANTS=str(path))
        alone = {id_: _materialize(env, "point3_payments", f"{DAYS[0]}|{id_}...{DAYS[-1]}|{id_}") for id_ in ("good", "broken")}
        assert alone["good"].returncode == 0, alone["good"].stderr[-3000:]
        assert alone["broken"].returncode != 0
        # A run over both merchants (a backfill of two days for every merchant): broken fails it,
        # good's partitions are recorded, so its retry is broken's alone.
        both = _materialize(env, "point3_payments", f"{DAYS[-2]}|good...{DAYS[-1]}|broken")
        assert both.returncode != 0 and "broken" in both.stdout + both.stderr
        for done in (*alone.values(), both):
            assert good.key not in done.stdout + done.stderr and other.key not in done.stdout + done.stderr

    merchants = tmp_path / "merchants"
    assert _signatures(merchants / "good" / "warehouse" / "point3.duckdb") == {o["signature"] for _, o in sandbox_days(good)}
    assert _signatures(merchants / "broken" / "warehouse" / "point3.duckdb") == set()
    assert not [p for p in home.rglob("*") if p.is_file() and good.key.encode() in p.read_bytes()]
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert sorted(r.status.value for r in runs) == sorted([DagsterRunStatus.SUCCESS.value] + [DagsterRunStatus.FAILURE.value] * 2)
        materialized = instance.get_materialized_partitions(AssetKey("point3_payments"))
        assert materialized == {f"{day}|good" for day in DAYS}
        [both_run] = [r for r in runs if r.tags.get("dagster/asset_partition_range_end", "").endswith("|broken")
                      and r.tags["dagster/asset_partition_range_start"].endswith("|good")]
        recorded = {
            e.asset_materialization.partition
            for e in instance.all_logs(both_run.run_id) if e.asset_materialization is not None
        }
        assert recorded == {f"{DAYS[-2]}|good", f"{DAYS[-1]}|good"}

    # What the operator sees: the overview names both, good by its lag and broken as failing.
    from dagster import materialize

    from point3_pipeline.config import kst_today

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POINT3_MERCHANTS", str(path))  # also what the definitions load with, if not loaded yet
        from dagster_project.overview import merchants_overview, no_merchant_behind

        result = materialize([merchants_overview, no_merchant_behind])
    [event] = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["merchants"] == 2 and meta["lag_days/good"] == (kst_today() - SANDBOX_NOW.date()).days
    assert "lag_days/broken" not in meta and meta["behind_or_failing"] == "good, broken"
    assert "| good | 2026-03-18 |" in meta["by_merchant"] and "FAILING" in meta["by_merchant"]
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.metadata["merchants_behind_or_failing"].value == 2


def test_each_merchants_reconciliation_terms_are_its_own(tmp_path, monkeypatch):
    """The reconciliation asset and its checks take the terms of the merchant of the step: its
    merchants-file entry over the process environment, not the environment alone."""
    from dagster import Failure

    monkeypatch.setenv("POINT3_START_DATE", "2026-03-01")  # the partitions the definitions load with
    from dagster_project.assets import reconciliation_terms

    path = _merchants_file(tmp_path, {"arthall": ("sk_a", "http://127.0.0.1:9"), "violet": ("sk_v", "http://127.0.0.1:9"),
                                      "plain": ("sk_p", "http://127.0.0.1:9")})
    text = path.read_text()
    text = text.replace('id = "arthall"', 'id = "arthall"\nfee_percent = "3.3"\nfee_vat = true\ncredit_delay_days = 1')
    text = text.replace('id = "violet"', 'id = "violet"\nfee_percent = "2.5"\nfee_vat = false\ndeposit_match_days = 5')
    path.write_text(text)
    monkeypatch.setenv("POINT3_MERCHANTS", str(path))
    monkeypatch.setenv("POINT3_FEE_PERCENT", "1")
    monkeypatch.setenv("POINT3_FEE_VAT", "yes")
    arthall, violet, plain = (reconciliation_terms(m) for m in ("arthall", "violet", "plain"))
    assert (arthall.fee_ppm, arthall.fee_vat, arthall.credit_delay_days, arthall.match_days) == (33_000, True, 1, 3)
    assert (violet.fee_ppm, violet.fee_vat, violet.credit_delay_days, violet.match_days) == (25_000, False, 0, 5)
    assert (plain.fee_ppm, plain.fee_vat) == (10_000, True)  # no terms of its own: the environment's
    path.write_text(text.replace('fee_percent = "2.5"', 'fee_percent = "2.5.1"'))
    with pytest.raises(Failure) as failed:
        reconciliation_terms("violet")
    assert "merchant 'violet': fee_percent must be a percent" in failed.value.description

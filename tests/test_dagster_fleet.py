"""Many merchants, one run a tick: the schedules ask for one run over every merchant, a failing
merchant fails it alone with the others' partitions materialized, and its re-execution from
failure runs that merchant alone.

The partitions' merchants are read from POINT3_MERCHANTS when the code loads, once a process,
so each test drives its own Python process over the definitions (FLEET_SCRIPT)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from point3_pipeline.sandbox import SandboxConfig, SandboxServer
from tests.conftest import SANDBOX_NOW
from tests.test_dagster_merchants import _merchants_file

ROOT = Path(__file__).resolve().parent.parent
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

FLEET_SCRIPT = '''
import datetime as dt, json, sys
from dagster import (AssetKey, DagsterEventType, DagsterInstance, ReexecutionOptions, build_run_status_sensor_context, build_schedule_context,
                     execute_job, reconstructable)
from dagster_project import schedules
from dagster_project.definitions import defs


def sync_payments():
    return defs.resolve_job_def("sync_payments")


def refresh_books():
    return defs.resolve_job_def("refresh_books")


def requests(schedule_def, when):
    with build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def()) as context:
        result = schedule_def.evaluate_tick(context)
    return [{"run_key": r.run_key, "tags": dict(r.tags), "partition_key": r.partition_key} for r in result.run_requests or []]


def refresh_after(instance, sensor, result):
    event = result.get_run_success_event() if result.success else result.get_run_failure_event()
    context = build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=event, dagster_instance=instance,
                                              dagster_run=instance.get_run_by_id(result.run_id),
                                              repository_def=defs.get_repository_def())
    found = sensor(context)
    return [dict(r.tags, run_key=r.run_key, partition_key=r.partition_key) for r in found] if isinstance(found, list) else []


def status(instance, days):
    """What the UI's partition view of point3_payments shows for each merchant's `days`."""
    from dagster_project.partitions import MERCHANT_IDS, daily_partitions, key

    keys = [str(key(m, d)) for m in MERCHANT_IDS for d in days]
    found = instance.get_status_by_partition(AssetKey("point3_payments"), keys, daily_partitions) or {}
    return {k: v.value if v is not None else None for k, v in found.items()}


def materialized(instance, run_id):
    events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    return sorted(e.asset_materialization.partition for e in events)


def metadata_merchants(instance, run_id):
    """Each materialized partition's merchant as its metadata names it."""
    events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    return {e.asset_materialization.partition: e.asset_materialization.metadata["merchant"].value for e in events}


def checks(instance, run_id):
    """Each check evaluated in the run: passed, and the merchants it covered (a count, or the one named)."""
    events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    found = {}
    for e in events:
        evaluation = e.get_dagster_event().event_specific_data
        meta = {k: v.value for k, v in evaluation.metadata.items()}
        found[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = meta.get("merchants_checked", meta.get("merchant"))
    return found


def assets_materialized(instance, run_id):
    events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    return sorted(f"{e.asset_materialization.asset_key.to_user_string()}:{e.asset_materialization.partition}" for e in events)


def books(when, warehouse):
    """The hourly sync, then the refresh over every merchant while one's warehouse is not a
    DuckDB file, then the refresh re-executed from failure once the file is back."""
    import shutil
    from pathlib import Path

    [request] = requests(schedules.recent_payments_hourly, when)
    with DagsterInstance.get() as instance:
        with execute_job(reconstructable(sync_payments), instance, tags=request["tags"]) as synced:
            assert synced.success
        [refresh] = refresh_after(instance, schedules.refresh_after_writes, synced)
        tags = {k: v for k, v in refresh.items() if k not in ("run_key", "partition_key")}
        good = Path(warehouse).with_name("kept.duckdb")
        shutil.copyfile(warehouse, good)
        Path(warehouse).write_bytes(b"not a DuckDB file" * 512)
        job = reconstructable(refresh_books)
        with execute_job(job, instance, tags=tags) as first:
            out = {"first": {"success": first.success, "run_id": first.run_id,
                             "step_failure": [e.event_specific_data.error.message for e in first.all_events
                                              if e.event_type_value == "STEP_FAILURE"],
                             "materialized": assets_materialized(instance, first.run_id),
                             "metadata_merchants": metadata_merchants(instance, first.run_id),
                             "checks": checks(instance, first.run_id)}}
        shutil.copyfile(good, warehouse)
        options = ReexecutionOptions.from_failure(first.run_id, instance)
        with execute_job(job, instance, tags=dict(tags, **{"dagster/is_resume_retry": "true"}),
                         reexecution_options=options) as retry:
            out["retry"] = {"success": retry.success, "materialized": assets_materialized(instance, retry.run_id),
                            "checks": checks(instance, retry.run_id)}
    return out


def main():
    when = dt.datetime.fromisoformat(sys.argv[2])
    if sys.argv[1] == "books":
        print(json.dumps(books(when, sys.argv[3])))
    elif sys.argv[1] == "schedules":
        print(json.dumps({name: requests(getattr(schedules, name), when) for name in
                          ("recent_payments_hourly", "cancellation_sweep_daily", "settlement_every_30_minutes")}
                         | {"monthly": requests(schedules.last_month_reports, dt.datetime(2026, 4, 1, 6, tzinfo=when.tzinfo))}))
    else:
        [request] = requests(schedules.recent_payments_hourly, when)
        job = reconstructable(sync_payments)
        with DagsterInstance.get() as instance:
            with execute_job(job, instance, tags=request["tags"]) as first:
                out = {"first": {"success": first.success, "run_id": first.run_id,
                                 "failure": first.get_run_failure_event().message if not first.success else "",
                                 "step_failure": [e.event_specific_data.error.message for e in first.all_events
                                                  if e.event_type_value == "STEP_FAILURE"],
                                 "materialized": materialized(instance, first.run_id),
                                 "metadata_merchants": metadata_merchants(instance, first.run_id),
                                 "checks": checks(instance, first.run_id),
                                 "refresh": refresh_after(instance, schedules.refresh_after_partial_writes, first),
                                 "status": status(instance, ["2026-03-17", "2026-03-18"])}}
            open(sys.argv[3], "w").write(sys.argv[4])  # the merchant's key fixed before the retry
            options = ReexecutionOptions.from_failure(out["first"]["run_id"], instance)
            # The tags the UI's "re-execute from failure" gives the run: its parent's, marked a resume.
            tags = dict(request["tags"], **{"dagster/is_resume_retry": "true"})
            with execute_job(job, instance, tags=tags, reexecution_options=options) as retry:
                out["retry"] = {"success": retry.success, "parent": instance.get_run_by_id(retry.run_id).parent_run_id,
                                "materialized": materialized(instance, retry.run_id),
                                "checks": checks(instance, retry.run_id),
                                "refresh": refresh_after(instance, schedules.refresh_after_writes, retry),
                                "status": status(instance, ["2026-03-17", "2026-03-18"])}
        print(json.dumps(out))


# reconstructable() imports this file again to find sync_payments: only the script runs main.
if __name__ == "__main__":
    main()
'''


def _fleet(tmp_path: Path, env: dict[str, str], *args: str) -> dict:
    script = tmp_path / "fleet_script.py"
    script.write_text(FLEET_SCRIPT)
    done = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env(tmp_path: Path, merchants_file: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINT3_")}
    return env | {"DAGSTER_HOME": str(home), "POINT3_MERCHANTS": str(merchants_file)}


def test_each_tick_asks_for_one_run_over_every_merchant(tmp_path):
    unreachable = "http://127.0.0.1:9"
    path = _merchants_file(tmp_path, {id_: ("sk_unused", unreachable) for id_ in ("arthall", "violet", "plain")})
    found = _fleet(tmp_path, _env(tmp_path, path), "schedules", SANDBOX_NOW.isoformat())
    [hourly] = found["recent_payments_hourly"]
    assert (hourly["tags"][RANGE_START], hourly["tags"][RANGE_END]) == ("2026-03-17|arthall", "2026-03-18|plain")
    assert hourly["tags"]["point3/merchant"] == "all" and hourly["run_key"] == "recent-2026-03-18T15-arthall..plain"
    [sweep] = found["cancellation_sweep_daily"]
    assert (sweep["tags"][RANGE_START], sweep["tags"][RANGE_END]) == ("2026-03-01|arthall", "2026-03-18|plain")
    [settlement] = found["settlement_every_30_minutes"]
    assert (settlement["tags"][RANGE_START], settlement["tags"][RANGE_END]) == ("arthall", "plain")
    assert settlement["tags"]["point3/merchant"] == "all" and settlement["partition_key"] is None
    # The monthly reports render one period key: still a run per merchant, each its own writer.
    assert sorted((r["partition_key"], r["tags"]["point3/merchant"]) for r in found["monthly"]) == [
        (f"2026-03-01|{m}", m) for m in ("arthall", "plain", "violet")]


@pytest.mark.slow
def test_a_failing_merchant_fails_the_run_alone_and_its_retry_runs_it_alone(tmp_path):
    with contextlib.ExitStack() as stack:
        good, other = (
            stack.enter_context(SandboxServer(SandboxConfig(
                seed=seed, days=12, per_day=per_day, future_days=0, start_at=SANDBOX_NOW, speed=0,
                key=f"sk_sandbox_fleet_{seed}")))
            for seed, per_day in ((51, 9), (52, 13))
        )  # fmt: skip
        # `broken` holds a key its point3 does not know; `late` starts after the hourly range.
        path = _merchants_file(tmp_path, {"good": (good.key, good.url), "broken": ("sk_sandbox_not_a_key", other.url),
                                          "late": (good.key, good.url)})
        text = path.read_text()
        path.write_text(text[: text.index('id = "late"')] + text[text.index('id = "late"'):].replace(
            "start_date = 2026-03-01", "start_date = 2026-03-25"))
        found = _fleet(tmp_path, _env(tmp_path, path), "fleet", SANDBOX_NOW.isoformat(),
                       str(tmp_path / "broken.key"), other.key)

    first, retry = found["first"], found["retry"]
    assert not first["success"] and "1 of 3 merchants failed: broken:" in " ".join(first["step_failure"])
    assert "good" not in " ".join(first["step_failure"]).replace("1 of 3", "")
    days = ("2026-03-17", "2026-03-18")
    assert first["materialized"] == sorted(f"{d}|{m}" for d in days for m in ("good", "late"))
    # Each partition recorded with its own merchant's metadata; the sync's checks over the two
    # merchants that synced, in the failed run's own step.
    assert first["metadata_merchants"] == {p: p.split("|")[1] for p in first["materialized"]}
    assert first["checks"] == {"point3_payments:no_duplicate_signatures": 2, "point3_payments:no_rejected_records": 2}
    # The UI's partition view: broken's days failed, the others' materialized; then all materialized.
    assert first["status"] == {f"{d}|{m}": "FAILED" if m == "broken" else "MATERIALIZED"
                               for d in days for m in ("good", "broken", "late")}
    # The sensor refreshes what the failed run wrote: good and late, apart (broken lies between).
    assert [(r.get(RANGE_START), r["partition_key"]) for r in first["refresh"]] == [(None, "good"), (None, "late")]
    assert retry["success"] and retry["parent"] == first["run_id"]
    assert retry["materialized"] == [f"{d}|broken" for d in days]  # good's and late's: not a second time
    assert set(retry["checks"].values()) == {"broken"}  # the checks cover the merchant the retry ran
    assert [r["partition_key"] for r in retry["refresh"]] == ["broken"]
    assert set(retry["status"].values()) == {"MATERIALIZED"}
    for merchant_id in ("good", "broken", "late"):  # late's empty, for the checks and the refresh
        assert (tmp_path / "merchants" / merchant_id / "warehouse" / "point3.duckdb").exists()


@pytest.mark.slow
def test_a_merchant_whose_books_fail_fails_the_refresh_alone_and_its_retry_refreshes_it_alone(tmp_path):
    with contextlib.ExitStack() as stack:
        sandboxes = [stack.enter_context(SandboxServer(SandboxConfig(
            seed=seed, days=12, per_day=per_day, future_days=0, start_at=SANDBOX_NOW, speed=0,
            key=f"sk_sandbox_books_{seed}"))) for seed, per_day in ((61, 9), (62, 13), (63, 5))]
        path = _merchants_file(tmp_path, {id_: (s.key, s.url) for id_, s in zip(("good", "broken", "other"), sandboxes)})
        damaged = tmp_path / "merchants" / "broken" / "warehouse" / "point3.duckdb"
        found = _fleet(tmp_path, _env(tmp_path, path), "books", SANDBOX_NOW.isoformat(), str(damaged))

    first, retry = found["first"], found["retry"]
    assets = ("analyst_warehouse_copy", "culture_vat_breakdown", "payment_cancellations", "payment_tax_split")
    assert not first["success"] and "1 of 3 merchants failed: broken:" in " ".join(first["step_failure"])
    # The others' tables and copies recorded, each with its own merchant's metadata; the books'
    # checks over the two of them, in the step itself.
    assert first["materialized"] == sorted(f"{a}:{m}" for a in assets for m in ("good", "other"))
    assert first["metadata_merchants"] == {"good": "good", "other": "other"}
    assert first["checks"] == {f"{key}": 2 for key in (
        "payment_cancellations:no_duplicate_signatures", "payment_tax_split:no_unclassified_payments",
        "payment_tax_split:no_impossible_vat", "payment_tax_split:no_declaration_conflicts")}
    assert retry["success"] and retry["materialized"] == sorted(f"{a}:broken" for a in assets)
    assert set(retry["checks"].values()) == {"broken"}
    for merchant_id in ("good", "broken", "other"):
        assert (tmp_path / "merchants" / merchant_id / "warehouse" / "point3.published.duckdb").exists()

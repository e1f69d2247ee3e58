"""The Dagster definitions: they load, the schedules ask for the right days, the jobs run
against the sandbox, and the checks fail when the books are wrong."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import warnings
from pathlib import Path

import duckdb
import pytest
from dagster import (
    AssetCheckSeverity,
    DagsterInstance,
    EnvVar,
    RunRequest,
    SkipReason,
    build_schedule_context,
)
from openpyxl import load_workbook

from point3_pipeline.config import ENV_VARS
from point3_pipeline.models import KST
from tests.conftest import make_sandbox

ROOT = Path(__file__).resolve().parent.parent
START = "2026-02-01"  # the sandbox's history (SANDBOX_NOW = 2026-03-18) starts after this
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

# The partitions read POINT3_START_DATE when the code loads, so set it for the import.
with pytest.MonkeyPatch.context() as _mp, warnings.catch_warnings(record=True) as LOAD_WARNINGS:
    warnings.simplefilter("always")
    _mp.setenv("POINT3_START_DATE", START)
    _mp.setenv("POINT3_SECRET_KEY", "unused-at-load")
    from dagster_project import partitions, schedules
    from dagster_project.definitions import defs


def test_definitions_load_and_validate():
    assert partitions.HISTORY_START == dt.date.fromisoformat(START), "another test loaded them with another start"
    defs.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {"sync_payments", "refresh_books", "observe_settlement", "monthly_reports", "vat_quarter_reports", "vat_half_year_reports",
            "vat_year_reports"} <= set(repo.job_names)
    assert {s.name for s in repo.schedule_defs} == {
        "recent_payments_hourly", "cancellation_sweep_daily", "settlement_every_30_minutes", "last_month_reports",
        "last_quarter_vat_report", "last_half_vat_report", "last_year_vat_report", "merchants_overview_hourly",
    }  # fmt: skip
    assert all(s.execution_timezone == "Asia/Seoul" for s in repo.schedule_defs)
    assert {c.to_user_string() for c in repo.asset_graph.asset_check_keys} >= {
        "point3_payments:no_duplicate_signatures",
        "point3_payments:no_rejected_records",
        "payment_tax_split:no_unclassified_payments",
        "payment_tax_split:no_impossible_vat",
        "payment_tax_split:no_declaration_conflicts",
        "payment_cancellations:no_duplicate_signatures",
        "monthly_tax_report:totals_match_warehouse",
        "monthly_tax_report:every_day_synced_if_final",
        "monthly_reconciliation_report:totals_match_warehouse",
        "monthly_reconciliation_report:every_day_synced_if_final",
    }


def test_loading_uses_no_deprecated_api():
    # Beta in this Dagster, and nothing else warns: backfill_policy (a backfill is one run) and
    # the partition mappings from a merchant's days to its months and to its whole-table assets.
    beta = ("backfill_policy", "MultiPartitionMapping", "MultiToSingleDimensionPartitionMapping")
    unexpected = [
        f"{type(w.message).__name__}: {w.message}"
        for w in LOAD_WARNINGS
        if issubclass(w.category, (DeprecationWarning, UserWarning, FutureWarning))
        or (not any(f"`{name}`" in str(w.message) for name in beta) and "dagster" in type(w.message).__module__)
    ]
    assert not unexpected


def _env_vars_named() -> set[str]:
    named = {
        value.env_var_name
        for resource in defs.resources.values()
        for value in vars(resource).values()
        if isinstance(value, EnvVar)
    }
    source = "\n".join(p.read_text() for p in (ROOT / "dagster_project").glob("*.py"))
    return named | set(re.findall(r"POINT3_[A-Z_]+", source))


def test_every_env_var_is_a_known_setting():
    named = _env_vars_named()
    assert {"POINT3_API_URL", "POINT3_SECRET_KEY", "POINT3_WAREHOUSE", "POINT3_REPORTS_DIR", "POINT3_START_DATE"} <= named
    assert named <= set(ENV_VARS)


def test_every_env_var_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert sorted(v for v in _env_vars_named() if v not in readme) == []


def test_the_key_is_read_from_the_environment_and_is_no_resource_field(monkeypatch, tmp_path):
    from dagster_project.resources import Point3Resource

    key_file = tmp_path / "key"
    key_file.write_text("sk_live_from_the_file")
    key_file.chmod(0o600)
    monkeypatch.delenv("POINT3_SECRET_KEY", raising=False)
    monkeypatch.delenv("POINT3_MERCHANTS", raising=False)
    monkeypatch.setenv("POINT3_SECRET_KEY_FILE", str(key_file))
    monkeypatch.setenv("POINT3_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("POINT3_START_DATE", START)
    monkeypatch.setenv("POINT3_WAREHOUSE", str(tmp_path / "point3.duckdb"))
    monkeypatch.setenv("POINT3_REPORTS_DIR", str(tmp_path / "reports"))
    resource = Point3Resource()
    with resource.client("default") as client:
        assert client._key.reveal() == "sk_live_from_the_file"
    assert "sk_live" not in repr(resource)
    assert not any("key" in name for name in Point3Resource.model_fields)


# --- schedules ------------------------------------------------------------------------------


def _tick(schedule_def, when: dt.datetime):
    with build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def()) as context:
        return schedule_def.evaluate_tick(context)


def _range(schedule_def, when: dt.datetime) -> tuple[str, str]:
    [request] = _tick(schedule_def, when).run_requests  # one merchant, `default`: one run
    assert request.tags["point3/merchant"] == "default" and request.run_key.endswith("-default")
    start, end = request.tags[RANGE_START].split("|"), request.tags[RANGE_END].split("|")
    assert start[1] == end[1] == "default"
    return start[0], end[0]


def _partition(request: RunRequest) -> str:
    """The time key of a run's merchant x time partition key (the merchant is `default`)."""
    time_key, merchant = request.partition_key.split("|")
    assert merchant == "default" == request.tags["point3/merchant"]
    return time_key


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # just after midnight KST on the 1st: the month's last day and the new day
        (dt.datetime(2026, 3, 1, 0, 5, tzinfo=KST), ("2026-02-28", "2026-03-01")),
        # the same instant given in UTC (15:05 the evening before)
        (dt.datetime(2026, 2, 28, 15, 5, tzinfo=dt.UTC), ("2026-02-28", "2026-03-01")),
        (dt.datetime(2026, 2, 28, 23, 5, tzinfo=KST), ("2026-02-27", "2026-02-28")),
        (dt.datetime(2026, 12, 31, 23, 5, tzinfo=KST), ("2026-12-30", "2026-12-31")),
        (dt.datetime(2027, 1, 1, 0, 5, tzinfo=KST), ("2026-12-31", "2027-01-01")),
        # the history's first day has no yesterday
        (dt.datetime(2026, 2, 1, 9, 5, tzinfo=KST), ("2026-02-01", "2026-02-01")),
    ],
)
def test_hourly_run_asks_for_today_and_yesterday(when, expected):
    assert _range(schedules.recent_payments_hourly, when) == expected
    # today's partition exists already (end_offset=1), so the run's range is valid
    assert set(expected) <= set(partitions.days.get_partition_keys(current_time=when))


def test_hourly_run_before_the_history_is_skipped():
    result = _tick(schedules.recent_payments_hourly, dt.datetime(2026, 1, 15, 10, 5, tzinfo=KST))
    assert not result.run_requests and "POINT3_START_DATE" in result.skip_message


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (dt.datetime(2026, 4, 30, 3, 30, tzinfo=KST), ("2026-03-27", "2026-04-30")),
        (dt.datetime(2026, 5, 1, 3, 30, tzinfo=KST), ("2026-03-28", "2026-05-01")),
        (dt.datetime(2026, 2, 20, 3, 30, tzinfo=KST), ("2026-02-01", "2026-02-20")),  # clipped to the start
    ],
)
def test_sweep_asks_for_the_last_35_days_as_one_run(when, expected):
    assert _range(schedules.cancellation_sweep_daily, when) == expected


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (dt.datetime(2026, 3, 1, 6, 0, tzinfo=KST), "2026-02-01"),
        (dt.datetime(2026, 2, 28, 21, 0, tzinfo=dt.UTC), "2026-02-01"),  # 06:00 KST on March 1st
        (dt.datetime(2027, 1, 1, 6, 0, tzinfo=KST), "2026-12-01"),
    ],
)
def test_reports_on_the_first_ask_for_last_month(when, expected):
    [request] = _tick(schedules.last_month_reports, when).run_requests
    assert _partition(request) == expected
    assert partitions.months.get_partition_keys(current_time=when)[-1] == expected


def test_reports_skip_a_month_before_the_history():
    result = _tick(schedules.last_month_reports, dt.datetime(2026, 2, 1, 6, 0, tzinfo=KST))
    assert not result.run_requests and "2026-01" in result.skip_message


@pytest.mark.parametrize(
    ("kind", "when", "expected"),
    [
        ("quarter", dt.datetime(2026, 7, 1, 6, 30, tzinfo=KST), "2026-04-01"),  # Q2 just ended
        ("quarter", dt.datetime(2026, 9, 30, 21, 30, tzinfo=dt.UTC), "2026-07-01"),  # 06:30 KST on October 1st
        ("quarter", dt.datetime(2027, 1, 1, 6, 30, tzinfo=KST), "2026-10-01"),
        ("half", dt.datetime(2027, 1, 1, 6, 45, tzinfo=KST), "2026-07-01"),
        ("year", dt.datetime(2028, 1, 1, 7, 0, tzinfo=KST), "2027-01-01"),
    ],
)
def test_vat_reports_ask_for_the_period_just_ended(kind, when, expected):
    job, schedule_def = schedules.vat_jobs_and_schedules[kind]
    assert schedule_def.execution_timezone == "Asia/Seoul"
    [request] = _tick(schedule_def, when).run_requests
    assert _partition(request) == expected
    assert partitions.vat_periods[kind].get_partition_keys(current_time=when)[-1] == expected


@pytest.mark.parametrize(
    ("kind", "when", "label"),
    [
        ("quarter", dt.datetime(2026, 4, 1, 6, 30, tzinfo=KST), "2026-Q1"),  # began before POINT3_START_DATE
        ("half", dt.datetime(2026, 7, 1, 6, 45, tzinfo=KST), "2026-H1"),
        ("year", dt.datetime(2027, 1, 1, 7, 0, tzinfo=KST), "2026"),
    ],
)
def test_vat_reports_skip_a_period_not_whole_after_the_start(kind, when, label):
    result = _tick(schedules.vat_jobs_and_schedules[kind][1], when)
    assert not result.run_requests and label in result.skip_message
    assert partitions.vat_periods[kind].get_partition_keys(current_time=when) == []


@pytest.mark.parametrize(
    ("kind", "key", "label"),
    [("quarter", "2026-07-01", "2026-Q3"), ("half", "2026-07-01", "2026-H2"), ("year", "2027-01-01", "2027")],
)
def test_a_vat_partition_key_is_its_period(kind, key, label):
    assert partitions.report_period(kind, key) == label


def test_settlement_every_half_hour():
    assert schedules.settlement_every_30_minutes.cron_schedule == "2,32 * * * *"
    [request] = _tick(schedules.settlement_every_30_minutes, dt.datetime(2026, 3, 1, 0, 2, tzinfo=KST)).run_requests
    assert isinstance(request, RunRequest)


def test_days_run_helper_skips_a_range_before_the_start():
    assert isinstance(schedules.days_run(dt.date(2025, 1, 1), dt.date(2025, 1, 2), "k"), SkipReason)


# --- jobs against the sandbox ---------------------------------------------------------------


@contextlib.contextmanager
def _pipeline(tmp: Path, server=None):
    """A sandbox (`server`, else history 2026-02-07 .. 2026-03-18), env for the definitions, one instance.

    The sync's clock is the real one, long after the sandbox's days, so every day is final.
    """
    with server or make_sandbox(days=40, per_day=12) as sandbox, pytest.MonkeyPatch.context() as mp:
        mp.setenv("POINT3_API_URL", sandbox.url)
        mp.setenv("POINT3_SECRET_KEY", sandbox.key)
        mp.delenv("POINT3_SECRET_KEY_FILE", raising=False)
        mp.setenv("POINT3_WAREHOUSE", str(tmp / "warehouse" / "point3.duckdb"))
        mp.setenv("POINT3_REPORTS_DIR", str(tmp / "reports"))
        mp.setenv("POINT3_START_DATE", START)
        mp.delenv("POINT3_MERCHANTS", raising=False)
        with DagsterInstance.ephemeral() as instance:
            yield {"sandbox": sandbox, "instance": instance, "tmp": tmp}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    with _pipeline(tmp_path_factory.mktemp("dagster")) as made:
        yield made


def _run(pipeline, job: str, **kwargs):
    result = defs.resolve_job_def(job).execute_in_process(instance=pipeline["instance"], **kwargs)
    assert result.success
    return result


def _days(first: str, last: str, merchant: str = "default") -> dict[str, str]:
    """The tags of a run syncing one merchant's days first..last."""
    return {RANGE_START: f"{first}|{merchant}", RANGE_END: f"{last}|{merchant}", "point3/merchant": merchant}


def _sync(pipeline, first: str, last: str):
    """What the hourly schedule and the refresh sensor do for the merchant: its days, then its books."""
    synced = _run(pipeline, "sync_payments", tags=_days(first, last))
    refreshed = _run(pipeline, "refresh_books", partition_key="default")
    return synced, refreshed


def _metadata(result, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def _checks(result) -> dict[str, tuple[bool, AssetCheckSeverity, dict]]:
    return {
        e.asset_check_key.to_user_string(): (e.passed, e.severity, {k: v.value for k, v in e.metadata.items()})
        for e in result.get_asset_check_evaluations()
    }


def _warehouse(pipeline) -> Path:
    return pipeline["tmp"] / "warehouse" / "point3.duckdb"


@pytest.mark.slow
def test_a_week_then_the_month_and_its_reports(pipeline):
    week, books = _sync(pipeline, "2026-02-22", "2026-02-28")
    materialized = [e for e in week.get_asset_materialization_events() if e.asset_key.to_user_string() == "point3_payments"]
    assert sorted(e.partition for e in materialized) == [f"2026-02-{d}|default" for d in range(22, 29)]
    meta = _metadata(week, "point3_payments")
    assert meta["windows"] == 7 and meta["days"] == "2026-02-22..2026-02-28" and meta["merchant"] == "default"
    assert meta["new"] > 0 and meta["incomplete_days"] == "none" and meta["retries"] == 0
    assert {"records", "changed", "cancellations_detected", "already_cancelled_when_first_seen", "rejected", "sync_run_id"} <= set(meta)
    assert _metadata(books, "culture_vat_breakdown")["payment_count"] == meta["new"]
    assert _metadata(books, "payment_cancellations")["rows"] == meta["cancellations_detected"] + meta["already_cancelled_when_first_seen"]
    assert _metadata(books, "analyst_warehouse_copy")["size_bytes"] > 0
    checks = _checks(week) | _checks(books)
    assert checks["point3_payments:no_duplicate_signatures"][0]
    assert checks["payment_cancellations:no_duplicate_signatures"][0]
    assert checks["point3_payments:no_rejected_records"][1] == AssetCheckSeverity.WARN
    split = _metadata(books, "payment_tax_split")
    assert split["payments"] == meta["new"]
    assert split["taxable"] + split["mixed"] + split["exempt"] + split["unclassified"] + split["impossible_vat"] == split["payments"]
    with duckdb.connect(str(_warehouse(pipeline)), read_only=True) as conn:
        unclassified, impossible = conn.execute(
            "SELECT count(*) FILTER (WHERE tax_class = 'unclassified'), count(*) FILTER (WHERE tax_class = 'impossible_vat') "
            "FROM payment_tax_split"
        ).fetchone()
    assert (split["unclassified"], split["impossible_vat"]) == (unclassified, impossible)
    for name, expected in (("no_unclassified_payments", unclassified), ("no_impossible_vat", impossible),
                           ("no_declaration_conflicts", 0)):
        passed, severity, metadata = checks[f"payment_tax_split:{name}"]
        assert severity == AssetCheckSeverity.WARN and metadata["payments"] == expected and passed == (expected == 0)

    # The rest of February, then its reports: every day synced, so final.
    _sync(pipeline, "2026-02-01", "2026-02-21")
    _run(pipeline, "observe_settlement", partition_key="default")
    reports = _run(pipeline, "monthly_reports", partition_key="2026-02-01|default")
    tax = _metadata(reports, "monthly_tax_report")
    # every day synced; final only once no payment is unclassified (the demo has docs-shaped records)
    assert tax["days_synced"] == "28 / 28" and tax["version"] == 1
    assert tax["is_final"] is (tax["total_unclassified_count"] == 0)
    assert Path(tax["path"]).exists() and tax["total_sale_count"] > 0
    assert (pipeline["tmp"] / "reports" / "index.html").exists()
    assert _metadata(reports, "monthly_reconciliation_report")["is_final"] is True
    for key, (passed, _, metadata) in _checks(reports).items():
        assert passed, (key, metadata)

    # Nothing changed: rendering again keeps version 1.
    again = _run(pipeline, "monthly_reports", partition_key="2026-02-01|default")
    assert _metadata(again, "monthly_tax_report")["written"] is False


def _run_checks(books: dict[str, Path], *check_keys: str) -> dict[str, tuple[bool, AssetCheckSeverity, dict]]:
    """Invoke checks directly on a warehouse and reports folder ({"warehouse": ..., "reports": ...})."""
    from dagster import build_asset_check_context

    from dagster_project.checks import checks
    from dagster_project.resources import ReportsResource, WarehouseResource
    from dagster_project.warehouse_checks import BOOKS_CHECKS, PAYMENTS_CHECKS, evaluate
    from point3_pipeline.warehouse import Warehouse

    resources = {"warehouse": WarehouseResource(), "reports_dir": ReportsResource()}
    found = {}
    # The warehouse tables' checks, which their writing steps evaluate on the file they hold.
    in_step = {**PAYMENTS_CHECKS, **BOOKS_CHECKS}
    with Warehouse(books["warehouse"]).connect(read_only=True) as conn:
        for key, result in evaluate(conn, in_step, {k for k in in_step if k.to_user_string() in check_keys}).items():
            found[key.to_user_string()] = (result.passed, result.severity, {k: v.value for k, v in result.metadata.items()})
    with pytest.MonkeyPatch.context() as mp:  # the merchant `default` of the variables, on these books
        for name, value in {"POINT3_WAREHOUSE": books["warehouse"], "POINT3_REPORTS_DIR": books["reports"],
                            "POINT3_START_DATE": START, "POINT3_SECRET_KEY": "unused-by-checks",
                            "POINT3_API_URL": "http://127.0.0.1:9"}.items():
            mp.setenv(name, str(value))
        mp.delenv("POINT3_MERCHANTS", raising=False)
        for check in checks:
            keys = sorted(k.to_user_string() for k in check.check_keys)
            if set(keys) & set(check_keys):
                needed = {name: resources[name] for name in check.required_resource_keys if name in resources}
                results = check(build_asset_check_context(), **needed)
                # A check alone returns its result; a step of several yields one per check, naming it.
                for key, result in ([(keys[0], results)] if len(keys) == 1 else
                                    ((f"{r.asset_key.to_user_string()}:{r.check_name}", r) for r in results)):
                    if key in check_keys:
                        found[key] = (result.passed, result.severity, {k: v.value for k, v in result.metadata.items()})
    assert set(found) == set(check_keys)
    return found


def _own_copy(pipeline, tmp_path: Path) -> dict[str, Path]:
    """The module pipeline's warehouse and reports copied for one test to change as it likes,
    so no test changes what another reads."""
    source = _warehouse(pipeline)
    target = tmp_path / "warehouse" / source.name
    target.parent.mkdir(parents=True)
    for path in source.parent.glob(f"{source.name}*"):  # the file and its WAL, if any
        shutil.copyfile(path, target.with_name(path.name))
    shutil.copytree(pipeline["tmp"] / "reports", tmp_path / "reports")
    return {"warehouse": target, "reports": tmp_path / "reports"}


@pytest.fixture(scope="module")
def february(pipeline):
    """February synced and reported (a no-op when the end-to-end test did it already)."""
    _sync(pipeline, "2026-02-01", "2026-02-28")
    _run(pipeline, "monthly_reports", partition_key="2026-02-01|default")
    return pipeline


@pytest.mark.slow
def test_checks_fail_on_duplicates(february, tmp_path):
    books = _own_copy(february, tmp_path)
    with duckdb.connect(str(books["warehouse"])) as conn:
        conn.execute("INSERT INTO cancellations SELECT * FROM cancellations LIMIT 1")
        # payments has a primary key; a warehouse whose key was lost must still be caught.
        conn.execute("CREATE TABLE payments_without_key AS SELECT * FROM payments")
        conn.execute("DROP TABLE payments")
        conn.execute("ALTER TABLE payments_without_key RENAME TO payments")
        conn.execute("INSERT INTO payments SELECT * FROM payments LIMIT 2")
    checks = _run_checks(books, "payment_cancellations:no_duplicate_signatures", "point3_payments:no_duplicate_signatures")
    for key in checks:
        passed, severity, metadata = checks[key]
        assert not passed and severity == AssetCheckSeverity.ERROR
    assert checks["payment_cancellations:no_duplicate_signatures"][2]["duplicate_signatures"] == 1
    assert checks["point3_payments:no_duplicate_signatures"][2]["duplicate_signatures"] == 2
    # the module's warehouse, which the other tests read, still has its key and no duplicate
    with duckdb.connect(str(_warehouse(february)), read_only=True) as conn:
        constraints = conn.execute(
            "SELECT DISTINCT constraint_type FROM duckdb_constraints() WHERE table_name = 'payments'"
        ).fetchall()
        duplicates = conn.execute("SELECT count(*) - count(DISTINCT signature) FROM cancellations").fetchone()[0]
    assert {("PRIMARY KEY",), ("NOT NULL",)} <= set(constraints) and duplicates == 0


@pytest.mark.slow
def test_check_fails_when_a_final_report_misses_a_day(february, tmp_path):
    books = _own_copy(february, tmp_path)
    with duckdb.connect(str(books["warehouse"])) as conn:
        conn.execute("DELETE FROM sync_windows WHERE window_date = DATE '2026-02-14'")
    # the reconciliation: the demo's tax workbook is not final anyway (it has unclassified payments)
    passed, severity, metadata = _run_checks(books, "monthly_reconciliation_report:every_day_synced_if_final")[
        "monthly_reconciliation_report:every_day_synced_if_final"
    ]
    assert not passed and severity == AssetCheckSeverity.ERROR
    assert "2026-02-14" in metadata["final_but_days_missing"]


@pytest.mark.slow
def test_check_fails_when_a_workbook_was_tampered_with(february, tmp_path):
    books = _own_copy(february, tmp_path)
    path = next(books["reports"].rglob("point3-tax-2026-02-v1.xlsx"))
    wb = load_workbook(path)
    detail = wb["신고내역"]
    row = next(r for r in detail.iter_rows() if r[0].value == "매출")
    row[15].value += 1000  # a payment's total charge
    wb.save(path)
    passed, severity, metadata = _run_checks(books, "monthly_tax_report:totals_match_warehouse")[
        "monthly_tax_report:totals_match_warehouse"
    ]
    assert not passed and severity == AssetCheckSeverity.ERROR and metadata["problem_count"] >= 1


def _default_merchant_on(monkeypatch, warehouse: Path, reports: Path) -> None:
    """The merchant `default` of the variables, on this warehouse and reports folder."""
    monkeypatch.delenv("POINT3_MERCHANTS", raising=False)
    for name, value in {"POINT3_WAREHOUSE": warehouse, "POINT3_REPORTS_DIR": reports, "POINT3_START_DATE": START,
                        "POINT3_SECRET_KEY": "unused-offline", "POINT3_API_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(name, str(value))


def test_a_derived_table_that_cannot_be_rebuilt_fails_its_step_with_one_sentence(tmp_path, monkeypatch):
    from dagster import materialize

    from dagster_project.assets import derived_tables
    from dagster_project.resources import WarehouseResource
    from point3_pipeline.warehouse import Warehouse

    warehouse = Warehouse(tmp_path / "point3.duckdb")
    with warehouse.connect() as conn:
        conn.execute("DROP TABLE culture_expense_types")  # what culture_vat_daily is built from
    _default_merchant_on(monkeypatch, warehouse.path, tmp_path / "reports")
    result = materialize(
        [derived_tables], selection=["culture_vat_breakdown"], resources={"warehouse": WarehouseResource()},
        partition_key="default",
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    message = failure.step_failure_data.user_failure_data.description
    assert error.cls_name == "Failure"
    assert message.startswith("could not rebuild the derived table culture_vat_daily (")
    assert message.endswith("every derived table was left as it was before this refresh.")
    assert not result.get_asset_materialization_events()


@pytest.mark.parametrize(("portal", "link"), [
    ("https://reports.example.kr/", "https://reports.example.kr/m/default/versions/{kind}/2026-02"),
    (None, None),  # unset: no link
])
def test_a_report_links_to_its_page_in_the_portal(tmp_path, monkeypatch, portal, link):
    from dagster import materialize

    from dagster_project.assets import monthly_reconciliation_report, monthly_tax_report
    from dagster_project.resources import ReportsResource, WarehouseResource
    from tests.report_fixtures import Books, kst

    books = Books(tmp_path / "point3.duckdb")
    books.payment("feb", kst(2026, 2, 10, 12))
    books.synced(dt.date(2026, 2, 1), dt.date(2026, 2, 28), finished_at=kst(2026, 3, 1, 3))
    warehouse = books.refresh()
    _default_merchant_on(monkeypatch, warehouse.path, tmp_path / "reports")
    if portal is None:
        monkeypatch.delenv("POINT3_PORTAL_URL", raising=False)
    else:
        monkeypatch.setenv("POINT3_PORTAL_URL", portal)
    result = materialize(
        [monthly_tax_report, monthly_reconciliation_report], partition_key="2026-02-01|default",
        resources={"warehouse": WarehouseResource(), "reports_dir": ReportsResource(write_index=False)},
    )  # fmt: skip
    for asset, kind in (("monthly_tax_report", "tax"), ("monthly_reconciliation_report", "reconciliation")):
        metadata = _metadata(result, asset)
        assert metadata["version"] == 1
        assert metadata.get("portal") == (link and link.format(kind=kind))


@pytest.mark.slow
def test_a_vat_quarter_report_materializes_with_the_split_of_its_businesses(tmp_path, monkeypatch):
    """A sandbox around the Q2/Q3 boundary, the demo's businesses, then Q3's workbook."""
    from dagster import materialize

    from dagster_project.assets import vat_quarter_report
    from dagster_project.resources import ReportsResource, WarehouseResource
    from point3_pipeline import sync
    from point3_pipeline.client import Point3Client
    from point3_pipeline.sandbox import SandboxConfig, SandboxServer
    from point3_pipeline.warehouse import Warehouse
    from tests.conftest import FAST_RETRY, sandbox_first_day

    monkeypatch.setenv("POINT3_BUSINESSES", str(ROOT / "docs" / "demo-businesses.toml"))
    now = dt.datetime(2026, 7, 10, 15, 0, tzinfo=KST)
    warehouse = Warehouse(tmp_path / "point3.duckdb")
    with SandboxServer(SandboxConfig(seed=7, days=20, per_day=12, start_at=now, speed=0)) as sandbox:
        with Point3Client(sandbox.url, sandbox.key, retry=FAST_RETRY, page_size=100) as client:
            sync.sync_range(client, warehouse, sandbox_first_day(sandbox), now.date(), clock=sandbox.state.clock.now,
                            refresh_derived=True)
    _default_merchant_on(monkeypatch, warehouse.path, tmp_path / "reports")
    result = materialize(
        [vat_quarter_report], partition_key="2026-07-01|default",
        resources={"warehouse": WarehouseResource(), "reports_dir": ReportsResource()},
    )  # fmt: skip
    assert result.success
    meta = _metadata(result, "vat_quarter_report")
    assert Path(meta["path"]).exists() and "2026-Q3" in meta["path"] and meta["version"] == 1
    assert meta["is_final"] is False  # 10 of the quarter's 92 days synced
    with duckdb.connect(str(warehouse.path), read_only=True) as conn:
        expected = conn.execute(
            "SELECT sum(net_taxable_supply), sum(net_vat), sum(net_exempt_amount), sum(net_unclassified_amount), "
            "count(DISTINCT business_id) FROM tax_filing_daily WHERE filing_date BETWEEN DATE '2026-07-01' AND DATE '2026-09-30'"
        ).fetchone()
    assert (meta["split_taxable_supply"], meta["split_vat"], meta["split_exempt_amount"],
            meta["split_unclassified_amount"]) == tuple(expected[:4])  # fmt: skip
    assert expected[0] > 0 and expected[4] > 1  # taxable sales, several declared businesses
    assert (tmp_path / "reports" / "index.html").exists()


@pytest.fixture
def february_of_its_own(tmp_path):
    """A pipeline of its own with February synced and reported, for a test that syncs again."""
    with _pipeline(tmp_path) as own:
        _sync(own, "2026-02-01", "2026-02-28")
        _run(own, "monthly_reports", partition_key="2026-02-01|default")
        yield own


@pytest.mark.slow
def test_a_month_already_reported_is_rendered_again_when_its_days_change(february_of_its_own):
    from dagster import AssetKey, evaluate_automation_conditions

    february = february_of_its_own
    instance = february["instance"]
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0  # nothing changed since the reports
    # The daily sweep re-reads February's days (a late cancellation would land here).
    _sync(february, "2026-02-10", "2026-03-01")
    after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    requested = {
        (asset, partition)
        for asset in ("point3_payments", "payment_cancellations", "payment_tax_split", "culture_vat_breakdown",
                      "analyst_warehouse_copy", "monthly_tax_report", "monthly_reconciliation_report",
                      "settlement_balance_history", "vat_quarter_report", "vat_half_year_report", "vat_year_report")
        for partition in after.get_requested_partitions(AssetKey(asset))
    }  # fmt: skip
    # Only the reported month is re-rendered; the sync run refreshed the derived tables and copy itself.
    assert requested == {("monthly_tax_report", "2026-02-01|default"), ("monthly_reconciliation_report", "2026-02-01|default")}


@pytest.mark.slow
def test_a_vat_quarter_already_reported_is_rendered_again_when_its_days_change(tmp_path):
    from dagster import AssetKey, evaluate_automation_conditions

    from point3_pipeline.sandbox import SandboxConfig, SandboxServer

    july = SandboxServer(SandboxConfig(seed=7, days=20, per_day=12, start_at=dt.datetime(2026, 7, 10, 15, tzinfo=KST)))
    with _pipeline(tmp_path, july) as own:
        _sync(own, "2026-06-21", "2026-07-10")
        for key in ("2026-04-01", "2026-07-01"):
            _run(own, "vat_quarter_reports", partition_key=f"{key}|default")
        instance = own["instance"]
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0
        _sync(own, "2026-07-05", "2026-07-06")
        after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        requested = {
            (asset, partition)
            for asset in ("vat_quarter_report", "vat_half_year_report", "vat_year_report", "monthly_tax_report",
                          "monthly_reconciliation_report")
            for partition in after.get_requested_partitions(AssetKey(asset))
        }  # fmt: skip
        # Only Q3, whose days were read again; Q2 and the periods never rendered are left alone.
        assert requested == {("vat_quarter_report", "2026-07-01|default")}


def test_split_checks_warn_with_the_payments_behind_them(tmp_path):
    from point3_pipeline.warehouse import Warehouse
    from tests.tax_fixtures import insert_payment, shop

    warehouse = Warehouse(tmp_path / "w.duckdb", businesses=[shop("all_taxable")])
    with warehouse.connect() as conn:
        insert_payment(conn, "fine", 11000, 10000, 1000)
        insert_payment(conn, "book-with-fee", 15000, 14909, 91)  # mixed figures, declared all taxable
        insert_payment(conn, "docs-shaped", 12000, 0, 0)
        insert_payment(conn, "too-much-vat", 1550, 1277, 273)
    warehouse.refresh_derived()
    names = ("no_unclassified_payments", "no_impossible_vat", "no_declaration_conflicts")
    found = _run_checks({"warehouse": warehouse.path, "reports": tmp_path / "reports"},
                        *(f"payment_tax_split:{name}" for name in names))
    for name, signature, what in zip(names, ("docs-shaped", "too-much-vat", "book-with-fee"),
                                     ("unclassified", "impossible_vat", "declared_taxable_has_exempt_part")):
        passed, severity, metadata = found[f"payment_tax_split:{name}"]
        assert (passed, severity, metadata["payments"]) == (False, AssetCheckSeverity.WARN, 1)
        assert f"`{signature}`" in metadata["examples"] and f"({what})" in metadata["examples"]


@pytest.mark.slow
def test_a_merchants_sync_run_is_followed_by_its_refresh_run(pipeline):
    from dagster import build_run_status_sensor_context

    instance = pipeline["instance"]
    sensor = schedules.refresh_after_writes

    def requests_after(result):
        context = build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=result.get_run_success_event(), dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id), repository_def=defs.get_repository_def())
        return sensor(context)

    synced = _run(pipeline, "sync_payments", tags=_days("2026-02-01", "2026-02-02"))
    [request] = requests_after(synced)
    assert (request.partition_key, request.tags["point3/merchant"]) == ("default", "default")
    assert request.run_key == f"refresh-{synced.run_id}-default"
    refreshed = _run(pipeline, "refresh_books", partition_key="default")
    assert isinstance(requests_after(refreshed), SkipReason)  # a refresh asks for no refresh

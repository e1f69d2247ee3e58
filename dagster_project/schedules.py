"""Jobs and schedules, all on Korean time; every tick asks for one run per merchant.

A job targets assets of one partitioning, so the whole-table assets of a merchant (derived
tables, analysts' copy) are their own job, `refresh_books`, which the `refresh_after_writes`
sensor runs for a merchant after each successful run that wrote its warehouse. Every run
carries the point3/merchant tag: the run queue admits one run per merchant (dagster.yaml)
and starts them in the order asked, so a merchant's refresh follows its sync."""

import datetime as dt

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    DagsterRunStatus,
    RunRequest,
    RunStatusSensorContext,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    run_status_sensor,
    schedule,
)

from dagster_project.assets import MERCHANT_TAG
from dagster_project.partitions import HISTORY_START, MERCHANT_IDS, MERCHANTS, TIMEZONE, key, merchants_of_run
from point3_pipeline.models import KST
from point3_pipeline.periods import HALF, QUARTER, YEAR, Period
from point3_pipeline.sync import DEFAULT_SWEEP_DAYS

# The tags a single-run backfill carries: the run covers the whole range at once.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

sync_job = define_asset_job(
    "sync_payments", selection=AssetSelection.assets("point3_payments"),
    description="Sync a range of a merchant's days (one run per merchant); refresh_books follows.",
)
refresh_job = define_asset_job(
    "refresh_books",
    selection=AssetSelection.assets("payment_cancellations", "payment_tax_split", "culture_vat_breakdown",
                                    "analyst_warehouse_copy"),
    description="Rebuild a merchant's derived tables and publish its analysts' copy.",
)
settlement_job = define_asset_job("observe_settlement", selection=AssetSelection.assets("settlement_balance_history"))
reports_job = define_asset_job(
    "monthly_reports", selection=AssetSelection.assets("monthly_tax_report", "monthly_reconciliation_report"),
)


def _kst(context: ScheduleEvaluationContext) -> dt.datetime:
    return context.scheduled_execution_time.astimezone(KST)


def merchant_start(merchant_id: str) -> dt.date:
    """A merchant's first day as the code loaded it (a bad entry: the history's start)."""
    return next((m.start_date for m in MERCHANTS.merchants if m.id == merchant_id), HISTORY_START)


def days_run(first: dt.date, last: dt.date, run_key: str, merchant_id: str) -> RunRequest | SkipReason:
    """The run syncing one merchant's days first..last (clipped to its first day)."""
    first = max(first, merchant_start(merchant_id))
    if last < first:
        return SkipReason(f"{last} is before {merchant_id}'s first day ({merchant_start(merchant_id)}; "
                          "POINT3_START_DATE or its start_date in POINT3_MERCHANTS)")
    return RunRequest(
        run_key=f"{run_key}-{merchant_id}",
        tags={RANGE_START_TAG: str(key(merchant_id, first.isoformat())),
              RANGE_END_TAG: str(key(merchant_id, last.isoformat())), MERCHANT_TAG: merchant_id},
    )


def each_merchant(request) -> list[RunRequest] | SkipReason:
    """request(merchant_id) for every merchant: their runs, or why none is due."""
    found = [request(merchant_id) for merchant_id in MERCHANT_IDS]
    runs = [r for r in found if isinstance(r, RunRequest)]
    return runs or SkipReason("; ".join(r.skip_message or "" for r in found))


def merchant_run(merchant_id: str, run_key: str, time_key: str | None = None) -> RunRequest:
    """A run of one merchant's partition (merchant, or merchant x `time_key`)."""
    partition_key = merchant_id if time_key is None else str(key(merchant_id, time_key))
    return RunRequest(run_key=f"{run_key}-{merchant_id}", partition_key=partition_key, tags={MERCHANT_TAG: merchant_id})


# At :05 so the previous day's window, closed 30 minutes after midnight, is read whole at 01:05.
@schedule(
    job=sync_job, cron_schedule="5 * * * *", execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Today's and yesterday's payments, the derived tables and the analysts' copy.",
)  # fmt: skip
def recent_payments_hourly(context: ScheduleEvaluationContext):
    today = _kst(context).date()
    return each_merchant(lambda m: days_run(today - dt.timedelta(days=1), today, f"recent-{_kst(context):%Y-%m-%dT%H}", m))


# Late cancellations of older payments only show when their day is read again.
@schedule(
    job=sync_job, cron_schedule="30 3 * * *", execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description=f"Re-read the last {DEFAULT_SWEEP_DAYS} days as one run to catch late cancellations.",
)  # fmt: skip
def cancellation_sweep_daily(context: ScheduleEvaluationContext):
    today = _kst(context).date()
    return each_merchant(lambda m: days_run(today - dt.timedelta(days=DEFAULT_SWEEP_DAYS - 1), today, f"sweep-{today}", m))


# Just after point3's 30-minute balance refresh.
@schedule(
    job=settlement_job, cron_schedule="2,32 * * * *", execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="One observation of the settlement balance.",
)  # fmt: skip
def settlement_every_30_minutes(context: ScheduleEvaluationContext):
    return [merchant_run(m, f"settlement-{_kst(context):%Y-%m-%dT%H:%M}") for m in MERCHANT_IDS]


# 06:00 on the 1st: after the hourly runs have read the month's last day whole.
@schedule(
    job=reports_job, cron_schedule="0 6 1 * *", execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Last month's tax and reconciliation workbooks.",
)  # fmt: skip
def last_month_reports(context: ScheduleEvaluationContext):
    last_month = (_kst(context).date().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    if last_month < HISTORY_START:
        return SkipReason(f"{last_month:%Y-%m} does not lie whole after POINT3_START_DATE ({HISTORY_START})")
    return [merchant_run(m, f"reports-{last_month:%Y-%m}", last_month.isoformat()) for m in MERCHANT_IDS]


# Each VAT period's workbook, on the 1st after the period ends (korean-vat.md's VAT periods):
# the quarter at 06:30, the half-year at 06:45, the year at 07:00, after the 06:00 monthly run.
VAT_PERIOD_SCHEDULES = {
    QUARTER: ("vat_quarter_report", "30 6 1 1,4,7,10 *", "the quarter just ended (예정; 법인 확정)"),
    HALF: ("vat_half_year_report", "45 6 1 1,7 *", "the half-year just ended (확정)"),
    YEAR: ("vat_year_report", "0 7 1 1 *", "the year just ended (간이과세자, 사업장현황신고)"),
}


def last_period_run(kind: str, today: dt.date) -> list[RunRequest] | SkipReason:
    """The run for the `kind` period that ended before `today`, if it lies whole after the start."""
    period = Period.containing(kind, Period.containing(kind, today).first - dt.timedelta(days=1))
    if period.first < HISTORY_START:
        return SkipReason(f"{period.label} does not lie whole after POINT3_START_DATE ({HISTORY_START})")
    return [merchant_run(m, f"vat-{period.label}", period.first.isoformat()) for m in MERCHANT_IDS]


def _vat_period_job_and_schedule(kind: str):
    asset_name, cron, what = VAT_PERIOD_SCHEDULES[kind]
    job = define_asset_job(f"{asset_name}s", selection=AssetSelection.assets(asset_name))

    @schedule(
        name=f"last_{kind}_vat_report", job=job, cron_schedule=cron, execution_timezone=TIMEZONE,
        default_status=DefaultScheduleStatus.RUNNING, description=f"The VAT workbook of {what}.",
    )  # fmt: skip
    def last_period_report(context: ScheduleEvaluationContext):
        return last_period_run(kind, _kst(context).date())

    return job, last_period_report


vat_jobs_and_schedules = {kind: _vat_period_job_and_schedule(kind) for kind in VAT_PERIOD_SCHEDULES}


# Runs the automation conditions: months and VAT periods already reported whose payments
# changed (late cancellations found by the sweep), one run per merchant and period.
automation_sensor = AutomationConditionSensorDefinition(
    "point3_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)

WRITERS = AssetSelection.assets(
    "point3_payments", "settlement_balance_history", "monthly_tax_report", "monthly_reconciliation_report",
    "vat_quarter_report", "vat_half_year_report", "vat_year_report",
)


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS, request_job=refresh_job, default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="After a run that wrote a merchant's warehouse: its derived tables and analysts' copy.",
)
def refresh_after_writes(context: RunStatusSensorContext):
    run = context.dagster_run
    if run.job_name == refresh_job.name:
        return SkipReason("a refresh itself")
    selected = {k.to_user_string() for k in run.asset_selection or ()} or set(JOB_ASSETS.get(run.job_name, ()))
    if not selected & {k.to_user_string() for k in WRITERS.resolve(context.repository_def.asset_graph)}:
        return SkipReason(f"run {run.run_id} wrote no warehouse")
    return [merchant_run(m, f"refresh-{run.run_id}") for m in merchants_of_run(run.tags)]


jobs = [sync_job, refresh_job, settlement_job, reports_job, *(job for job, _ in vat_jobs_and_schedules.values())]
JOB_ASSETS = {
    sync_job.name: ["point3_payments"], settlement_job.name: ["settlement_balance_history"],
    reports_job.name: ["monthly_tax_report"],
    **{job.name: [VAT_PERIOD_SCHEDULES[kind][0]] for kind, (job, _) in vat_jobs_and_schedules.items()},
}
schedules = [
    recent_payments_hourly, cancellation_sweep_daily, settlement_every_30_minutes, last_month_reports,
    *(schedule_def for _, schedule_def in vat_jobs_and_schedules.values()),
]
sensors = [automation_sensor, refresh_after_writes]

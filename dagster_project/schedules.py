"""Jobs and schedules, all on Korean time. Every job ends with the analysts' copy."""

import datetime as dt

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from dagster_project.partitions import HISTORY_START, TIMEZONE
from point3_pipeline.models import KST
from point3_pipeline.periods import HALF, QUARTER, YEAR, Period
from point3_pipeline.sync import DEFAULT_SWEEP_DAYS

# The tags a single-run backfill carries: the run covers the whole range at once.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

COPY = AssetSelection.assets("analyst_warehouse_copy")

sync_job = define_asset_job(
    "sync_payments",
    selection=AssetSelection.assets("point3_payments", "payment_cancellations", "payment_tax_split", "culture_vat_breakdown")
    | COPY,
    description="Sync a range of days (one run), refresh the derived tables, publish the analysts' copy.",
)
settlement_job = define_asset_job(
    "observe_settlement", selection=AssetSelection.assets("settlement_balance_history") | COPY
)
reports_job = define_asset_job(
    "monthly_reports",
    selection=AssetSelection.assets("monthly_tax_report", "monthly_reconciliation_report") | COPY,
)


def _kst(context: ScheduleEvaluationContext) -> dt.datetime:
    return context.scheduled_execution_time.astimezone(KST)


def days_run(first: dt.date, last: dt.date, run_key: str) -> RunRequest | SkipReason:
    first = max(first, HISTORY_START)
    if last < first:
        return SkipReason(f"{last} is before POINT3_START_DATE ({HISTORY_START})")
    return RunRequest(
        run_key=run_key,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
    )


# At :05 so the previous day's window, closed 30 minutes after midnight, is read whole at 01:05.
@schedule(
    job=sync_job, cron_schedule="5 * * * *", execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Today's and yesterday's payments, the derived tables and the analysts' copy.",
)  # fmt: skip
def recent_payments_hourly(context: ScheduleEvaluationContext):
    today = _kst(context).date()
    return days_run(today - dt.timedelta(days=1), today, f"recent-{_kst(context):%Y-%m-%dT%H}")


# Late cancellations of older payments only show when their day is read again.
@schedule(
    job=sync_job, cron_schedule="30 3 * * *", execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description=f"Re-read the last {DEFAULT_SWEEP_DAYS} days as one run to catch late cancellations.",
)  # fmt: skip
def cancellation_sweep_daily(context: ScheduleEvaluationContext):
    today = _kst(context).date()
    return days_run(today - dt.timedelta(days=DEFAULT_SWEEP_DAYS - 1), today, f"sweep-{today}")


# Just after point3's 30-minute balance refresh.
@schedule(
    job=settlement_job, cron_schedule="2,32 * * * *", execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="One observation of the settlement balance.",
)  # fmt: skip
def settlement_every_30_minutes(context: ScheduleEvaluationContext):
    return RunRequest(run_key=f"settlement-{_kst(context):%Y-%m-%dT%H:%M}")


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
    return RunRequest(run_key=f"reports-{last_month:%Y-%m}", partition_key=last_month.isoformat())


# Each VAT period's workbook, on the 1st after the period ends (korean-vat.md's VAT periods):
# the quarter at 06:30, the half-year at 06:45, the year at 07:00, after the 06:00 monthly run.
VAT_PERIOD_SCHEDULES = {
    QUARTER: ("vat_quarter_report", "30 6 1 1,4,7,10 *", "the quarter just ended (예정; 법인 확정)"),
    HALF: ("vat_half_year_report", "45 6 1 1,7 *", "the half-year just ended (확정)"),
    YEAR: ("vat_year_report", "0 7 1 1 *", "the year just ended (간이과세자, 사업장현황신고)"),
}


def last_period_run(kind: str, today: dt.date) -> RunRequest | SkipReason:
    """The run for the `kind` period that ended before `today`, if it lies whole after the start."""
    period = Period.containing(kind, Period.containing(kind, today).first - dt.timedelta(days=1))
    if period.first < HISTORY_START:
        return SkipReason(f"{period.label} does not lie whole after POINT3_START_DATE ({HISTORY_START})")
    return RunRequest(run_key=f"vat-{period.label}", partition_key=period.first.isoformat())


def _vat_period_job_and_schedule(kind: str):
    asset_name, cron, what = VAT_PERIOD_SCHEDULES[kind]
    job = define_asset_job(f"{asset_name}s", selection=AssetSelection.assets(asset_name) | COPY)

    @schedule(
        name=f"last_{kind}_vat_report", job=job, cron_schedule=cron, execution_timezone=TIMEZONE,
        default_status=DefaultScheduleStatus.RUNNING, description=f"The VAT workbook of {what}.",
    )  # fmt: skip
    def last_period_report(context: ScheduleEvaluationContext):
        return last_period_run(kind, _kst(context).date())

    return job, last_period_report


vat_jobs_and_schedules = {kind: _vat_period_job_and_schedule(kind) for kind in VAT_PERIOD_SCHEDULES}


# Runs the automation conditions: derived tables and the copy after writes made outside the
# jobs above, and months already reported whose payments changed (late cancellations).
automation_sensor = AutomationConditionSensorDefinition(
    "point3_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)

jobs = [sync_job, settlement_job, reports_job, *(job for job, _ in vat_jobs_and_schedules.values())]
schedules = [
    recent_payments_hourly, cancellation_sweep_daily, settlement_every_30_minutes, last_month_reports,
    *(schedule_def for _, schedule_def in vat_jobs_and_schedules.values()),
]

"""Jobs and schedules, all on Korean time; every tick asks for ONE run covering every merchant.

A run's steps do their merchants at once on threads (assets.for_each_merchant_of), so a tick
costs one run process however many merchants there are, where one run per merchant paid
Dagster's start-up (~3.5 s CPU) fifty times an hour. A job targets assets of one partitioning,
so the whole-table assets of a merchant (derived tables, analysts' copy) are their own job,
`refresh_books`, which the `refresh_after_writes` sensor runs after each run that wrote, over
the merchants that run materialized. A run of several merchants carries point3/merchant=all,
one of a single merchant its id: the run queue admits one run per value (dagster.yaml) and
starts them in the order asked, so a refresh follows its sync. The monthly and VAT reports
stay one run per merchant: their assets render one period key (a range cannot name it), and
they tick once a month."""

import datetime as dt

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    RunStatusSensorContext,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    run_status_sensor,
    schedule,
)

from dagster_project.assets import ALL_MERCHANTS, MERCHANT_TAG
from dagster_project.partitions import HISTORY_START, MERCHANT_IDS, TIMEZONE, key, merchant_of
from point3_pipeline.models import KST
from point3_pipeline.periods import HALF, QUARTER, YEAR, Period
from point3_pipeline.sync import DEFAULT_SWEEP_DAYS

# The tags a single-run backfill carries: the run covers the whole range at once.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

sync_job = define_asset_job(
    "sync_payments", selection=AssetSelection.assets("point3_payments"),
    description="Sync a range of days of a range of merchants (one run for all); refresh_books follows.",
)
refresh_job = define_asset_job(
    "refresh_books",
    selection=AssetSelection.assets("payment_cancellations", "payment_tax_split", "culture_vat_breakdown",
                                    "analyst_warehouse_copy"),
    description="Rebuild merchants' derived tables and publish their analysts' copies.",
)
settlement_job = define_asset_job("observe_settlement", selection=AssetSelection.assets("settlement_balance_history"))
reports_job = define_asset_job(
    "monthly_reports", selection=AssetSelection.assets("monthly_tax_report", "monthly_reconciliation_report"),
)


def _kst(context: ScheduleEvaluationContext) -> dt.datetime:
    return context.scheduled_execution_time.astimezone(KST)


def run_tags(ids: list[str]) -> dict[str, str]:
    """The queue's tag: a run of one merchant names it, a run of several is `all`."""
    return {MERCHANT_TAG: ids[0] if len(ids) == 1 else ALL_MERCHANTS}


def days_run(first: dt.date, last: dt.date, run_key: str, ids: list[str] = MERCHANT_IDS) -> RunRequest | SkipReason:
    """One run syncing days first..last of the merchants `ids` (consecutive in file order): the
    range from the first merchant's first day to the last one's last day, starting no earlier
    than the history; each merchant's step clips it to that merchant's own first day."""
    first = max(first, HISTORY_START)
    if last < first:
        return SkipReason(f"{last} is before the history's first day ({HISTORY_START}; POINT3_START_DATE "
                          "or the earliest start_date in POINT3_MERCHANTS)")
    return RunRequest(
        run_key=f"{run_key}-{_span(ids)}",
        tags={RANGE_START_TAG: str(key(ids[0], first.isoformat())), RANGE_END_TAG: str(key(ids[-1], last.isoformat())),
              **run_tags(ids)},
    )


def merchants_run(run_key: str, ids: list[str] = MERCHANT_IDS) -> RunRequest:
    """One run of a merchant-partitioned job over the merchants `ids` (consecutive in file order)."""
    if len(ids) == 1:
        return merchant_run(ids[0], run_key)
    return RunRequest(run_key=f"{run_key}-{_span(ids)}",
                      tags={RANGE_START_TAG: ids[0], RANGE_END_TAG: ids[-1], **run_tags(ids)})


def _span(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"


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
    return merchants_run(f"settlement-{_kst(context):%Y-%m-%dT%H:%M}")


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


def refresh_requests(context: RunStatusSensorContext) -> list[RunRequest] | SkipReason:
    """The refresh runs after a run that wrote: over the merchants whose partitions it
    materialized (a many-merchant run that failed for some merchants still wrote the others'),
    one run per block of them consecutive in file order."""
    run = context.dagster_run
    if run.job_name == refresh_job.name:
        return SkipReason("a refresh itself")
    selected = {k.to_user_string() for k in run.asset_selection or ()} or set(JOB_ASSETS.get(run.job_name, ()))
    if not selected & {k.to_user_string() for k in WRITERS.resolve(context.repository_def.asset_graph)}:
        return SkipReason(f"run {run.run_id} wrote no warehouse")
    blocks = consecutive(written_merchants(context.instance, run.run_id))
    return [merchants_run(f"refresh-{run.run_id}", block) for block in blocks] or SkipReason(
        f"run {run.run_id} materialized no merchant's partition")


def written_merchants(instance: DagsterInstance, run_id: str) -> list[str]:
    """The merchants whose partitions the run materialized, in file order."""
    events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    found = {merchant_of(e.asset_materialization.partition) for e in events if e.asset_materialization.partition}
    return [id_ for id_ in MERCHANT_IDS if id_ in found]


def consecutive(ids: list[str]) -> list[list[str]]:
    """`ids` (in file order) as blocks of merchants next to each other in the file."""
    blocks: list[list[str]] = []
    for id_ in ids:
        if blocks and MERCHANT_IDS.index(blocks[-1][-1]) + 1 == MERCHANT_IDS.index(id_):
            blocks[-1].append(id_)
        else:
            blocks.append([id_])
    return blocks


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS, request_job=refresh_job, default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="After a run that wrote merchants' warehouses: their derived tables and analysts' copies.",
)
def refresh_after_writes(context: RunStatusSensorContext):
    return refresh_requests(context)


@run_status_sensor(
    run_status=DagsterRunStatus.FAILURE, request_job=refresh_job, default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="After a many-merchant run that failed for some merchants: the others' refresh.",
)
def refresh_after_partial_writes(context: RunStatusSensorContext):
    return refresh_requests(context)


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
sensors = [automation_sensor, refresh_after_writes, refresh_after_partial_writes]

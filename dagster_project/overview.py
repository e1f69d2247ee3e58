"""Which merchants are behind: one asset over every merchant, for the operator's glance.

Not partitioned: it is the firm's view across merchants. Each materialization reads every
merchant's status (its warehouse, or its published copy while a run writes it; never waiting
for a writer) and records, per merchant, the last day synced whole and how many days that is
behind today (KST), as a table and as one `lag_days/<id>` number each, which the asset's
page plots over time. Its check warns naming the merchants behind or failing.
"""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    asset_check,
    define_asset_job,
)

from dagster_project.partitions import TIMEZONE
from point3_pipeline.config import kst_today
from point3_pipeline.merchants import load_merchants
from point3_pipeline import fleet
from point3_pipeline.status import MerchantStatus, merchant_status

# Yesterday is final once its window closes (00:30 KST) and the next hourly run reads it: a
# merchant whose last whole day is older than this is behind.
ALLOWED_LAG_DAYS = 1


def lag_days(status: MerchantStatus, today: dt.date) -> int | None:
    """Days from the merchant's last whole day to today; None before its first."""
    return None if status.last_day is None else (today - status.last_day).days


def overview(statuses: list[MerchantStatus], bad_entries: list[str], today: dt.date) -> dict:
    """The asset's metadata: a table, the count behind, and one lag number per merchant."""
    rows = ["| merchant | last whole day | lag (days) | last run | state |", "| --- | --- | --- | --- | --- |"]
    late_ids = [line.split(":")[0] for line in behind(statuses, today)]
    for status in statuses:
        lag = lag_days(status, today)
        late = status.merchant_id in late_ids
        state = "FAILING: " + "; ".join(status.failing) if status.failing else ("behind" if late else "ok")
        rows.append(f"| {status.merchant_id} | {status.last_day or 'none'} | {'-' if lag is None else lag} | "
                    f"{status.last_run or 'none yet'} | {state} |")
    rows += [f"| {entry} | - | - | - | FAILING: bad entry in the merchants file |" for entry in bad_entries]
    return {
        "merchants": len(statuses) + len(bad_entries),
        "merchants_behind_or_failing": len(late_ids) + len(bad_entries),
        "behind_or_failing": ", ".join(late_ids + bad_entries) or "none",
        "by_merchant": MetadataValue.md("\n".join(rows)),
        **{f"lag_days/{s.merchant_id}": lag_days(s, today) for s in statuses if s.last_day is not None},
    }


def read_statuses() -> tuple[list[MerchantStatus], list[str]]:
    """Every merchant's status (a few at a time), and the entries that have none, named."""
    merchants = load_merchants()
    outcomes = fleet.run_each(merchants.merchants, merchant_status)
    unreadable = [f"{o.merchant_id} ({o.error})" for o in outcomes if not o.ok]
    return [o.value for o in outcomes if o.ok], [e.entry for e in merchants.errors] + unreadable


def behind(statuses: list[MerchantStatus], today: dt.date) -> list[str]:
    """'<id>: why' for each merchant behind or failing."""
    found = []
    for status in statuses:
        lag = lag_days(status, today)
        if status.failing:
            found.append(f"{status.merchant_id}: " + "; ".join(status.failing))
        elif lag is None or lag > ALLOWED_LAG_DAYS:
            found.append(f"{status.merchant_id}: last whole day {status.last_day or 'none'}")
    return found


@asset(
    group_name="point3_fleet",
    kinds={"duckdb"},
    description="Every merchant's last day synced whole and its lag behind today, read from its books.",
)
def merchants_overview() -> MaterializeResult:
    statuses, bad = read_statuses()
    return MaterializeResult(metadata=overview(statuses, bad, kst_today()))


@asset_check(asset=merchants_overview, description="No merchant more than a day behind, none failing.")
def no_merchant_behind() -> AssetCheckResult:
    statuses, bad = read_statuses()
    found = behind(statuses, kst_today()) + [f"{entry}: FAILING" for entry in bad]
    return AssetCheckResult(
        passed=not found,
        severity=AssetCheckSeverity.WARN,
        metadata={"merchants_behind_or_failing": len(found),
                  "merchants": MetadataValue.md("\n".join(f"- {x}" for x in found) or "none")},
    )


overview_job = define_asset_job("merchants_overview_job", selection=[merchants_overview])
# At :50, after the hourly runs of :05 have had their time.
overview_hourly = ScheduleDefinition(
    name="merchants_overview_hourly", job=overview_job, cron_schedule="50 * * * *", execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING, description="Which merchants are behind, every hour.",
)

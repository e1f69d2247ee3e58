"""Daily, monthly and VAT-period partitions in Korean time, from POINT3_START_DATE (read when the code loads)."""

import datetime as dt

from dagster import (
    DailyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
)

from point3_pipeline import config
from point3_pipeline.periods import HALF, QUARTER, YEAR, Period

TIMEZONE = "Asia/Seoul"

HISTORY_START = config.start_date()  # ConfigError naming POINT3_START_DATE when unset

# end_offset=1 keeps today's (still open) day a partition, so the hourly run can read it.
daily_partitions = DailyPartitionsDefinition(
    start_date=HISTORY_START.isoformat(), timezone=TIMEZONE, end_offset=1
)
# A month is a partition once it is over, from the first month the history covers whole: a
# month starting before POINT3_START_DATE could never have every day synced, so never be final.
monthly_partitions = MonthlyPartitionsDefinition(start_date=HISTORY_START.isoformat(), timezone=TIMEZONE)
# A month's (or VAT period's) report rests on all of its days.
month_to_days = TimeWindowPartitionMapping()


def report_month(partition_key: str) -> str:
    """'2026-02-01' (the monthly partition key) -> '2026-02' (what the report functions take)."""
    return partition_key[:7]


# The VAT periods (korean-vat.md): quarters for 예정 (and corporations' 확정), half-years for
# individuals' 확정, the year for 간이과세자 and 사업장현황신고. Time windows rather than a static
# set: a period becomes a partition by itself once it is over (no code reload, no sensor adding
# keys), backfills pick ranges in the UI, and the daily partitions map onto them by time. As
# with months, only periods lying whole after POINT3_START_DATE (the first cron tick at or
# after it), since an earlier one could never be final. Keys are the period's first day.
VAT_PERIOD_CRONS = {QUARTER: "0 0 1 1,4,7,10 *", HALF: "0 0 1 1,7 *", YEAR: "0 0 1 1 *"}
vat_period_partitions = {
    kind: TimeWindowPartitionsDefinition(
        cron_schedule=cron, start=HISTORY_START.isoformat(), timezone=TIMEZONE, fmt="%Y-%m-%d"
    )
    for kind, cron in VAT_PERIOD_CRONS.items()
}


def report_period(kind: str, partition_key: str) -> str:
    """('quarter', '2026-07-01') -> '2026-Q3': the label the report functions take."""
    return Period.containing(kind, dt.date.fromisoformat(partition_key)).label

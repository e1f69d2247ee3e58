"""Daily and monthly partitions in Korean time, from POINT3_START_DATE (read when the code loads)."""

from dagster import DailyPartitionsDefinition, MonthlyPartitionsDefinition, TimeWindowPartitionMapping

from point3_pipeline import config

TIMEZONE = "Asia/Seoul"

HISTORY_START = config.start_date()  # ConfigError naming POINT3_START_DATE when unset

# end_offset=1 keeps today's (still open) day a partition, so the hourly run can read it.
daily_partitions = DailyPartitionsDefinition(
    start_date=HISTORY_START.isoformat(), timezone=TIMEZONE, end_offset=1
)
# A month is a partition once it is over, from the first month the history covers whole: a
# month starting before POINT3_START_DATE could never have every day synced, so never be final.
monthly_partitions = MonthlyPartitionsDefinition(start_date=HISTORY_START.isoformat(), timezone=TIMEZONE)
# A month's report rests on all of its days.
month_to_days = TimeWindowPartitionMapping()


def report_month(partition_key: str) -> str:
    """'2026-02-01' (the monthly partition key) -> '2026-02' (what the report functions take)."""
    return partition_key[:7]

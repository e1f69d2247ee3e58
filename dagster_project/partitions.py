"""Partitions: merchant x (day, month or VAT period), in Korean time.

Merchants are a static dimension read from the merchants file (POINT3_MERCHANTS) when the code
loads; without the file, the one merchant `default` of the POINT3_* variables (its first day
from POINT3_START_DATE, as before). Static rather than dynamic partitions added by a sensor:
a merchant is added by editing the file and its key file, a deliberate act an operator
follows with a code reload (the webserver's "Reload" or a code-server restart), and the
partitions then never disagree with the file each step reads; a sensor would add partitions
up to a minute late and could never remove one without losing its history in the UI.
"""

import datetime as dt
from collections.abc import Iterable, Sequence

from dagster import (
    DailyPartitionsDefinition,
    DimensionPartitionMapping,
    IdentityPartitionMapping,
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
)

from point3_pipeline import config
from point3_pipeline.merchants import _SLUG, Merchants, load_merchants
from point3_pipeline.periods import HALF, QUARTER, YEAR, Period

TIMEZONE = "Asia/Seoul"
MERCHANT = "merchant"  # the dimension names; a multi-partition key reads "<date>|<merchant>"
DATE = "date"


def merchant_ids(merchants: Merchants) -> list[str]:
    """Every merchant with an id, good or not: a bad entry is a partition whose runs fail with
    its sentence, so the operator sees it failing rather than missing."""
    named = [e.entry for e in merchants.errors if _SLUG.match(e.entry)]
    return [m.id for m in merchants.merchants] + [i for i in named if i not in {m.id for m in merchants.merchants}]


def history_start(merchants: Merchants) -> dt.date:
    """The time dimensions start at the earliest merchant's first day (POINT3_START_DATE
    without a merchants file); a later merchant's earlier days are skipped by its steps."""
    if not merchants.merchants:
        return config.start_date()  # ConfigError naming POINT3_START_DATE when unset
    return min(m.start_date for m in merchants.merchants)


MERCHANTS = load_merchants()  # the file's own mistakes (not TOML, no root) stop the load with one sentence
MERCHANT_IDS = merchant_ids(MERCHANTS) or ["default"]
HISTORY_START = history_start(MERCHANTS)

merchant_partitions = StaticPartitionsDefinition(MERCHANT_IDS)


def by_merchant(time_partitions: TimeWindowPartitionsDefinition) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({MERCHANT: merchant_partitions, DATE: time_partitions})


# end_offset=1 keeps today's (still open) day a partition, so the hourly run can read it.
days = DailyPartitionsDefinition(start_date=HISTORY_START.isoformat(), timezone=TIMEZONE, end_offset=1)
daily_partitions = by_merchant(days)
# A month is a partition once it is over, from the first month the history covers whole: a
# month starting before the history could never have every day synced, so never be final.
months = MonthlyPartitionsDefinition(start_date=HISTORY_START.isoformat(), timezone=TIMEZONE)
monthly_partitions = by_merchant(months)

# A merchant's month (or VAT period) rests on all of that merchant's days...
month_to_days = MultiPartitionMapping({
    MERCHANT: DimensionPartitionMapping(MERCHANT, IdentityPartitionMapping()),
    DATE: DimensionPartitionMapping(DATE, TimeWindowPartitionMapping()),
})
# ...and a merchant's whole-table assets on every partition of that merchant.
same_merchant = MultiToSingleDimensionPartitionMapping(partition_dimension_name=MERCHANT)


def report_month(partition_key: str) -> str:
    """'2026-02-01|arthall' (or the date alone) -> '2026-02' (what the report functions take)."""
    return time_key(partition_key)[:7]


# The VAT periods (korean-vat.md): quarters for 예정 (and corporations' 확정), half-years for
# individuals' 확정, the year for 간이과세자 and 사업장현황신고. Time windows rather than a static
# set: a period becomes a partition by itself once it is over (no code reload, no sensor adding
# keys), backfills pick ranges in the UI, and the daily partitions map onto them by time. As
# with months, only periods lying whole after the history's start (the first cron tick at or
# after it), since an earlier one could never be final. Keys are the period's first day.
VAT_PERIOD_CRONS = {QUARTER: "0 0 1 1,4,7,10 *", HALF: "0 0 1 1,7 *", YEAR: "0 0 1 1 *"}
vat_periods = {
    kind: TimeWindowPartitionsDefinition(
        cron_schedule=cron, start=HISTORY_START.isoformat(), timezone=TIMEZONE, fmt="%Y-%m-%d"
    )
    for kind, cron in VAT_PERIOD_CRONS.items()
}
vat_period_partitions = {kind: by_merchant(p) for kind, p in vat_periods.items()}


def report_period(kind: str, partition_key: str) -> str:
    """('quarter', '2026-07-01|arthall') -> '2026-Q3': the label the report functions take."""
    return Period.containing(kind, dt.date.fromisoformat(time_key(partition_key))).label


def key(merchant_id: str, time: str) -> MultiPartitionKey:
    return MultiPartitionKey({MERCHANT: merchant_id, DATE: time})


def time_key(partition_key: str) -> str:
    return partition_key.split("|")[0]


def merchant_of(partition_key: str) -> str:
    """The merchant of a multi-partition key ('<date>|<merchant>') or of a merchant key."""
    return partition_key.split("|")[-1]


def days_by_merchant(partition_keys: Iterable[str]) -> dict[str, list[dt.date]]:
    """The days of each merchant among a run's daily partition keys, merchants in file order."""
    found: dict[str, list[dt.date]] = {}
    for partition_key in partition_keys:
        found.setdefault(merchant_of(partition_key), []).append(dt.date.fromisoformat(time_key(partition_key)))
    order = {id_: n for n, id_ in enumerate(MERCHANT_IDS)}
    return {id_: sorted(found[id_]) for id_ in sorted(found, key=lambda i: order.get(i, len(order)))}


def merchants_of_run(tags: dict[str, str]) -> Sequence[str]:
    """The merchants a run covers, from its partition tags: one partition, or a range (the
    merchants between the range's two ends, in file order)."""
    single = tags.get("dagster/partition")
    if single is not None:
        return [merchant_of(single)]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if start is None or end is None:
        return []
    first, last = MERCHANT_IDS.index(merchant_of(start)), MERCHANT_IDS.index(merchant_of(end))
    return MERCHANT_IDS[min(first, last): max(first, last) + 1]

"""Asset checks of the reports: what an operator must see before trusting the workbooks, per merchant.

The warehouse tables' checks run in the steps writing them (warehouse_checks). A check here
runs in the run of its asset and checks that run's merchant (its metadata names it):
the checks are not themselves partitioned because a partitioned check has no result in a run
over a range of partitions (every backfill and scheduled sync is one), and a merchant's books
are checked whole anyway. A run over several merchants checks each and fails naming them.
"""

from collections.abc import Callable
from typing import TypeVar

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    asset_check,
)
from dagster._core.errors import DagsterInvalidPropertyError

from dagster_project.assets import (
    reconciliation_terms,
    monthly_reconciliation_report,
    monthly_tax_report,
)
from dagster_project.partitions import merchants_of_run
from dagster_project.resources import ReportsResource, WarehouseResource
from dagster_project.warehouse_checks import bullets, combined
from point3_pipeline import fleet, reports, summaries
from point3_pipeline.reports import reconciliation
from point3_pipeline.merchants import DEFAULT_ID
from point3_pipeline.sync import kst_now

T = TypeVar("T")


def each_merchant(context: AssetCheckExecutionContext, check: Callable[[str], AssetCheckResult]) -> AssetCheckResult:
    """`check(merchant_id)` for the run's merchants: its result for one, for several one result
    that passes only if all do, with the failing merchants and their figures."""
    return combined(_on_each(context, check))


def _on_each(context: AssetCheckExecutionContext, work: Callable[[str], T]) -> dict[str, T]:
    ids = merchants_of_run(_run_tags(context)) or [DEFAULT_ID]
    # Each merchant's check opens its own file: several at once, as their steps run them.
    with fleet.MerchantPool(fleet.max_parallel(), len(ids), thread_name_prefix="point3-check") as pool:
        return dict(zip(ids, pool.map(work, ids)))


def _run_tags(context: AssetCheckExecutionContext) -> dict[str, str]:
    try:
        return dict(context.run.tags)
    except DagsterInvalidPropertyError:  # invoked directly (tests): no run, the merchant `default`
        return {}


def _finality_result(warehouse: WarehouseResource, kind: str, merchant_id: str) -> AssetCheckResult:
    with warehouse.get(merchant_id).connect(read_only=True) as conn:
        finality = summaries.report_finality(conn, kind, kst_now().date())
    return AssetCheckResult(
        passed=not finality.final_but_days_missing and not finality.not_final,
        # A report calling itself final over missing days is wrong; one saying "not final" is honest.
        severity=AssetCheckSeverity.ERROR if finality.final_but_days_missing else AssetCheckSeverity.WARN,
        metadata={
            "months_reported": finality.months_reported,
            "final_but_days_missing": bullets(finality.final_but_days_missing),
            "not_final": bullets(finality.not_final),
        },
    )


def _totals_result(warehouse: WarehouseResource, reports_dir: ReportsResource, kind: str,
                   merchant_id: str) -> AssetCheckResult:
    wh, folder = warehouse.get(merchant_id), reports_dir.path(merchant_id)
    with wh.connect(read_only=True) as conn:
        paths = [folder / version.file_name for version in summaries.latest_reports(conn, kind).values()]
    problems = [
        problem
        for path in paths
        for problem in (reports.verify_report(wh, path) if path.exists() else [f"{path} is missing"])
    ]
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"workbooks_checked": len(paths), "problem_count": len(problems), "problems": bullets(problems)},
    )


# The report checks cover every month the merchant reported (the latest version of each).
def _report_checks(report, kind: str) -> list[AssetChecksDefinition]:
    @asset_check(
        asset=report, name="every_day_synced_if_final",
        description="A report is final only if every day of its month has a complete sync taken after the day.",
    )  # fmt: skip
    def every_day_synced(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        return each_merchant(context, lambda m: _finality_result(warehouse, kind, m))

    @asset_check(
        asset=report, name="totals_match_warehouse",
        description="Each month's latest workbook shows the figures the warehouse recorded for its version.",
    )  # fmt: skip
    def totals_match(context: AssetCheckExecutionContext, warehouse: WarehouseResource,
                     reports_dir: ReportsResource) -> AssetCheckResult:
        return each_merchant(context, lambda m: _totals_result(warehouse, reports_dir, kind, m))

    return [every_day_synced, totals_match]


def _reported_months(warehouse: WarehouseResource, merchant_id: str):
    """The merchant's reconciliation terms and its reported months' roll-forwards under them."""
    terms = reconciliation_terms(merchant_id)
    with warehouse.get(merchant_id).connect(read_only=True) as conn:
        return terms, reconciliation.check_reported_months(conn, terms)


@asset_check(
    asset=monthly_reconciliation_report,
    description="Each reported month's unexplained balance change is within POINT3_UNEXPLAINED_THRESHOLD_WON.",
)  # fmt: skip
def unexplained_within_threshold(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    def check(merchant_id: str) -> AssetCheckResult:
        terms, months = _reported_months(warehouse, merchant_id)
        beyond = [m for m in months if abs(m.unexplained) > terms.unexplained_threshold]
        return AssetCheckResult(
            passed=not beyond,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "threshold_won": terms.unexplained_threshold,
                "months_checked": len(months),
                "months_beyond": bullets([f"{m.month}: {m.unexplained:+,} won unexplained" for m in beyond]),
            },
        )

    return each_merchant(context, check)


@asset_check(
    asset=monthly_reconciliation_report,
    description="Every payout has its bank deposit within POINT3_PAYOUT_DEPOSIT_DAYS of the latest deposits import.",
)  # fmt: skip
def payouts_have_deposits(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    def check(merchant_id: str) -> AssetCheckResult:
        terms, months = _reported_months(warehouse, merchant_id)
        overdue = [(m.month, p) for m in months for p in m.overdue]
        return AssetCheckResult(
            passed=not overdue,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "overdue_after_days": terms.deposit_overdue_days,
                "payouts_without_deposit": len(overdue),
                "payouts": bullets([f"{month}: {p.amount:,} won, left the balance by {p.by:%Y-%m-%d %H:%M} KST"
                                     for month, p in overdue]),
            },
        )

    return each_merchant(context, check)


checks = [
    *_report_checks(monthly_tax_report, "tax"),
    *_report_checks(monthly_reconciliation_report, "reconciliation"),
    unexplained_within_threshold,
    payouts_have_deposits,
]

"""Asset checks: what an operator must see before trusting the books, per merchant.

A check runs in the run of its asset and checks that run's merchant (its metadata names it):
the checks are not themselves partitioned because a partitioned check has no result in a run
over a range of partitions (every backfill and scheduled sync is one), and a merchant's books
are checked whole anyway. A run over several merchants checks each and fails naming them.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    MetadataValue,
    asset_check,
)
from dagster._core.errors import DagsterInvalidPropertyError

from dagster_project.assets import (
    reconciliation_terms,
    monthly_reconciliation_report,
    monthly_tax_report,
    point3_payments,
)
from dagster_project.partitions import merchants_of_run
from dagster_project.resources import ReportsResource, WarehouseResource
from point3_pipeline import fleet, reports, summaries
from point3_pipeline.reports import reconciliation
from point3_pipeline.merchants import DEFAULT_ID
from point3_pipeline.sync import kst_now


def _bullets(lines: list[str]) -> MetadataValue:
    return MetadataValue.md("\n".join(f"- {line}" for line in lines[:20]) or "none")


def each_merchant(context: AssetCheckExecutionContext, check: Callable[[str], AssetCheckResult]) -> AssetCheckResult:
    """`check(merchant_id)` for the run's merchants: its result for one, for several one result
    that passes only if all do, with the failing merchants and their figures."""
    ids = merchants_of_run(_run_tags(context)) or [DEFAULT_ID]
    # Each merchant's check opens its own file: several at once, as their steps run them.
    with ThreadPoolExecutor(max_workers=min(len(ids), fleet.max_parallel()), thread_name_prefix="point3-check") as pool:
        results = dict(zip(ids, pool.map(check, ids)))
    if len(ids) == 1:
        [(merchant_id, result)] = results.items()
        return AssetCheckResult(passed=result.passed, severity=result.severity,
                                metadata={"merchant": merchant_id, **result.metadata})
    failing = {m: r for m, r in results.items() if not r.passed}
    severities = {r.severity for r in failing.values()}
    return AssetCheckResult(
        passed=not failing,
        severity=AssetCheckSeverity.ERROR if AssetCheckSeverity.ERROR in severities or not failing else AssetCheckSeverity.WARN,
        metadata={"merchants_checked": len(ids), "merchants_failing": _bullets([
            f"{m}: " + ", ".join(f"{k} {v.value}" for k, v in r.metadata.items() if isinstance(v.value, int))
            for m, r in failing.items()])},
    )


def _run_tags(context: AssetCheckExecutionContext) -> dict[str, str]:
    try:
        return dict(context.run.tags)
    except DagsterInvalidPropertyError:  # invoked directly (tests): no run, the merchant `default`
        return {}


def _duplicates_result(warehouse: WarehouseResource, table: str, merchant_id: str) -> AssetCheckResult:
    with warehouse.get(merchant_id).connect(read_only=True) as conn:
        count, sample = summaries.duplicate_signatures(conn, table)
    return AssetCheckResult(
        passed=count == 0,
        metadata={
            "duplicate_signatures": count,
            "examples": _bullets([f"`{sig}` × {n}" for sig, n in sample]),
        },
    )


@asset_check(asset=point3_payments, description="Each signature is one payment row.")
def no_duplicate_signatures(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return each_merchant(context, lambda m: _duplicates_result(warehouse, "payments", m))


@asset_check(
    asset="payment_cancellations", name="no_duplicate_signatures",
    description="Each cancelled payment is one row.",
)  # fmt: skip
def no_duplicate_cancellations(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return each_merchant(context, lambda m: _duplicates_result(warehouse, "cancellations", m))


@asset_check(
    asset=point3_payments,
    description="Records point3 sent that the sync could not accept (kept in rejected_records).",
)  # fmt: skip
def no_rejected_records(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return each_merchant(context, lambda m: _rejected_result(warehouse, m))


def _rejected_result(warehouse: WarehouseResource, merchant_id: str) -> AssetCheckResult:
    with warehouse.get(merchant_id).connect(read_only=True) as conn:
        reasons = summaries.rejected_reasons(conn)
    count = sum(n for _, n in reasons)
    return AssetCheckResult(
        passed=count == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "rejected_records": count,
            "top_reasons": _bullets([f"{n} × {reason}" for reason, n in reasons[:10]]),
        },
    )


def _split_finding_result(context: AssetCheckExecutionContext, warehouse: WarehouseResource,
                          finding: str) -> AssetCheckResult:
    return each_merchant(context, lambda m: _split_finding_of(warehouse, finding, m))


def _split_finding_of(warehouse: WarehouseResource, finding: str, merchant_id: str) -> AssetCheckResult:
    with warehouse.get(merchant_id).connect(read_only=True) as conn:
        count, sample = summaries.split_findings(conn, finding)
    return AssetCheckResult(
        passed=count == 0,
        # Each is a payment an accountant must look at, not a broken pipeline.
        severity=AssetCheckSeverity.WARN,
        metadata={
            "payments": count,
            "examples": _bullets([
                f"`{s}` {d} {b}: total {t:,}, taxFreeAmount {f:,}, vat {v:,} ({what})" for s, d, b, t, f, v, what in sample
            ]),
        },
    )


@asset_check(
    asset="payment_tax_split",
    description="Payments breaking vat + taxFreeAmount = totalCharge that no person has classified yet "
    "(each keeps its period from being final: `point3 classify`).",
)  # fmt: skip
def no_unclassified_payments(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return _split_finding_result(context, warehouse, "unclassified")


@asset_check(
    asset="payment_tax_split",
    description="Payments whose VAT is above 1/11 of their price beyond rounding (impossible for 10% VAT).",
)  # fmt: skip
def no_impossible_vat(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return _split_finding_result(context, warehouse, "impossible_vat")


@asset_check(
    asset="payment_tax_split",
    description="Payments whose figures contradict their business's declaration (all taxable with an exempt "
    "part, all exempt with VAT).",
)  # fmt: skip
def no_declaration_conflicts(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return _split_finding_result(context, warehouse, "declaration_conflict")


def _finality_result(warehouse: WarehouseResource, kind: str, merchant_id: str) -> AssetCheckResult:
    with warehouse.get(merchant_id).connect(read_only=True) as conn:
        finality = summaries.report_finality(conn, kind, kst_now().date())
    return AssetCheckResult(
        passed=not finality.final_but_days_missing and not finality.not_final,
        # A report calling itself final over missing days is wrong; one saying "not final" is honest.
        severity=AssetCheckSeverity.ERROR if finality.final_but_days_missing else AssetCheckSeverity.WARN,
        metadata={
            "months_reported": finality.months_reported,
            "final_but_days_missing": _bullets(finality.final_but_days_missing),
            "not_final": _bullets(finality.not_final),
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
        metadata={"workbooks_checked": len(paths), "problem_count": len(problems), "problems": _bullets(problems)},
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
                "months_beyond": _bullets([f"{m.month}: {m.unexplained:+,} won unexplained" for m in beyond]),
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
                "payouts": _bullets([f"{month}: {p.amount:,} won, left the balance by {p.by:%Y-%m-%d %H:%M} KST"
                                     for month, p in overdue]),
            },
        )

    return each_merchant(context, check)


checks = [
    no_duplicate_signatures,
    no_duplicate_cancellations,
    no_rejected_records,
    no_unclassified_payments,
    no_impossible_vat,
    no_declaration_conflicts,
    *_report_checks(monthly_tax_report, "tax"),
    *_report_checks(monthly_reconciliation_report, "reconciliation"),
    unexplained_within_threshold,
    payouts_have_deposits,
]

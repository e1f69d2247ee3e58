"""Asset checks: what an operator must see before trusting the books, per merchant.

A check runs in the run of its asset and checks that run's merchant (its metadata names it):
the checks are not themselves partitioned because a partitioned check has no result in a run
over a range of partitions (every backfill and scheduled sync is one), and a merchant's books
are checked whole anyway. A run over several merchants checks each and fails naming them.
"""

import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import duckdb
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    asset_check,
    multi_asset_check,
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

T = TypeVar("T")


def _bullets(lines: list[str]) -> MetadataValue:
    return MetadataValue.md("\n".join(f"- {line}" for line in lines[:20]) or "none")


def each_merchant(context: AssetCheckExecutionContext, check: Callable[[str], AssetCheckResult]) -> AssetCheckResult:
    """`check(merchant_id)` for the run's merchants: its result for one, for several one result
    that passes only if all do, with the failing merchants and their figures."""
    return combined(_on_each(context, check))


def each_merchant_checks(context: AssetCheckExecutionContext, warehouse: WarehouseResource,
                         checks: dict[AssetCheckKey, Callable[[duckdb.DuckDBPyConnection], AssetCheckResult]]
                         ) -> Iterator[AssetCheckResult]:
    """The selected `checks` (each a result from a merchant's warehouse) for the run's merchants,
    combined as each_merchant does; each merchant's file is opened once for all of them."""
    selected = {key: check for key, check in checks.items() if key in context.selected_asset_check_keys}

    def merchant_results(merchant_id: str) -> dict[AssetCheckKey, AssetCheckResult]:
        with warehouse.get(merchant_id).connect(read_only=True) as conn:
            return {key: check(conn) for key, check in selected.items()}

    by_merchant = _on_each(context, merchant_results)
    for key in selected:
        yield combined({merchant_id: found[key] for merchant_id, found in by_merchant.items()},
                       asset_key=key.asset_key, check_name=key.name)


def _on_each(context: AssetCheckExecutionContext, work: Callable[[str], T]) -> dict[str, T]:
    ids = merchants_of_run(_run_tags(context)) or [DEFAULT_ID]
    # Each merchant's check opens its own file: several at once, as their steps run them.
    with ThreadPoolExecutor(max_workers=min(len(ids), fleet.max_parallel()), thread_name_prefix="point3-check") as pool:
        return dict(zip(ids, pool.map(work, ids)))


def combined(results: dict[str, AssetCheckResult], **target) -> AssetCheckResult:
    """One merchant's result naming it, or for several one result that passes only if all do,
    with the failing merchants and their figures. `target`: the check's asset_key and check_name
    where one step evaluates several checks."""
    if len(results) == 1:
        [(merchant_id, result)] = results.items()
        return AssetCheckResult(passed=result.passed, severity=result.severity,
                                metadata={"merchant": merchant_id, **result.metadata}, **target)
    failing = {m: r for m, r in results.items() if not r.passed}
    severities = {r.severity for r in failing.values()}
    return AssetCheckResult(
        passed=not failing,
        severity=AssetCheckSeverity.ERROR if AssetCheckSeverity.ERROR in severities or not failing else AssetCheckSeverity.WARN,
        metadata={"merchants_checked": len(results), "merchants_failing": _bullets([
            f"{m}: " + ", ".join(f"{k} {v.value}" for k, v in r.metadata.items() if isinstance(v.value, int))
            for m, r in failing.items()])},
        **target,
    )


def _run_tags(context: AssetCheckExecutionContext) -> dict[str, str]:
    try:
        return dict(context.run.tags)
    except DagsterInvalidPropertyError:  # invoked directly (tests): no run, the merchant `default`
        return {}


def _duplicates_result(conn: duckdb.DuckDBPyConnection, table: str) -> AssetCheckResult:
    count, sample = summaries.duplicate_signatures(conn, table)
    return AssetCheckResult(
        passed=count == 0,
        metadata={
            "duplicate_signatures": count,
            "examples": _bullets([f"`{sig}` × {n}" for sig, n in sample]),
        },
    )


def _rejected_result(conn: duckdb.DuckDBPyConnection) -> AssetCheckResult:
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


def _split_finding_result(conn: duckdb.DuckDBPyConnection, finding: str) -> AssetCheckResult:
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


# The checks of the sync's and the refresh's assets: one step each, every merchant's file opened
# once for all of the step's checks (a step per check opened each file once per check).
PAYMENTS = point3_payments.key
CANCELLATIONS, SPLIT = AssetKey("payment_cancellations"), AssetKey("payment_tax_split")


@multi_asset_check(
    name="payments_checks",
    specs=[
        AssetCheckSpec("no_duplicate_signatures", asset=PAYMENTS, description="Each signature is one payment row."),
        AssetCheckSpec("no_rejected_records", asset=PAYMENTS,
                       description="Records point3 sent that the sync could not accept (kept in rejected_records)."),
    ],
    can_subset=True,
)
def payments_checks(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> Iterator[AssetCheckResult]:
    yield from each_merchant_checks(context, warehouse, {
        AssetCheckKey(PAYMENTS, "no_duplicate_signatures"): lambda conn: _duplicates_result(conn, "payments"),
        AssetCheckKey(PAYMENTS, "no_rejected_records"): _rejected_result,
    })


SPLIT_FINDINGS = {  # check -> (the finding it counts, its description)
    "no_unclassified_payments": ("unclassified", "Payments breaking vat + taxFreeAmount = totalCharge that no person "
                                 "has classified yet (each keeps its period from being final: `point3 classify`)."),
    "no_impossible_vat": ("impossible_vat", "Payments whose VAT is above 1/11 of their price beyond rounding "
                          "(impossible for 10% VAT)."),
    "no_declaration_conflicts": ("declaration_conflict", "Payments whose figures contradict their business's "
                                 "declaration (all taxable with an exempt part, all exempt with VAT)."),
}


@multi_asset_check(
    name="books_checks",
    specs=[
        AssetCheckSpec("no_duplicate_signatures", asset=CANCELLATIONS, description="Each cancelled payment is one row."),
        *(AssetCheckSpec(name, asset=SPLIT, description=description) for name, (_, description) in SPLIT_FINDINGS.items()),
    ],
    can_subset=True,
)
def books_checks(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> Iterator[AssetCheckResult]:
    yield from each_merchant_checks(context, warehouse, {
        AssetCheckKey(CANCELLATIONS, "no_duplicate_signatures"): lambda conn: _duplicates_result(conn, "cancellations"),
        **{AssetCheckKey(SPLIT, name): functools.partial(_split_finding_result, finding=finding)
           for name, (finding, _) in SPLIT_FINDINGS.items()},
    })


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
    payments_checks,
    books_checks,
    *_report_checks(monthly_tax_report, "tax"),
    *_report_checks(monthly_reconciliation_report, "reconciliation"),
    unexplained_within_threshold,
    payouts_have_deposits,
]

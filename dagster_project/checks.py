"""Asset checks: what an operator must see before trusting the books."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    MetadataValue,
    asset_check,
)

from dagster_project.assets import (
    WAREHOUSE_POOL,
    reconciliation_terms,
    monthly_reconciliation_report,
    monthly_tax_report,
    payment_cancellations,
    payment_tax_split,
    point3_payments,
)
from dagster_project.resources import ReportsResource, WarehouseResource
from point3_pipeline import reports, summaries
from point3_pipeline.reports import reconciliation
from point3_pipeline.sync import kst_now


def _bullets(lines: list[str]) -> MetadataValue:
    return MetadataValue.md("\n".join(f"- {line}" for line in lines[:20]) or "none")


def _duplicates_result(warehouse: WarehouseResource, table: str) -> AssetCheckResult:
    with warehouse.get().connect(read_only=True) as conn:
        count, sample = summaries.duplicate_signatures(conn, table)
    return AssetCheckResult(
        passed=count == 0,
        metadata={
            "duplicate_signatures": count,
            "examples": _bullets([f"`{sig}` × {n}" for sig, n in sample]),
        },
    )


@asset_check(asset=point3_payments, pool=WAREHOUSE_POOL, description="Each signature is one payment row.")
def no_duplicate_signatures(warehouse: WarehouseResource) -> AssetCheckResult:
    return _duplicates_result(warehouse, "payments")


@asset_check(
    asset=payment_cancellations, name="no_duplicate_signatures", pool=WAREHOUSE_POOL,
    description="Each cancelled payment is one row.",
)  # fmt: skip
def no_duplicate_cancellations(warehouse: WarehouseResource) -> AssetCheckResult:
    return _duplicates_result(warehouse, "cancellations")


@asset_check(
    asset=point3_payments, pool=WAREHOUSE_POOL,
    description="Records point3 sent that the sync could not accept (kept in rejected_records).",
)  # fmt: skip
def no_rejected_records(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.get().connect(read_only=True) as conn:
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


def _split_finding_result(warehouse: WarehouseResource, finding: str) -> AssetCheckResult:
    with warehouse.get().connect(read_only=True) as conn:
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
    asset=payment_tax_split, pool=WAREHOUSE_POOL,
    description="Payments breaking vat + taxFreeAmount = totalCharge that no person has classified yet "
    "(each keeps its period from being final: `point3 classify`).",
)  # fmt: skip
def no_unclassified_payments(warehouse: WarehouseResource) -> AssetCheckResult:
    return _split_finding_result(warehouse, "unclassified")


@asset_check(
    asset=payment_tax_split, pool=WAREHOUSE_POOL,
    description="Payments whose VAT is above 1/11 of their price beyond rounding (impossible for 10% VAT).",
)  # fmt: skip
def no_impossible_vat(warehouse: WarehouseResource) -> AssetCheckResult:
    return _split_finding_result(warehouse, "impossible_vat")


@asset_check(
    asset=payment_tax_split, pool=WAREHOUSE_POOL,
    description="Payments whose figures contradict their business's declaration (all taxable with an exempt "
    "part, all exempt with VAT).",
)  # fmt: skip
def no_declaration_conflicts(warehouse: WarehouseResource) -> AssetCheckResult:
    return _split_finding_result(warehouse, "declaration_conflict")


# The report checks cover every month reported (the latest version of each), not one
# partition: a partitioned asset check is still a preview feature in this Dagster.
def _report_checks(report, kind: str) -> list[AssetChecksDefinition]:
    @asset_check(
        asset=report, name="every_day_synced_if_final", pool=WAREHOUSE_POOL,
        description="A report is final only if every day of its month has a complete sync taken after the day.",
    )  # fmt: skip
    def every_day_synced(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.get().connect(read_only=True) as conn:
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

    @asset_check(
        asset=report, name="totals_match_warehouse", pool=WAREHOUSE_POOL,
        description="Each month's latest workbook shows the figures the warehouse recorded for its version.",
    )  # fmt: skip
    def totals_match(warehouse: WarehouseResource, reports_dir: ReportsResource) -> AssetCheckResult:
        wh = warehouse.get()
        with wh.connect(read_only=True) as conn:
            paths = [reports_dir.path / version.file_name for version in summaries.latest_reports(conn, kind).values()]
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

    return [every_day_synced, totals_match]


@asset_check(
    asset=monthly_reconciliation_report, pool=WAREHOUSE_POOL,
    description="Each reported month's unexplained balance change is within POINT3_UNEXPLAINED_THRESHOLD_WON.",
)  # fmt: skip
def unexplained_within_threshold(warehouse: WarehouseResource) -> AssetCheckResult:
    terms = reconciliation_terms()
    with warehouse.get().connect(read_only=True) as conn:
        months = reconciliation.check_reported_months(conn, terms)
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


@asset_check(
    asset=monthly_reconciliation_report, pool=WAREHOUSE_POOL,
    description="Every payout has its bank deposit within POINT3_PAYOUT_DEPOSIT_DAYS of the latest deposits import.",
)  # fmt: skip
def payouts_have_deposits(warehouse: WarehouseResource) -> AssetCheckResult:
    terms = reconciliation_terms()
    with warehouse.get().connect(read_only=True) as conn:
        months = reconciliation.check_reported_months(conn, terms)
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

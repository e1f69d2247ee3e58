"""The checks of a merchant's warehouse tables, evaluated in the step that writes them.

The sync's checks (payments) run in point3_payments' step and the books' (cancellations and
the tax split) in derived_tables', each on the connection the step already holds: a step of
their own opened every merchant's file once more (~35 ms of CPU each, 50 merchants an hour).
A step over several merchants yields one result per check, passing only if every merchant's
does, naming the failing merchants and their figures (`combined`).
"""

import functools
from collections.abc import Callable, Mapping

import duckdb
from dagster import AssetCheckKey, AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from point3_pipeline import summaries

PAYMENTS = AssetKey("point3_payments")
CANCELLATIONS, SPLIT = AssetKey("payment_cancellations"), AssetKey("payment_tax_split")

Check = Callable[[duckdb.DuckDBPyConnection], AssetCheckResult]


def bullets(lines: list[str]) -> MetadataValue:
    return MetadataValue.md("\n".join(f"- {line}" for line in lines[:20]) or "none")


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
        metadata={"merchants_checked": len(results), "merchants_failing": bullets([
            f"{m}: " + ", ".join(f"{k} {v.value}" for k, v in r.metadata.items() if isinstance(v.value, int))
            for m, r in failing.items()])},
        **target,
    )


def _duplicates_result(conn: duckdb.DuckDBPyConnection, table: str) -> AssetCheckResult:
    count, sample = summaries.duplicate_signatures(conn, table)
    return AssetCheckResult(
        passed=count == 0,
        metadata={
            "duplicate_signatures": count,
            "examples": bullets([f"`{sig}` × {n}" for sig, n in sample]),
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
            "top_reasons": bullets([f"{n} × {reason}" for reason, n in reasons[:10]]),
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
            "examples": bullets([
                f"`{s}` {d} {b}: total {t:,}, taxFreeAmount {f:,}, vat {v:,} ({what})" for s, d, b, t, f, v, what in sample
            ]),
        },
    )


# Each check: its key -> (its description, its result from a merchant's warehouse).
PAYMENTS_CHECKS: dict[AssetCheckKey, tuple[str, Check]] = {
    AssetCheckKey(PAYMENTS, "no_duplicate_signatures"): (
        "Each signature is one payment row.", functools.partial(_duplicates_result, table="payments")),
    AssetCheckKey(PAYMENTS, "no_rejected_records"): (
        "Records point3 sent that the sync could not accept (kept in rejected_records).", _rejected_result),
}

SPLIT_FINDINGS = {  # check -> (the finding it counts, its description)
    "no_unclassified_payments": ("unclassified", "Payments breaking vat + taxFreeAmount = totalCharge that no person "
                                 "has classified yet (each keeps its period from being final: `point3 classify`)."),
    "no_impossible_vat": ("impossible_vat", "Payments whose VAT is above 1/11 of their price beyond rounding "
                          "(impossible for 10% VAT)."),
    "no_declaration_conflicts": ("declaration_conflict", "Payments whose figures contradict their business's "
                                 "declaration (all taxable with an exempt part, all exempt with VAT)."),
}

BOOKS_CHECKS: dict[AssetCheckKey, tuple[str, Check]] = {
    AssetCheckKey(CANCELLATIONS, "no_duplicate_signatures"): (
        "Each cancelled payment is one row.", functools.partial(_duplicates_result, table="cancellations")),
    **{AssetCheckKey(SPLIT, name): (description, functools.partial(_split_finding_result, finding=finding))
       for name, (finding, description) in SPLIT_FINDINGS.items()},
}


def specs(checks: Mapping[AssetCheckKey, tuple[str, Check]]) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(key.name, asset=key.asset_key, description=description)
            for key, (description, _) in checks.items()]


def evaluate(conn: duckdb.DuckDBPyConnection, checks: Mapping[AssetCheckKey, tuple[str, Check]],
             selected: set[AssetCheckKey]) -> dict[AssetCheckKey, AssetCheckResult]:
    """The selected `checks`' results on one merchant's warehouse."""
    return {key: check(conn) for key, (_, check) in checks.items() if key in selected}

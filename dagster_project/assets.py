"""The assets: each calls the library once and reports what it did as metadata."""

import contextlib
import datetime as dt
from collections.abc import Iterator

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetSelection,
    AutomationCondition,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from dagster_project.partitions import (
    daily_partitions,
    month_to_days,
    monthly_partitions,
    report_month,
    report_period,
    vat_period_partitions,
)
from dagster_project.resources import Point3Resource, ReportsResource, WarehouseResource
from point3_pipeline import config, reports, summaries, sync
from point3_pipeline.config import ConfigError
from point3_pipeline.periods import HALF, QUARTER, YEAR, Period
from point3_pipeline.reports import ReportResult
from point3_pipeline.warehouse import WarehouseError

# DuckDB admits one writing process: every step that writes the warehouse takes this pool's
# single slot (dagster.yaml), whichever run or CLI invocation it belongs to.
WAREHOUSE_POOL = "point3_warehouse"
GROUP = "point3"

# Refresh when an upstream write landed outside a run that already refreshes this asset.
AFTER_UPSTREAM_WRITES = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("after upstream writes")

# Re-render a period (month or VAT period) already reported when its payments changed (a late
# cancellation found by the daily sweep, a gap filled): rendering is idempotent and writes a
# new version only if the data changed.
RERENDER_CHANGED_PERIODS = (
    ~AutomationCondition.missing()
    & AutomationCondition.any_deps_updated().allow(AssetSelection.assets("point3_payments")).since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("re-render changed periods")


@contextlib.contextmanager
def _fails_with_its_sentence() -> Iterator[None]:
    """A warehouse that cannot be used as it is (damaged, its disk full, a derived table that
    cannot be rebuilt) fails the step with the library's one sentence saying what to do."""
    try:
        yield
    except (WarehouseError, ConfigError) as exc:  # ConfigError: a mistake in the POINT3_BUSINESSES file
        raise Failure(description=str(exc)) from exc


@asset(
    partitions_def=daily_partitions,
    # A backfill of many days is one run calling sync_range once, not one process per day.
    backfill_policy=BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"duckdb"},
    description="Payments of each KST day, synced from point3's date endpoint (one partition = one day window).",
)
def point3_payments(
    context: AssetExecutionContext, point3: Point3Resource, warehouse: WarehouseResource
) -> MaterializeResult:
    first, last = (dt.date.fromisoformat(key) for key in context.partition_key_range)

    def progress(done: int, total: int, window: sync.WindowResult) -> None:
        # Each log line is a write to Dagster's event log, so a run logs about 20 windows (and
        # every one left open) instead of all 365 of a year's backfill.
        if window.is_complete and done % max(1, total // 20) and done != total:
            return
        state = "complete" if window.is_complete else f"not final ({window.incomplete_reason})"
        context.log.info(
            f"[{done}/{total}] {window.window_date}: {window.records_read} records, {window.payments_new} new, "
            f"{window.payments_changed} changed, {window.cancellations_detected} cancellations detected, "
            f"{window.first_seen_canceled} already cancelled when first seen, {state}"
        )

    with _fails_with_its_sentence(), point3.client() as client:
        try:
            result = sync.sync_range(client, warehouse.get(), first, last, mode="dagster", progress=progress,
                                     limits=point3.limits())
        except sync.SyncFailed as exc:
            # What was read is stored; the step fails so the partitions are retried, with the counts.
            raise Failure(description=str(exc), metadata=_sync_metadata(exc.result, first, last)) from exc
    return MaterializeResult(metadata=_sync_metadata(result, first, last))


def _sync_metadata(result: sync.SyncResult, first: dt.date, last: dt.date) -> dict:
    totals = result.summary()
    incomplete = result.incomplete_days
    return {
        "sync_run_id": result.run_id,
        # One run may cover many partitions: these are the run's totals over its range.
        "days": f"{first}..{last}",
        "windows": totals["windows"],
        "records": totals["records_read"],
        "new": totals["payments_new"],
        "changed": totals["payments_changed"],
        "cancellations_detected": totals["cancellations_detected"],
        "already_cancelled_when_first_seen": totals["first_seen_canceled"],
        "rejected": totals["rejected"],
        "retries": totals["retries"],
        "incomplete_day_count": len(incomplete),
        "incomplete_days": ", ".join(str(d) for d in incomplete) or "none",
        "seconds": round(result.seconds, 2),
    }


@asset(
    deps=[point3_payments],
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"duckdb"},
    automation_condition=AFTER_UPSTREAM_WRITES,
    description="One row per cancelled payment, with when the sync first saw it cancelled.",
)
def payment_cancellations(warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    with _fails_with_its_sentence():
        wh.refresh_derived("cancellations")
        with wh.connect(read_only=True) as conn:
            return MaterializeResult(metadata=summaries.cancellation_totals(conn))


@asset(
    deps=[payment_cancellations],
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"duckdb"},
    automation_condition=AFTER_UPSTREAM_WRITES,
    description="Every payment's tax class (taxable, mixed, exempt, unclassified, impossible VAT) and filing "
    "amounts, with the businesses of POINT3_BUSINESSES and people's classifications; and the daily filing lines.",
)
def payment_tax_split(warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    with _fails_with_its_sentence():
        wh.refresh_derived("payment_tax_split")  # and tax_filing_daily, culture_vat_daily: they read it
        with wh.connect(read_only=True) as conn:
            return MaterializeResult(metadata=summaries.tax_split_totals(conn))


@asset(
    deps=[payment_tax_split],
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"duckdb"},
    automation_condition=AFTER_UPSTREAM_WRITES,
    description="Culture-expense type x the tax split per KST payment day: gross, cancelled and net.",
)
def culture_vat_breakdown(warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    with _fails_with_its_sentence():
        wh.refresh_derived("culture_vat_daily")
        with wh.connect(read_only=True) as conn:
            return MaterializeResult(metadata=summaries.culture_vat_totals(conn))


@asset(
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"duckdb"},
    description="The settlement balance, one observation per materialization (point3 keeps no history).",
)
def settlement_balance_history(point3: Point3Resource, warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    with _fails_with_its_sentence():
        with point3.client() as client:
            observation = sync.observe_settlement(client, wh)
        rows = wh.refresh_derived("settlement_balance_history")["settlement_balance_history"]
    change = observation.change_since_previous
    return MaterializeResult(
        metadata={
            "balance": observation.balance,
            # Absent on the first observation rather than a fake 0, so the plot stays honest.
            **({} if change is None else {"change_since_previous": change}),
            "observed_at": observation.observed_at.isoformat(timespec="seconds"),
            "observations": rows,
        }
    )


def _report_metadata(result: ReportResult) -> dict:
    return {
        "path": MetadataValue.path(str(result.path)),
        "version": result.version,
        "written": result.created,  # False: nothing changed since this version
        "as_of": result.as_of.isoformat(timespec="seconds") if result.as_of else "no day synced",
        "days_synced": f"{result.days_synced} / {result.days_in_period}",
        "is_final": result.is_final,
        "changes_since_previous_version": result.changes,
        **{f"total_{name}": value for name, value in result.totals.items()},
    }


REPORT_DEPS = [
    AssetDep(point3_payments, partition_mapping=month_to_days), payment_cancellations, payment_tax_split,
    culture_vat_breakdown,
]


@asset(
    partitions_def=monthly_partitions,
    deps=REPORT_DEPS,
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"excel"},
    automation_condition=RERENDER_CHANGED_PERIODS,
    description="The month's tax workbook (VAT and culture expenses), versioned when its data changes.",
)
def monthly_tax_report(
    context: AssetExecutionContext, warehouse: WarehouseResource, reports_dir: ReportsResource
) -> MaterializeResult:
    with _fails_with_its_sentence():
        result = reports.render_tax_report(warehouse.get(), report_month(context.partition_key), reports_dir.path)
        reports.write_index(warehouse.get(), reports_dir.path)
    return MaterializeResult(metadata=_report_metadata(result))


@asset(
    partitions_def=monthly_partitions,
    deps=[*REPORT_DEPS, settlement_balance_history],
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"excel"},
    automation_condition=RERENDER_CHANGED_PERIODS,
    description="The month's settlement roll-forward: opening + sales − cancellations − fees − payouts = closing, "
                "payouts matched to bank deposits.",
)
def monthly_reconciliation_report(
    context: AssetExecutionContext, warehouse: WarehouseResource, reports_dir: ReportsResource
) -> MaterializeResult:
    with _fails_with_its_sentence():
        result = reports.render_reconciliation_report(warehouse.get(), report_month(context.partition_key),
                                                      reports_dir.path, terms=reconciliation_terms())
        reports.write_index(warehouse.get(), reports_dir.path)
    return MaterializeResult(metadata={**_report_metadata(result), **_roll_forward_metadata(result.totals)})


def reconciliation_terms():
    """The declared fee, credit timing and tolerances; a malformed setting fails the step with its sentence."""
    try:
        return config.reconciliation_terms()
    except config.ConfigError as exc:
        raise Failure(description=str(exc)) from exc


def _roll_forward_metadata(totals: dict[str, int]) -> dict:
    """The roll-forward's lines by name (absent when no observation reaches the month)."""
    names = ("opening_balance", "payments_in", "cancellations_out", "fees", "payouts", "closing_balance", "unexplained")
    return {name: totals[name] for name in names if name in totals}


def _vat_period_report(kind: str, name: str, what: str):
    """The VAT-period workbook asset of one period kind: rendered once the period is over (its
    schedule), re-rendered when its days change, versioned like the monthly workbooks."""

    @asset(
        name=name,
        partitions_def=vat_period_partitions[kind],
        deps=REPORT_DEPS,
        pool=WAREHOUSE_POOL,
        group_name=GROUP,
        kinds={"excel"},
        automation_condition=RERENDER_CHANGED_PERIODS,
        description=f"The {what} VAT workbook (per business: 과세 공급가액, 부가세, 면세, 미분류), versioned when its data changes.",
    )
    def vat_period_report(
        context: AssetExecutionContext, warehouse: WarehouseResource, reports_dir: ReportsResource
    ) -> MaterializeResult:
        period = report_period(kind, context.partition_key)
        wh = warehouse.get()
        with _fails_with_its_sentence():
            result = reports.render_tax_report(wh, period, reports_dir.path)
            reports.write_index(wh, reports_dir.path)
            with wh.connect(read_only=True) as conn:
                split = summaries.period_split_totals(conn, Period.parse(period))
        return MaterializeResult(metadata=_report_metadata(result) | {f"split_{k}": v for k, v in split.items()})

    return vat_period_report


vat_quarter_report = _vat_period_report(QUARTER, "vat_quarter_report", "quarter's (제1기·제2기 예정, 법인 확정)")
vat_half_year_report = _vat_period_report(HALF, "vat_half_year_report", "half-year's (제1기·제2기 확정)")
vat_year_report = _vat_period_report(YEAR, "vat_year_report", "year's (간이과세자, 사업장현황신고)")
VAT_PERIOD_REPORTS = {QUARTER: vat_quarter_report, HALF: vat_half_year_report, YEAR: vat_year_report}


@asset(
    deps=[
        point3_payments, payment_cancellations, payment_tax_split, culture_vat_breakdown, settlement_balance_history,
        monthly_tax_report, monthly_reconciliation_report, *VAT_PERIOD_REPORTS.values(),
    ],
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"duckdb"},
    automation_condition=AFTER_UPSTREAM_WRITES,
    description="The analysts' read-only copy of the warehouse, replaced atomically after the writes.",
)
def analyst_warehouse_copy(warehouse: WarehouseResource) -> MaterializeResult:
    with _fails_with_its_sentence():
        path = warehouse.get().publish()
    return MaterializeResult(
        metadata={"path": MetadataValue.path(str(path)), "size_bytes": path.stat().st_size}
    )

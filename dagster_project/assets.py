"""The assets: each calls the library once and reports what it did as metadata."""

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    AssetSelection,
    AutomationCondition,
    BackfillPolicy,
    DagsterEventType,
    DagsterRun,
    DagsterRunStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from dagster_project.partitions import (
    MERCHANT_IDS,
    daily_partitions,
    days_by_merchant,
    merchant_of,
    merchant_partitions,
    month_to_days,
    monthly_partitions,
    report_month,
    report_period,
    same_merchant,
    vat_period_partitions,
)
from dagster_project.resources import Point3Resource, ReportsResource, WarehouseResource, merchant
from dagster_project.warehouse_checks import BOOKS_CHECKS, PAYMENTS_CHECKS, combined, evaluate, specs
from point3_pipeline import config, fleet, reports, summaries, sync
from point3_pipeline.config import ConfigError
from point3_pipeline.periods import HALF, QUARTER, YEAR, Period
from point3_pipeline.reports import ReportResult
from point3_pipeline.reports.links import version_page_url
from point3_pipeline.warehouse import WarehouseError

# The tag naming the one merchant a run writes for: the run queue admits one run per value
# (dagster.yaml), so each merchant's warehouse has one writer while merchants run in parallel.
MERCHANT_TAG = "point3/merchant"
ALL_MERCHANTS = "all"  # its value on a run of several merchants: one such run at a time
GROUP = "point3"

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
    cannot be rebuilt) or a merchant whose entry is bad fails the step with the library's one
    sentence saying what to do."""
    try:
        yield
    except (WarehouseError, ConfigError) as exc:  # ConfigError: the merchant's entry or its businesses file
        raise Failure(description=str(exc)) from exc


def merchants_in(context: AssetExecutionContext) -> list[str]:
    """The merchants of the step's partitions, in file order."""
    return list(dict.fromkeys(merchant_of(k) for k in sorted(context.partition_keys, key=merchant_order)))


def merchant_order(partition_key: str) -> int:
    merchant_id = merchant_of(partition_key)
    return MERCHANT_IDS.index(merchant_id) if merchant_id in MERCHANT_IDS else len(MERCHANT_IDS)


def for_each_merchant(context: AssetExecutionContext, work: Callable[[str], dict]) -> MaterializeResult:
    """`work(merchant_id)` -> metadata for every merchant of the step of an asset whose output is
    required (a report); see for_each_merchant_of."""
    [result] = for_each_merchant_of(context, [context.asset_key], lambda merchant_id: {context.asset_key: work(merchant_id)})
    return result


def for_each_merchant_of(context: AssetExecutionContext, keys: list[AssetKey], work: Callable[[str], dict], *,
                         computing: bool = False) -> Iterator[MaterializeResult | AssetCheckResult]:
    """`work(merchant_id)` -> metadata of each of the step's assets `keys`, and the result of each
    of the step's checks it evaluated (by AssetCheckKey), for every merchant of the step. One
    merchant fails the step with its own sentence. Several (every scheduled run) run at once, up
    to POINT3_MAX_PARALLEL_MERCHANTS, since most of a merchant's time is waiting for point3 (work
    `computing` with no API call, no more than the cores: fleet.max_parallel_computing); a
    failing merchant then fails the step after the others' partitions are recorded as
    materialized, and each check yields one result over the merchants that got that far.

    Assets that may skip their output (every merchant-partitioned writer) record each merchant's
    partitions, with its own metadata, as soon as it is done, while the others still run: the
    event log's writes (~10 ms of CPU each) overlap their work instead of following it. Such a
    step re-executed after a failure does only the merchants its parent runs did not materialize,
    so the others are neither re-run nor recorded twice."""
    ids = merchants_in(context)
    skippable = _may_skip(context, keys)
    done = merchants_done_before(context, keys) if skippable else set()
    if len(ids) == 1 and not done:
        with _fails_with_its_sentence():
            found = work(ids[0])
        yield from (MaterializeResult(asset_key=key, metadata={"merchant": ids[0], **found[key]}) for key in keys)
        yield from _check_results({ids[0]: found})
        return
    outcomes: dict[str, tuple[dict, str | None]] = {}
    workers = fleet.max_parallel_computing() if computing else fleet.max_parallel()
    for merchant_id, found, error in _run_each([id_ for id_ in ids if id_ not in done], work, workers):
        outcomes[merchant_id] = (found, error)
        if error is None and skippable:
            _record_merchant(context, keys, merchant_id, found)
    outcomes = {id_: outcomes[id_] for id_ in ids if id_ in outcomes}  # file order, for the table
    failed = {id_: error for id_, (_, error) in outcomes.items() if error is not None}
    table = MetadataValue.md("\n".join(
        ["| merchant | outcome |", "| --- | --- |"]
        + [f"| {id_} | {error or _note(found)} |" for id_, (found, error) in outcomes.items()]
        + [f"| {id_} | done by an earlier run of this step |" for id_ in ids if id_ in done]))
    yield from _check_results({id_: found for id_, (found, error) in outcomes.items() if error is None})
    if not failed and not skippable:
        yield from (MaterializeResult(asset_key=key, metadata={"merchants": len(ids), "by_merchant": table}) for key in keys)
        return
    if not skippable:
        for merchant_id, (found, error) in outcomes.items():
            if error is None:
                _record_merchant(context, keys, merchant_id, found)
    if failed:
        raise Failure(description=f"{len(failed)} of {len(ids)} merchants failed: "
                      + "; ".join(f"{id_}: {error}" for id_, error in failed.items()),
                      metadata={"by_merchant": table})
    if done:
        context.log.info(f"{len(outcomes)} merchants done; {len(done)} done by an earlier run of this step, not re-run")


def _record_merchant(context: AssetExecutionContext, keys: list[AssetKey], merchant_id: str, found: dict) -> None:
    """The merchant's partitions of the step's assets `keys`, materialized with its metadata."""
    for partition_key in context.partition_keys:
        if merchant_of(partition_key) == merchant_id:
            for key in keys:
                context.log_event(AssetMaterialization(key, partition=partition_key,
                                                       metadata={"merchant": merchant_id, **found[key]}))


def _check_results(found: dict[str, dict]) -> Iterator[AssetCheckResult]:
    """One result per check the merchants' work evaluated, over those merchants (combined)."""
    by_check: dict[AssetCheckKey, dict[str, AssetCheckResult]] = {}
    for merchant_id, results in found.items():
        for key, result in results.items():
            if isinstance(key, AssetCheckKey):
                by_check.setdefault(key, {})[merchant_id] = result
    for key, results in by_check.items():
        yield combined(results, asset_key=key.asset_key, check_name=key.name)


def _note(found: dict) -> str:
    return next((str(metadata["note"]) for metadata in found.values() if isinstance(metadata, dict) and "note" in metadata),
                "ok")


def _may_skip(context: AssetExecutionContext, keys: list[AssetKey]) -> bool:
    return all(context.assets_def.get_asset_spec(key).skippable for key in keys)


def merchants_done_before(context: AssetExecutionContext, keys: list[AssetKey]) -> set[str]:
    """The step's merchants whose partitions of every asset of `keys` were materialized by the
    failed runs this run re-executes (its parent, and theirs while they failed too): none for a
    run of its own, or a re-execution of a run that succeeded (the operator asked for it again)."""
    recorded: set[tuple[AssetKey, str | None]] = set()
    parent = _failed_run(context, context.run.parent_run_id)
    while parent is not None:
        events = context.instance.all_logs(parent.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        recorded |= {(e.asset_materialization.asset_key, e.asset_materialization.partition) for e in events}
        parent = _failed_run(context, parent.parent_run_id)
    missing = {merchant_of(k) for k in context.partition_keys for key in keys if (key, k) not in recorded}
    return {merchant_of(k) for k in context.partition_keys} - missing


def _failed_run(context: AssetExecutionContext, run_id: str | None) -> DagsterRun | None:
    run = context.instance.get_run_by_id(run_id) if run_id else None
    return run if run is not None and run.status == DagsterRunStatus.FAILURE else None


def _run_each(ids: list[str], work: Callable[[str], dict], workers: int) -> Iterator[tuple[str, dict, str | None]]:
    """(merchant, what its work gave, None) or (merchant, {}, its failure's sentence) for each of
    `ids`, up to `workers` at once, as each finishes."""
    def one(merchant_id: str) -> tuple[dict, str | None]:
        try:
            return work(merchant_id), None
        except Failure as exc:  # already its sentence (a sync that failed, with its counts)
            return {}, exc.description or "failed"
        except Exception as exc:  # one merchant's failure is its sentence, never its neighbours'
            return {}, fleet.failure_sentence(exc)

    with fleet.MerchantPool(workers, len(ids)) as pool:
        futures = {pool.submit(one, merchant_id): merchant_id for merchant_id in ids}
        for future in as_completed(futures):
            yield futures[future], *future.result()


@asset(
    partitions_def=daily_partitions,
    # A backfill of many days is one run calling sync_range once per merchant, not one process per day.
    backfill_policy=BackfillPolicy.single_run(),
    # A re-execution after some merchants failed materializes theirs alone (for_each_merchant_of).
    output_required=False,
    check_specs=specs(PAYMENTS_CHECKS),
    group_name=GROUP,
    kinds={"duckdb"},
    description="Payments of each merchant's KST day, synced from point3's date endpoint (one partition = one "
    "merchant's day window).",
)
def point3_payments(
    context: AssetExecutionContext, point3: Point3Resource, warehouse: WarehouseResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    days = days_by_merchant(context.partition_keys)
    checks = set(context.selected_asset_check_keys)

    def sync_merchant(merchant_id: str) -> dict:
        found = merchant(merchant_id)
        wh = warehouse.get(merchant_id)
        # Days before this merchant's own first day are partitions of an earlier merchant's history.
        first, last = max(days[merchant_id][0], found.start_date), days[merchant_id][-1]
        # One open of the file for the sync and its checks; an empty warehouse for a merchant
        # whose days are all skipped, which its checks and the refresh read like the others'.
        with wh.held():
            if last < first:
                metadata = {"days": "none", "windows": 0, "note": f"skipped: its start_date {found.start_date} is after {last}"}
            else:
                metadata = _sync_merchant(context, point3, wh, merchant_id, first, last)
            with wh.connect(read_only=True) as conn:
                return {context.asset_key: metadata, **evaluate(conn, PAYMENTS_CHECKS, checks)}

    yield from for_each_merchant_of(context, [context.asset_key], sync_merchant)


def _sync_merchant(context: AssetExecutionContext, point3: Point3Resource, wh, merchant_id: str,
                   first: dt.date, last: dt.date) -> dict:
    with point3.client(merchant_id) as client:
        try:
            result = sync.sync_range(client, wh, first, last, mode="dagster",
                                     progress=_progress_log(context, merchant_id), limits=point3.limits())
        except sync.SyncFailed as exc:
            # What was read is stored; the step fails so the partitions are retried, with the counts.
            raise Failure(description=str(exc), metadata=_sync_metadata(exc.result, first, last)) from exc
    return _sync_metadata(result, first, last)


def _progress_log(context: AssetExecutionContext, merchant_id: str):
    def progress(done: int, total: int, window: sync.WindowResult) -> None:
        # Each log line is a write to Dagster's event log (~10 ms of CPU), so a merchant's sync
        # logs about 20 windows of a longer range and its last, and a day left open before its
        # last. An hourly run (two days) logs nothing unless yesterday stayed open: that today
        # is still open, and the run's counts, are its partitions' metadata already.
        milestone = total > 2 and (done % (total // 20 or total) == 0 or done == total)
        if not milestone and (window.is_complete or done == total):
            return
        state = "complete" if window.is_complete else f"not final ({window.incomplete_reason})"
        context.log.info(
            f"{merchant_id} [{done}/{total}] {window.window_date}: {window.records_read} records, "
            f"{window.payments_new} new, {window.payments_changed} changed, {window.cancellations_detected} "
            f"cancellations detected, {window.first_seen_canceled} already cancelled when first seen, {state}"
        )

    return progress


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


# The merchant's whole-table assets: one partition per merchant, each rebuilt from that
# merchant's days. single_run: a backfill of many merchants is one run doing them in parallel.
MERCHANT_ASSET = {"partitions_def": merchant_partitions, "backfill_policy": BackfillPolicy.single_run(),
                  "group_name": GROUP, "kinds": {"duckdb"}}


# The derived tables' assets, each the warehouse table it stands for and its totals, and the
# analysts' copy. One step refreshes them together: the refresh rebuilds a table's readers with
# it anyway, in one transaction (three steps rebuilt the tax split three times), and the step
# opens each merchant's file once for the refresh, the books' checks and the copy.
DERIVED = {
    AssetKey("payment_cancellations"): ("cancellations", summaries.cancellation_totals),
    AssetKey("payment_tax_split"): ("payment_tax_split", summaries.tax_split_totals),  # and tax_filing_daily
    AssetKey("culture_vat_breakdown"): ("culture_vat_daily", summaries.culture_vat_totals),
}
# skippable: a re-execution after some merchants failed materializes theirs alone (for_each_merchant_of).
DERIVED_SPEC = {"partitions_def": merchant_partitions, "group_name": GROUP, "kinds": {"duckdb"}, "skippable": True}
COPY = AssetKey("analyst_warehouse_copy")
# What the copy follows: every writer of the merchant's warehouse (by key: the reports come later).
COPY_DEPS = [
    AssetDep("point3_payments", partition_mapping=same_merchant), *DERIVED, "settlement_balance_history",
    *(AssetDep(report, partition_mapping=same_merchant) for report in (
        "monthly_tax_report", "monthly_reconciliation_report", "vat_quarter_report", "vat_half_year_report",
        "vat_year_report")),
]


@multi_asset(
    name="derived_tables",
    specs=[
        AssetSpec("payment_cancellations", deps=[AssetDep(point3_payments, partition_mapping=same_merchant)],
                  description="One row per cancelled payment, with when the sync first saw it cancelled.",
                  **DERIVED_SPEC),
        AssetSpec("payment_tax_split", deps=["payment_cancellations"], **DERIVED_SPEC,
                  description="Every payment's tax class (taxable, mixed, exempt, unclassified, impossible VAT) and "
                  "filing amounts, with the businesses of the merchant's businesses file (POINT3_BUSINESSES without "
                  "a merchants file) and people's classifications; and the daily filing lines."),
        AssetSpec("culture_vat_breakdown", deps=["payment_tax_split"], **DERIVED_SPEC,
                  description="Culture-expense type x the tax split per KST payment day: gross, cancelled and net."),
        AssetSpec(COPY, deps=COPY_DEPS, **DERIVED_SPEC,
                  description="The analysts' read-only copy of the merchant's warehouse, replaced atomically after "
                  "the writes."),
    ],
    check_specs=specs(BOOKS_CHECKS),
    partitions_def=merchant_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    can_subset=True,
)
def derived_tables(context: AssetExecutionContext, warehouse: WarehouseResource):
    keys = [key for key in (*DERIVED, COPY) if key in context.selected_asset_keys]
    checks = set(context.selected_asset_check_keys)

    def refresh(merchant_id: str) -> dict:
        wh = warehouse.get(merchant_id)
        tables = [DERIVED[key][0] for key in keys if key in DERIVED]
        with wh.held():
            if tables:
                wh.refresh_derived(*tables)
            with wh.connect(read_only=True) as conn:
                found = {key: DERIVED[key][1](conn) for key in keys if key in DERIVED} | evaluate(conn, BOOKS_CHECKS, checks)
            if COPY in keys:
                path = wh.publish()
                found[COPY] = {"path": MetadataValue.path(str(path)), "size_bytes": path.stat().st_size}
        return found

    yield from for_each_merchant_of(context, keys, refresh, computing=True)


@asset(
    description="The settlement balance, one observation per materialization (point3 keeps no history).",
    output_required=False,
    **MERCHANT_ASSET,
)
def settlement_balance_history(
    context: AssetExecutionContext, point3: Point3Resource, warehouse: WarehouseResource
) -> Iterator[MaterializeResult]:
    def observe(merchant_id: str) -> dict:
        wh = warehouse.get(merchant_id)
        with point3.client(merchant_id) as client:
            observation = sync.observe_settlement(client, wh)
        rows = wh.refresh_derived("settlement_balance_history")["settlement_balance_history"]
        change = observation.change_since_previous
        return {
            "balance": observation.balance,
            # Absent on the first observation rather than a fake 0, so the plot stays honest.
            **({} if change is None else {"change_since_previous": change}),
            "observed_at": observation.observed_at.isoformat(timespec="seconds"),
            "observations": rows,
        }

    yield from for_each_merchant_of(context, [context.asset_key], lambda m: {context.asset_key: observe(m)})


def _report_metadata(result: ReportResult, merchant_id: str) -> dict:
    portal = config.portal_url()
    link = {"portal": MetadataValue.url(version_page_url(portal, merchant_id, result.kind, result.period))} if portal else {}
    return {
        "path": MetadataValue.path(str(result.path)),
        **link,
        "version": result.version,
        "written": result.created,  # False: nothing changed since this version
        "as_of": result.as_of.isoformat(timespec="seconds") if result.as_of else "no day synced",
        "days_synced": f"{result.days_synced} / {result.days_in_period}",
        "is_final": result.is_final,
        "changes_since_previous_version": result.changes,
        **{f"total_{name}": value for name, value in result.totals.items()},
    }


REPORT_DEPS = [
    AssetDep(point3_payments, partition_mapping=month_to_days),
    *(AssetDep(upstream, partition_mapping=same_merchant) for upstream in DERIVED),
]


@asset(
    partitions_def=monthly_partitions,
    deps=REPORT_DEPS,
    group_name=GROUP,
    kinds={"excel"},
    automation_condition=RERENDER_CHANGED_PERIODS,
    description="The merchant's month's tax workbook (VAT and culture expenses), versioned when its data changes.",
)
def monthly_tax_report(
    context: AssetExecutionContext, warehouse: WarehouseResource, reports_dir: ReportsResource
) -> MaterializeResult:
    def render(merchant_id: str) -> dict:
        wh, folder = warehouse.get(merchant_id), reports_dir.path(merchant_id)
        result = reports.render_tax_report(wh, report_month(context.partition_key), folder)
        _write_index(reports_dir, wh, folder)
        return _report_metadata(result, merchant_id)

    return for_each_merchant(context, render)


@asset(
    partitions_def=monthly_partitions,
    deps=[*REPORT_DEPS, AssetDep(settlement_balance_history, partition_mapping=same_merchant)],
    group_name=GROUP,
    kinds={"excel"},
    automation_condition=RERENDER_CHANGED_PERIODS,
    description="The merchant's month's settlement roll-forward: opening + sales − cancellations − fees − payouts "
                "= closing, payouts matched to bank deposits.",
)
def monthly_reconciliation_report(
    context: AssetExecutionContext, warehouse: WarehouseResource, reports_dir: ReportsResource
) -> MaterializeResult:
    def render(merchant_id: str) -> dict:
        wh, folder = warehouse.get(merchant_id), reports_dir.path(merchant_id)
        result = reports.render_reconciliation_report(wh, report_month(context.partition_key), folder,
                                                      terms=reconciliation_terms(merchant_id))
        _write_index(reports_dir, wh, folder)
        return {**_report_metadata(result, merchant_id), **_roll_forward_metadata(result.totals)}

    return for_each_merchant(context, render)


def _write_index(reports_dir: ReportsResource, wh, folder) -> None:
    if reports_dir.write_index:
        reports.write_index(wh, folder)


def reconciliation_terms(merchant_id: str):
    """The merchant's declared fee, credit timing and tolerances (its merchants-file entry's terms
    over the process environment); a malformed setting fails the step with its sentence."""
    try:
        return config.reconciliation_terms({**os.environ, **merchant(merchant_id).environment()})
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
        group_name=GROUP,
        kinds={"excel"},
        automation_condition=RERENDER_CHANGED_PERIODS,
        description=f"The merchant's {what} VAT workbook (per business: 과세 공급가액, 부가세, 면세, 미분류), "
                    "versioned when its data changes.",
    )
    def vat_period_report(
        context: AssetExecutionContext, warehouse: WarehouseResource, reports_dir: ReportsResource
    ) -> MaterializeResult:
        period = report_period(kind, context.partition_key)

        def render(merchant_id: str) -> dict:
            wh, folder = warehouse.get(merchant_id), reports_dir.path(merchant_id)
            result = reports.render_tax_report(wh, period, folder)
            _write_index(reports_dir, wh, folder)
            with wh.connect(read_only=True) as conn:
                split = summaries.period_split_totals(conn, Period.parse(period))
            return _report_metadata(result, merchant_id) | {f"split_{k}": v for k, v in split.items()}

        return for_each_merchant(context, render)

    return vat_period_report


vat_quarter_report = _vat_period_report(QUARTER, "vat_quarter_report", "quarter's (제1기·제2기 예정, 법인 확정)")
vat_half_year_report = _vat_period_report(HALF, "vat_half_year_report", "half-year's (제1기·제2기 확정)")
vat_year_report = _vat_period_report(YEAR, "vat_year_report", "year's (간이과세자, 사업장현황신고)")
VAT_PERIOD_REPORTS = {QUARTER: vat_quarter_report, HALF: vat_half_year_report, YEAR: vat_year_report}

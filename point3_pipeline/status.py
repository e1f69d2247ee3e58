"""`point3 status`: what the warehouse covers, the last runs, what is not final and why,
quarantined records and the balance; `point3 status --all`: one line of it per merchant."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources

import duckdb

from point3_pipeline import fleet, summaries
from point3_pipeline.config import kst_today
from point3_pipeline.periods import QUARTER, Period
from point3_pipeline.quarantine import CONFLICT_PREFIX
from point3_pipeline.reports.data import coverage
from point3_pipeline.summaries import rejected_reasons
from point3_pipeline.sync.plan import synced_days
from point3_pipeline.merchants import Merchant, Merchants
from point3_pipeline.warehouse import Warehouse, WarehouseDamaged, WarehouseError, first_line

_LISTED = 10  # lines per list; the rest are counted


def _ranges(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if ranges and day == ranges[-1][1] + dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _format_ranges(days: list[dt.date]) -> str:
    if not days:
        return "none"
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in _ranges(days))


def _is_locked(exc: WarehouseError) -> bool:
    return isinstance(exc.__cause__, duckdb.IOException)


def format_status(warehouse: Warehouse, *, today: dt.date | None = None, period: Period | None = None) -> str:
    """The status text, with the tax split of `period`, or of the current and last VAT quarter
    (from `today`, KST) when none is given."""
    source = warehouse.path
    try:
        reader = Warehouse(warehouse.path, lock_timeout=2.0)
        with reader.connect(read_only=True) as conn:
            return _status(conn, source, today, period)
    except WarehouseDamaged:
        raise  # its sentence says how to restore; the copy's figures would hide it
    except WarehouseError as exc:
        if not _is_locked(exc):
            raise
        if not warehouse.published_path.exists():
            return (
                f"warehouse: {source} is held by another process, most likely a first sync still running; "
                f"no published copy ({warehouse.published_path.name}) exists until a sync has finished, "
                "so there is nothing to show yet: run `point3 status` again when it ends."
            )
        source = warehouse.published_path
        with Warehouse(source).connect(read_only=True) as conn:
            return _status(conn, f"{source} (the warehouse itself is busy with a sync)", today, period)


def _status(conn: duckdb.DuckDBPyConnection, source, today: dt.date | None, period: Period | None) -> str:
    lines = [f"warehouse: {source}"]
    lines += _coverage_lines(conn)
    count, total, canceled = conn.execute(
        "SELECT count(*), coalesce(sum(total_charge), 0), count(*) FILTER (WHERE is_canceled) FROM payments"
    ).fetchone()
    lines.append(f"payments: {count:,} ({canceled:,} cancelled), total {total:,} won")
    lines += _run_lines(conn)
    lines += _quarantine_lines(conn)
    today = today or kst_today()
    lines += _split_lines(conn, today, [(period, "")] if period else _quarters(today))
    balance = conn.execute(
        "SELECT observed_at, balance FROM settlement_observations ORDER BY observed_at DESC LIMIT 1"
    ).fetchone()
    lines.append(
        "settlement balance: " + (f"{balance[1]:,} won at {balance[0]:%Y-%m-%d %H:%M} KST" if balance else "not observed yet")
    )
    return "\n".join(lines)


def _coverage_lines(conn: duckdb.DuckDBPyConnection) -> list[str]:
    read = [r[0] for r in conn.execute("SELECT window_date FROM sync_coverage ORDER BY window_date").fetchall()]
    complete = synced_days(conn, read[0], read[-1]) if read else []
    partial = sorted(set(read) - set(complete))
    lines = [f"days synced (final): {len(complete)}: {_format_ranges(complete)}",
             f"days read but not final yet: {_format_ranges(partial)}"]
    if complete:
        span = [complete[0] + dt.timedelta(days=i) for i in range((complete[-1] - complete[0]).days + 1)]
        missing = sorted(set(span) - set(read))
        if missing:
            lines.append(f"gaps inside the synced range: {_format_ranges(missing)}")
    # The latest read of a day can be not final even when an earlier one was (conflicts, a bound).
    latest = conn.execute(
        "SELECT window_date, arg_max(incomplete_reason, finished_at) FROM sync_windows GROUP BY window_date "
        "HAVING NOT arg_max(is_complete, finished_at) ORDER BY window_date"
    ).fetchall()
    lines.append(f"latest read not final: {len(latest)} day(s)" + (":" if latest else ""))
    lines += [f"  {day}: {reason}" for day, reason in latest[-_LISTED:]]
    return lines


def _run_lines(conn: duckdb.DuckDBPyConnection) -> list[str]:
    runs = conn.execute(
        "SELECT r.run_id, mode, first_day, last_day, started_at, finished_at, status, windows_done, windows_planned, "
        "records_read, payments_new, newly_canceled, rejected, retries, error, "
        "(SELECT count(*) FROM payment_events AS e "
        " WHERE e.run_id = r.run_id AND e.event = 'first_seen' AND e.is_canceled) AS first_seen_canceled "
        "FROM sync_runs AS r ORDER BY run_id DESC LIMIT 5"
    ).fetchall()
    lines = ["last runs:"]
    for run in runs:
        (run_id, mode, first, last, started, finished, status, done, planned, records, new, canceled_n, rejected,
         retries, error, first_seen_canceled) = run
        ended = f"{finished:%Y-%m-%d %H:%M}" if finished else "-"
        lines.append(
            f"  #{run_id} {mode:<11} {first}..{last} started {started:%Y-%m-%d %H:%M} ended {ended} {status}: "
            f"{done}/{planned} windows, {records:,} records, {new:,} new, "
            f"{canceled_n - first_seen_canceled:,} cancellations detected, "
            f"{first_seen_canceled:,} already cancelled when first seen, "
            f"{rejected:,} rejected, {retries} retries" + (f" ({error})" if error else "")
        )
    if not runs:
        lines.append("  none yet")
    return lines


def _quarantine_lines(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rejected = rejected_reasons(conn)
    lines = [f"rejected records: {sum(n for _, n in rejected):,}"]
    lines += [f"  {n:,} × {reason}" for reason, n in rejected[:_LISTED]]
    conflicts = conn.execute(
        "SELECT signature, max(window_date), count(*) FROM rejected_records WHERE starts_with(reason, ?) "
        "GROUP BY signature ORDER BY 2 DESC, 1",
        [CONFLICT_PREFIX],
    ).fetchall()
    if conflicts:
        lines.append(f"conflicting copies quarantined (none stored): {len(conflicts)} signature(s)")
        lines += [f"  {signature} on {day}: {n} differing copies" for signature, day, n in conflicts[:_LISTED]]
    return lines


def _quarters(today: dt.date) -> list[tuple[Period, str]]:
    current = Period.containing(QUARTER, today)
    last = Period.containing(QUARTER, current.first - dt.timedelta(days=1))
    return [(current, ", to date"), (last, ", last quarter")]


def _split_lines(conn: duckdb.DuckDBPyConnection, today: dt.date, periods: list[tuple[Period, str]]) -> list[str]:
    """Per business, the tax split of each period, and why each is not final (days without a
    complete sync, payments a person must classify)."""
    declared = conn.execute("SELECT count(DISTINCT business_id) FROM business_declarations").fetchone()[0]
    lines = ["tax split (filing figures: sales − the cancellations that belong to the period):"]
    if not declared:
        lines.append("  no businesses declared (POINT3_BUSINESSES unset): every payment is split by the rule, "
                     "one line per clientNickname")
    for period, when in periods:
        lines.append(f"  {period.label} {period.label_ko}{when}: {_finality(conn, period, today)}")
        split = summaries.period_split(conn, period)
        lines += [
            f"    {b.business}: taxable supply {b.taxable_supply:,} won, VAT {b.vat:,} won, exempt {b.exempt_amount:,} won, "
            f"unclassified {b.unclassified_amount:,} won; {b.unclassified_count:,} unclassified, "
            f"{b.impossible_vat_count:,} impossible-VAT payment(s)"
            for b in split
        ] or ["    no sales or cancellations"]
    return lines


def _finality(conn: duckdb.DuckDBPyConnection, period: Period, today: dt.date) -> str:
    reasons = []
    missing = coverage(conn, period, today).missing
    if missing:
        reasons.append(f"{len(missing)} of {len(period.days)} days without a complete sync")
    unclassified = summaries.unclassified_count(conn, period)
    if unclassified:
        reasons.append(f"{unclassified:,} unclassified payment(s) or cancellation(s): classify them with `point3 classify`")
    return "final" if not reasons else "NOT final: " + "; ".join(reasons)


# --- `point3 status --all`: one line per merchant ----------------------------------------------


@dataclass(frozen=True)
class MerchantStatus:
    """What one merchant's line says. `failing` names what an operator must fix."""

    merchant_id: str
    source: str  # "warehouse", "published copy" or "none"
    complete_days: int = 0
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    gaps: tuple[dt.date, ...] = ()  # days inside first..last without a complete sync
    last_run: str | None = None
    rejected: int = 0
    unclassified: int = 0
    balance: str | None = None
    reports: tuple[str, ...] = ()  # "tax 2026-02 v2 final"
    failing: tuple[str, ...] = ()

    def line(self) -> str:
        if self.first_day is None:
            coverage_text = "no complete day yet"
        else:
            gaps = f", gaps: {_format_ranges(list(self.gaps))}" if self.gaps else ", no gaps"
            coverage_text = f"{self.first_day}..{self.last_day} ({self.complete_days} complete days{gaps})"
        parts = [
            coverage_text,
            f"last run {self.last_run or 'none yet'}",
            f"{self.rejected:,} rejected, {self.unclassified:,} unclassified",
            f"balance {self.balance or 'not observed yet'}",
            "reports: " + (", ".join(self.reports) or "none yet"),
        ]
        read_from = " [read from the published copy]" if self.source == "published copy" else ""
        failing = "FAILING: " + "; ".join(self.failing) if self.failing else "ok"
        return f"{self.merchant_id}: {failing}{read_from} | " + " | ".join(parts)


def merchant_status(merchant: Merchant) -> MerchantStatus:
    """One merchant's status from its warehouse, or from its published copy while the warehouse
    is busy or damaged; what cannot be read is named in `failing`, never raised."""
    warehouse = merchant.warehouse()
    failing: list[str] = []
    if not warehouse.path.exists():
        return MerchantStatus(merchant.id, "none", failing=(f"not synced yet: run `point3 sync --merchant {merchant.id}`",))
    if not warehouse.published_path.exists():
        failing.append(f"no published copy yet: run `point3 publish --merchant {merchant.id}`")
    try:
        with Warehouse(warehouse.path, lock_timeout=2.0).connect(read_only=True) as conn:
            return _merchant_figures(conn, merchant.id, "warehouse", failing)
    except WarehouseDamaged as exc:
        failing.insert(0, f"the warehouse is damaged: {exc}")
    except WarehouseError as exc:
        if not _is_locked(exc):
            failing.insert(0, str(exc))
    except duckdb.Error as exc:
        failing.insert(0, f"the warehouse cannot be read: {first_line(exc)}")
    return _published_status(merchant, failing)


def _published_status(merchant: Merchant, failing: list[str]) -> MerchantStatus:
    """The figures of the published copy, when the warehouse itself cannot be read now."""
    copy = Warehouse(merchant.published_path)
    if not copy.path.exists():
        return MerchantStatus(merchant.id, "none", failing=tuple(failing) or (
            "the warehouse is busy (most likely a first sync) and there is no published copy yet",))
    try:
        with copy.connect(read_only=True) as conn:
            return _merchant_figures(conn, merchant.id, "published copy", failing)
    except (WarehouseError, duckdb.Error) as exc:
        return MerchantStatus(merchant.id, "none", failing=(*failing, f"the published copy cannot be read either: {first_line(exc)}"))


def _merchant_figures(conn: duckdb.DuckDBPyConnection, merchant_id: str, source: str, failing: list[str]) -> MerchantStatus:
    read = [r[0] for r in conn.execute("SELECT window_date FROM sync_coverage ORDER BY window_date").fetchall()]
    complete = synced_days(conn, read[0], read[-1]) if read else []
    gaps: tuple[dt.date, ...] = ()
    if complete:
        span = (complete[0] + dt.timedelta(days=i) for i in range((complete[-1] - complete[0]).days + 1))
        gaps = tuple(sorted(set(span) - set(complete)))
    run_id, mode, status, started, finished, error, rejected, unclassified, observed_at, balance = conn.execute(
        _status_sql("merchant_line")).fetchone()
    last_run = None
    if run_id is not None:
        when = f"{(finished or started):%Y-%m-%d %H:%M}"
        last_run = f"#{run_id} {mode} {status} {when}"
        if status != "succeeded":
            failing.append(f"the last run #{run_id} {status}" + (f": {error}" if error else ""))
    money = None if balance is None else f"{balance:,} won at {observed_at:%Y-%m-%d %H:%M} KST"
    return MerchantStatus(
        merchant_id, source, len(complete), complete[0] if complete else None, complete[-1] if complete else None,
        gaps, last_run, int(rejected), int(unclassified), money, tuple(_latest_reports(conn)), tuple(failing),
    )  # fmt: skip


def _latest_reports(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The newest period's latest version of each kind of workbook, and whether it is final."""
    lines = []
    for (kind,) in conn.execute(_status_sql("report_kinds")).fetchall():
        latest = summaries.latest_reports(conn, kind)
        if latest:
            period, version = max(latest.items(), key=lambda item: item[0].first)
            lines.append(f"{kind} {period.label} v{version.version} {'final' if version.is_final else 'not final'}")
    return lines


def fleet_status(merchants: Merchants) -> list[str]:
    """`point3 status --all`: one line per merchant of the file (its bad entries included), in
    file order; merchants are read a few at a time, and one that cannot be read is its line."""
    outcomes = fleet.run_each(merchants.merchants, merchant_status)
    lines = [o.value.line() if o.ok else f"{o.merchant_id}: FAILING: {o.error}" for o in outcomes]
    lines += [f"{e.entry}: FAILING: {e.message}" for e in merchants.errors]
    return lines


def _status_sql(name: str) -> str:
    return resources.files("point3_pipeline.sql").joinpath("status", f"{name}.sql").read_text(encoding="utf-8")

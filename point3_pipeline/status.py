"""`point3 status`: what the warehouse covers, the last runs, rejected records and the balance."""

from __future__ import annotations

import datetime as dt

from point3_pipeline.summaries import rejected_reasons
from point3_pipeline.warehouse import Warehouse, WarehouseDamaged, WarehouseError


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


def format_status(warehouse: Warehouse) -> str:
    source = warehouse.path
    try:
        reader = Warehouse(warehouse.path, lock_timeout=2.0)
        with reader.connect(read_only=True) as conn:
            return _status(conn, source)
    except WarehouseDamaged:
        raise  # its sentence says how to restore; the copy's figures would hide it
    except WarehouseError:
        if not warehouse.published_path.exists():
            raise
        source = warehouse.published_path
        with Warehouse(source).connect(read_only=True) as conn:
            return _status(conn, f"{source} (the warehouse itself is busy with a sync)")


def _status(conn, source) -> str:
    lines = [f"warehouse: {source}"]
    complete = [r[0] for r in conn.execute(
        "SELECT window_date FROM sync_coverage WHERE is_complete ORDER BY window_date").fetchall()]
    partial = [r[0] for r in conn.execute(
        "SELECT window_date FROM sync_coverage WHERE NOT is_complete ORDER BY window_date").fetchall()]
    lines.append(f"days synced (final): {len(complete)}: {_format_ranges(complete)}")
    lines.append(f"days read but not final yet: {_format_ranges(partial)}")
    if complete:
        gaps = [complete[0] + dt.timedelta(days=i) for i in range((complete[-1] - complete[0]).days + 1)]
        missing = sorted(set(gaps) - set(complete) - set(partial))
        if missing:
            lines.append(f"gaps inside the synced range: {_format_ranges(missing)}")
    count, total, canceled = conn.execute(
        "SELECT count(*), coalesce(sum(total_charge), 0), count(*) FILTER (WHERE is_canceled) FROM payments"
    ).fetchone()
    lines.append(f"payments: {count:,} ({canceled:,} cancelled), total {total:,} won")
    lines.append("last runs:")
    runs = conn.execute(
        "SELECT run_id, mode, first_day, last_day, started_at, finished_at, status, windows_done, windows_planned, "
        "records_read, payments_new, newly_canceled, rejected, retries, error "
        "FROM sync_runs ORDER BY run_id DESC LIMIT 5"
    ).fetchall()
    for run in runs:
        (run_id, mode, first, last, started, finished, status, done, planned, records, new, canceled_n, rejected,
         retries, error) = run
        ended = f"{finished:%Y-%m-%d %H:%M}" if finished else "-"
        lines.append(
            f"  #{run_id} {mode:<11} {first}..{last} started {started:%Y-%m-%d %H:%M} ended {ended} {status}: "
            f"{done}/{planned} windows, {records:,} records, {new:,} new, {canceled_n:,} newly cancelled, "
            f"{rejected:,} rejected, {retries} retries" + (f" ({error})" if error else "")
        )
    if not runs:
        lines.append("  none yet")
    rejected = rejected_reasons(conn)
    lines.append(f"rejected records: {sum(n for _, n in rejected):,}")
    lines.extend(f"  {n:,} × {reason}" for reason, n in rejected[:10])
    balance = conn.execute(
        "SELECT observed_at, balance FROM settlement_observations ORDER BY observed_at DESC LIMIT 1"
    ).fetchone()
    lines.append(
        "settlement balance: " + (f"{balance[1]:,} won at {balance[0]:%Y-%m-%d %H:%M} KST" if balance else "not observed yet")
    )
    return "\n".join(lines)

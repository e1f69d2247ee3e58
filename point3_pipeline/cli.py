"""The `point3` command: sandbox, sync, sweep, settlement, status, reports, key rotation.

Settings come from the environment (see config.py); a missing or malformed one stops the
command with one sentence naming the variable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence

from point3_pipeline import config
from point3_pipeline.errors import Point3Error
from point3_pipeline.keys import KeyNotSavedError
from point3_pipeline.sync import DEFAULT_LOOKBACK_DAYS, DEFAULT_SWEEP_DAYS
from point3_pipeline.warehouse import Warehouse, WarehouseError


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date as YYYY-MM-DD") from None


def _month(value: str) -> str:
    from point3_pipeline.reports.data import Month

    try:
        return Month.parse(value).label
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a month as YYYY-MM") from None


def _count(minimum: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least {minimum}")
        return number

    return parse


def _warehouse() -> Warehouse:
    return Warehouse(config.warehouse_path())


def _client():
    from point3_pipeline.client import Point3Client

    return Point3Client(config.api_url(), config.secret_key())


def _print_progress(done: int, total: int, window) -> None:
    rate = window.records_read / window.seconds if window.seconds else 0.0
    flags = "" if window.is_complete else "  (not final: read again next run)"
    retries = f", {window.retries} retries" if window.retries else ""
    print(
        f"[{done}/{total}] {window.window_date}: {window.records_read:,} records, {window.payments_new:,} new, "
        f"{window.payments_changed:,} changed, {window.newly_canceled:,} newly cancelled, "
        f"{window.rejected:,} rejected{retries}, {rate:,.0f} records/s{flags}",
        flush=True,
    )


def _finish_sync(warehouse: Warehouse, result) -> int:
    warehouse.refresh_derived()
    published = warehouse.publish()
    totals = result.summary()
    print(
        f"run {result.run_id} ({result.mode}) {result.first_day}..{result.last_day}: {totals['windows']} windows, "
        f"{totals['records_read']:,} records, {totals['payments_new']:,} new, {totals['payments_changed']:,} changed, "
        f"{totals['newly_canceled']:,} newly cancelled, {totals['rejected']:,} rejected, {totals['retries']} retries "
        f"in {result.seconds:.1f} s"
    )
    if result.incomplete_days:
        print(f"not final yet (read again next run): {', '.join(str(d) for d in result.incomplete_days)}")
    print(f"analysts' copy: {published}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from point3_pipeline import sync

    warehouse = _warehouse()
    with _client() as client:
        if args.since is not None:
            until = args.until or sync.kst_now().date()
            if until < args.since:
                raise SystemExit(f"point3 sync: --until {until} is before --since {args.since}")
            result = sync.sync_range(client, warehouse, args.since, until, progress=_print_progress)
        else:
            if args.until is not None:
                raise SystemExit("point3 sync: --until needs --since")
            result = sync.sync_incremental(
                client, warehouse, start_date=config.start_date(), lookback_days=args.lookback_days,
                progress=_print_progress,
            )
    return _finish_sync(warehouse, result)


def cmd_sweep(args: argparse.Namespace) -> int:
    from point3_pipeline import sync

    warehouse = _warehouse()
    with _client() as client:
        result = sync.sweep(client, warehouse, days=args.days, progress=_print_progress)
    return _finish_sync(warehouse, result)


def cmd_settlement(args: argparse.Namespace) -> int:
    from point3_pipeline import sync

    warehouse = _warehouse()
    with _client() as client:
        observation = sync.observe_settlement(client, warehouse)
    warehouse.refresh_derived("settlement_balance_history")
    warehouse.publish()
    change = "" if observation.change_since_previous is None else f" (change {observation.change_since_previous:+,} won)"
    print(f"settlement balance at {observation.observed_at:%Y-%m-%d %H:%M:%S} KST: {observation.balance:,} won{change}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from point3_pipeline.status import format_status

    print(format_status(_warehouse()))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    print(_warehouse().publish())
    return 0


def cmd_key_rotate(args: argparse.Namespace) -> int:
    from point3_pipeline.keys import rotate_key

    path = config.key_file()
    with _client() as client:
        rotate_key(client, path)
    print(f"merchant key rotated; the new key is in {path} (the old key no longer works)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from point3_pipeline import reports

    warehouse = _warehouse()
    reports_dir = config.reports_dir()
    if args.kind == "index":
        print(reports.write_index(warehouse, reports_dir))
        return 0
    render = reports.render_tax_report if args.kind == "tax" else reports.render_reconciliation_report
    result = render(warehouse, args.month, reports_dir)
    state = "written" if result.created else "unchanged since the latest version"
    final = "final" if result.is_final else f"NOT final: {result.days_synced}/{result.days_in_month} days synced"
    print(f"{result.kind} report {result.month} v{result.version} {state}: {result.path} ({final})")
    reports.write_index(warehouse, reports_dir)
    warehouse.publish()  # the report's version record is warehouse data too
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from point3_pipeline.sandbox.server import run_from_args

    return run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="point3", description="Keep a point3 merchant's books straight.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and lock waits")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sync", help="incremental sync (or a date range) of payments into the warehouse")
    p.add_argument("--since", type=_date, help="first KST day of a range to (re)sync")
    p.add_argument("--until", type=_date, help="last KST day of the range (default: today)")
    p.add_argument("--lookback-days", type=_count(0), default=DEFAULT_LOOKBACK_DAYS,
                   help="incremental: days re-read before the last complete one (default %(default)s)")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("sweep", help="re-read the last N days to catch late cancellations")
    p.add_argument("--days", type=_count(1), default=DEFAULT_SWEEP_DAYS,
                   help="how many days back from today to re-read (default %(default)s)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("settlement", help="take one observation of the settlement balance")
    p.set_defaults(func=cmd_settlement)

    p = sub.add_parser("status", help="coverage, last runs, rejected records and the balance")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("publish", help="refresh the analysts' read-only copy of the warehouse")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("key", help="merchant key management")
    key_sub = p.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    k = key_sub.add_parser("rotate", help="get a new key from point3 and write it to POINT3_SECRET_KEY_FILE")
    k.set_defaults(func=cmd_key_rotate)

    p = sub.add_parser("report", help="render a monthly Excel report")
    p.add_argument("kind", choices=["tax", "reconciliation", "index"])
    p.add_argument("--month", type=_month, help="YYYY-MM (KST)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sandbox", help="run the local point3 sandbox server")
    from point3_pipeline.sandbox.server import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "report" and args.kind != "index" and args.month is None:
        parser.error("point3 report tax/reconciliation needs --month YYYY-MM")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except config.ConfigError as exc:
        print(f"point3: {exc}", file=sys.stderr)
        return 2
    except (Point3Error, WarehouseError, KeyNotSavedError) as exc:
        print(f"point3: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("point3: interrupted; finished windows are kept, the one in progress was rolled back", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `point3` command: sandbox, sync, sweep, settlement, status, reports, key rotation.

Settings come from the environment (see config.py); a missing or malformed one, a folder
that cannot be written and a bad argument each stop the command with one sentence naming what
to fix (exit 2). SIGTERM is handled like Ctrl-C: the run in progress is recorded as
interrupted and the command exits 143 (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

import duckdb

from point3_pipeline import config
from point3_pipeline.errors import Point3Error
from point3_pipeline.keys import KeyNotSavedError
from point3_pipeline.sync import DEFAULT_LOOKBACK_DAYS, DEFAULT_SWEEP_DAYS
from point3_pipeline.warehouse import Warehouse, WarehouseError


class BalanceNotStoredError(Exception):
    """The balance was fetched but not stored; the message carries it, since point3 keeps no history."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so the library records the run as interrupted."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), not the usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _date(value: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date as YYYY-MM-DD") from None
    if day < config.EARLIEST_DAY:
        raise argparse.ArgumentTypeError(f"{value} is before {config.EARLIEST_DAY}, earlier than point3 can have payments")
    return day


def _month(value: str) -> str:
    from point3_pipeline.periods import MONTH, Period

    try:
        month = Period.parse(value)
    except ValueError:
        month = None
    if month is None or month.kind != MONTH:
        raise argparse.ArgumentTypeError(f"{value!r} is not a month as YYYY-MM")
    this_month = config.kst_today().replace(day=1)
    if not config.EARLIEST_DAY <= month.first <= this_month:
        raise argparse.ArgumentTypeError(
            f"{value} is not a month from {config.EARLIEST_DAY:%Y-%m} (before it point3 has no payments) "
            f"through this month, {this_month:%Y-%m}"
        )
    return month.label


def _days_back(minimum: int):
    """A count of days back from today: at least `minimum`, reaching no further than EARLIEST_DAY."""

    def parse(value: str) -> int:
        most = (config.kst_today() - config.EARLIEST_DAY).days + 1
        number = int(value) if value.isascii() and value.isdigit() else minimum - 1
        if not minimum <= number <= most:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a whole number from {minimum} to {most} "
                f"(more would reach back before {config.EARLIEST_DAY}, earlier than point3 can have payments)"
            )
        return number

    return parse


def _warehouse(*, writable: bool = True) -> Warehouse:
    return Warehouse(config.writable_warehouse_path() if writable else config.warehouse_path())


def _client():
    from point3_pipeline.client import Point3Client

    return Point3Client(config.api_url(), config.secret_key(), limits=config.limits())


def _print_progress(done: int, total: int, window) -> None:
    rate = window.records_read / window.seconds if window.seconds else 0.0
    flags = "" if window.is_complete else "  (not final: read again next run)"
    retries = f", {window.retries} retries" if window.retries else ""
    print(
        f"[{done}/{total}] {window.window_date}: {window.records_read:,} records, {window.payments_new:,} new, "
        f"{window.payments_changed:,} changed, {window.cancellations_detected:,} cancellations detected, "
        f"{window.first_seen_canceled:,} already cancelled when first seen, "
        f"{window.rejected:,} rejected{retries}, {rate:,.0f} records/s{flags}",
        flush=True,
    )


def _run_sync(warehouse: Warehouse, run) -> int:
    """Run a sync (the library refreshes the derived tables before it marks the run succeeded)
    and publish what it stored; a run with windows it could not read still publishes them,
    since every stored window is valid, and exits 1 with its reason."""
    from point3_pipeline import sync

    try:
        result = run()
    except sync.SyncFailed as exc:
        _print_run(exc.result, warehouse.publish())
        print(f"point3: the run failed: {exc}", file=sys.stderr)
        return 1
    _print_run(result, warehouse.publish())
    return 0


def _print_run(result, published) -> None:
    totals = result.summary()
    print(
        f"run {result.run_id} ({result.mode}) {result.first_day}..{result.last_day}: {totals['windows']} windows, "
        f"{totals['records_read']:,} records, {totals['payments_new']:,} new, {totals['payments_changed']:,} changed, "
        f"{totals['cancellations_detected']:,} cancellations detected, "
        f"{totals['first_seen_canceled']:,} already cancelled when first seen, {totals['rejected']:,} rejected, "
        f"{totals['retries']} retries in {result.seconds:.1f} s"
    )
    if result.incomplete_days:
        print(f"not final yet (read again next run): {', '.join(str(d) for d in result.incomplete_days)}")
    print(f"analysts' copy: {published}")


def cmd_sync(args: argparse.Namespace) -> int:
    from point3_pipeline import sync

    warehouse = _warehouse()
    options = {"progress": _print_progress, "limits": config.limits(), "refresh_derived": True}
    with _client() as client:
        if args.since is not None:
            until = args.until or sync.kst_now().date()
            if until < args.since:
                raise SystemExit(f"point3 sync: --until {until} is before --since {args.since}")
            return _run_sync(warehouse, lambda: sync.sync_range(client, warehouse, args.since, until, **options))
        if args.until is not None:
            raise SystemExit("point3 sync: --until needs --since")
        start = config.start_date()
        return _run_sync(warehouse, lambda: sync.sync_incremental(
            client, warehouse, start_date=start, lookback_days=args.lookback_days, **options))


def cmd_sweep(args: argparse.Namespace) -> int:
    from point3_pipeline import sync

    warehouse = _warehouse()
    with _client() as client:
        return _run_sync(warehouse, lambda: sync.sweep(
            client, warehouse, days=args.days, progress=_print_progress, limits=config.limits(), refresh_derived=True))


class _BalanceWitness:
    """The client, remembering the balance point3 returned and when, so a failed store cannot lose it."""

    def __init__(self, client, clock):
        self._client = client
        self._clock = clock
        self.balance: int | None = None
        self.observed_at: dt.datetime | None = None

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def settlement_balance(self) -> int:
        self.balance = self._client.settlement_balance()
        return self.balance

    def clock(self) -> dt.datetime:
        self.observed_at = self._clock()
        return self.observed_at


def cmd_settlement(args: argparse.Namespace) -> int:
    from point3_pipeline import sync

    warehouse = _warehouse()  # checked before fetching: point3 keeps no history of the balance
    with _client() as client:
        witness = _BalanceWitness(client, sync.kst_now)
        try:
            observation = sync.observe_settlement(witness, warehouse, clock=witness.clock)
        except (OSError, duckdb.Error, WarehouseError) as exc:
            if witness.balance is None:
                raise
            when = f"{witness.observed_at or sync.kst_now():%Y-%m-%d %H:%M:%S} KST"
            raise BalanceNotStoredError(
                f"the settlement balance {witness.balance:,} won observed at {when} could not be stored in "
                f"{warehouse.path} ({_first_line(exc)}); note it down, point3 keeps no history of it."
            ) from None
    warehouse.refresh_derived("settlement_balance_history")
    warehouse.publish()
    change = "" if observation.change_since_previous is None else f" (change {observation.change_since_previous:+,} won)"
    print(f"settlement balance at {observation.observed_at:%Y-%m-%d %H:%M:%S} KST: {observation.balance:,} won{change}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from point3_pipeline.status import format_status

    print(format_status(_warehouse(writable=False)))
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
    reports_dir = config.writable_reports_dir()
    if args.kind == "index":
        print(reports.write_index(warehouse, reports_dir))
        return 0
    render = reports.render_tax_report if args.kind == "tax" else reports.render_reconciliation_report
    result = render(warehouse, args.month, reports_dir)
    state = "written" if result.created else "unchanged since the latest version"
    final = "final" if result.is_final else f"NOT final: {result.days_synced}/{result.days_in_period} days synced"
    print(f"{result.kind} report {result.period} v{result.version} {state}: {result.path} ({final})")
    reports.write_index(warehouse, reports_dir)
    warehouse.publish()  # the report's version record is warehouse data too
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from point3_pipeline.sandbox.server import run_from_args

    return run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="point3", description="Keep a point3 merchant's books straight.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and lock waits")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sync", help="incremental sync (or a date range) of payments into the warehouse")
    p.add_argument("--since", type=_date, help="first KST day of a range to (re)sync")
    p.add_argument("--until", type=_date, help="last KST day of the range (default: today)")
    p.add_argument("--lookback-days", type=_days_back(0), default=DEFAULT_LOOKBACK_DAYS,
                   help="incremental: days re-read before the last complete one (default %(default)s)")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("sweep", help="re-read the last N days to catch late cancellations")
    p.add_argument("--days", type=_days_back(1), default=DEFAULT_SWEEP_DAYS,
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated in the main thread (once: a second one must not break the
    recording of the first), so a stopped run is recorded like a Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "report" and args.kind != "index" and args.month is None:
        parser.error("report tax/reconciliation needs --month YYYY-MM")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with _sigterm_as_interrupt():
            return args.func(args)
    except config.ConfigError as exc:
        print(f"point3: {exc}", file=sys.stderr)
        return 2
    except (Point3Error, WarehouseError, KeyNotSavedError, BalanceNotStoredError) as exc:
        print(f"point3: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"point3: cannot use {where}{exc.strerror or _first_line(exc)}.", file=sys.stderr)
        return 1
    except duckdb.IOException as exc:
        print(f"point3: the warehouse could not be read or written: {_first_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        what = "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"
        print(f"point3: {what}; finished windows are kept, the one in progress was rolled back", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())

"""The `point3` command: sandbox, sync, sweep, settlement (and its import), deposits import,
status, reports, key rotation, and the reports portal (users, audit, serve: cli_portal.py).

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
from pathlib import Path

import duckdb

from point3_pipeline import cli_merchants, cli_portal, config
from point3_pipeline.cli_merchants import current_env as _env
from point3_pipeline.errors import Point3Error
from point3_pipeline.export import ExportError
from point3_pipeline.keys import KeyNotSavedError
from point3_pipeline.portal.accounts import AccountError
from point3_pipeline.sync import DEFAULT_LOOKBACK_DAYS, DEFAULT_SWEEP_DAYS
from point3_pipeline.tax_split import ClassificationError
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


def _period(value: str) -> str:
    """Any report period (YYYY-MM, YYYY-Qn, YYYY-Hn, YYYY) that has begun, as its label."""
    from point3_pipeline.periods import Period

    try:
        period = Period.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if period.first > config.kst_today():
        raise argparse.ArgumentTypeError(f"{value} has not begun yet (today is {config.kst_today()} KST)")
    return period.label


# Which periods each kind of workbook is made for (korean-vat.md's VAT periods for `vat`).
REPORT_PERIODS = {
    "tax": ("month", "quarter", "half", "year"),
    "reconciliation": ("month",),
    "vat": ("quarter", "half", "year"),
}
_PERIOD_WORDS = {
    "month": "a month (YYYY-MM)", "quarter": "a quarter (YYYY-Qn)", "half": "a half-year (YYYY-Hn)", "year": "a year (YYYY)",
}


def report_period_problem(kind: str, label: str | None) -> str | None:
    """Why `label` is no period for a `kind` workbook, in one sentence; None if it is one."""
    from point3_pipeline.periods import Period

    allowed = " or ".join(_PERIOD_WORDS[k] for k in REPORT_PERIODS[kind])
    if label is None:
        return f"report {kind} needs --period: {allowed}"
    if Period.parse(label).kind not in REPORT_PERIODS[kind]:
        return f"report {kind} is made for {allowed}, not {label}"
    return None


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
    # The businesses file is read (and a mistake in it reported) before anything is done.
    path = config.writable_warehouse_path(_env()) if writable else config.warehouse_path(_env())
    return Warehouse(path, businesses=config.businesses(_env()))


def _client():
    from point3_pipeline.client import Point3Client

    return Point3Client(config.api_url(_env()), config.secret_key(_env()), limits=config.limits(_env()))


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
    progress = cli_merchants.in_this_merchant(_print_progress)
    options = {"progress": progress, "limits": config.limits(_env()), "refresh_derived": True}
    with _client() as client:
        if args.since is not None:
            until = args.until or sync.kst_now().date()
            if until < args.since:
                raise SystemExit(f"point3 sync: --until {until} is before --since {args.since}")
            return _run_sync(warehouse, lambda: sync.sync_range(client, warehouse, args.since, until, **options))
        if args.until is not None:
            raise SystemExit("point3 sync: --until needs --since")
        start = config.start_date(_env())
        return _run_sync(warehouse, lambda: sync.sync_incremental(
            client, warehouse, start_date=start, lookback_days=args.lookback_days, **options))


def cmd_sweep(args: argparse.Namespace) -> int:
    from point3_pipeline import sync

    warehouse = _warehouse()
    with _client() as client:
        return _run_sync(warehouse, lambda: sync.sweep(
            client, warehouse, days=args.days, progress=cli_merchants.in_this_merchant(_print_progress),
            limits=config.limits(_env()), refresh_derived=True))


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

    if args.action == "import":
        return _import(args, "settlement")
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


def _import(args: argparse.Namespace, kind: str) -> int:
    """`point3 settlement import FILE` / `point3 deposits import FILE`: all lines or none."""
    from point3_pipeline.deposits import import_deposits
    from point3_pipeline.imports import ImportRefused, import_balances

    if args.file is None:
        raise SystemExit(f"point3 {kind} import: give the CSV file to import")
    warehouse = _warehouse()
    try:
        result = (import_balances if kind == "settlement" else import_deposits)(warehouse, args.file)
    except ImportRefused as exc:
        print(f"point3: {exc}", file=sys.stderr)
        return 1
    what = "observations" if kind == "settlement" else "deposits"
    skipped = f", {result.skipped:,} withdrawals skipped" if result.skipped else ""
    print(f"{args.file} ({result.encoding}): {result.data_lines:,} lines, {result.added:,} {what} added, "
          f"{result.duplicates:,} already stored{skipped}, {len(result.conflicts):,} conflicting")
    for conflict in result.conflicts:
        print(f"  not stored: {conflict}")
    warehouse.publish()
    return 0


def cmd_deposits(args: argparse.Namespace) -> int:
    return _import(args, "deposits")


def cmd_status(args: argparse.Namespace) -> int:
    from point3_pipeline.status import format_status

    from point3_pipeline.periods import Period

    period = Period.parse(args.period) if args.period else None
    print(format_status(_warehouse(writable=False), period=period))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    print(_warehouse().publish())
    return 0


def cmd_key_rotate(args: argparse.Namespace) -> int:
    from point3_pipeline.keys import rotate_key

    path = config.key_file(_env())
    with _client() as client:
        rotate_key(client, path)
    print(f"merchant key rotated; the new key is in {path} (the old key no longer works)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from point3_pipeline import reports

    warehouse = _warehouse()
    reports_dir = config.writable_reports_dir(_env())
    if args.kind == "index":
        print(reports.write_index(warehouse, reports_dir))
        return 0
    # tax and vat are one workbook: render_tax_report takes any period.
    if args.kind == "reconciliation":
        result = reports.render_reconciliation_report(warehouse, args.period, reports_dir, terms=config.reconciliation_terms(_env()))
    else:
        result = reports.render_tax_report(warehouse, args.period, reports_dir)
    state = "written" if result.created else "unchanged since the latest version"
    final = "final" if result.is_final else f"NOT final: {result.days_synced}/{result.days_in_period} days synced"
    print(f"{result.kind} report {result.period} v{result.version} {state}: {result.path} ({final})")
    reports.write_index(warehouse, reports_dir)
    warehouse.publish()  # the report's version record is warehouse data too
    return 0


def _who(args: argparse.Namespace) -> str:
    import getpass

    if args.by is not None:
        return args.by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no user database entry (some containers)
        raise config.ConfigError("cannot tell who is classifying (no OS user name): give --by NAME.") from None


def cmd_classify(args: argparse.Namespace) -> int:
    from point3_pipeline import tax_split

    who = _who(args)
    warehouse = _warehouse()
    with warehouse.connect() as conn:
        if args.csv is not None:
            count = tax_split.classify_from_csv(conn, args.csv, who)
            done = f"{count:,} payments classified from {args.csv}"
        elif args.undo is not None:
            tax_split.unclassify(conn, args.undo, who, args.note or "")
            done = f"payment {args.undo}: classification by a person undone (back to its declaration or the rule)"
        else:
            tax_split.classify(conn, args.signature, args.tax_class, args.note or "", who)
            done = f"payment {args.signature} classified {args.tax_class} by {who}"
    # The split shows the person's word at once, and so does the analysts' copy.
    warehouse.refresh_derived("payment_tax_split")
    warehouse.publish()
    print(done)
    return 0


_CLASSIFICATIONS = """
    WITH actions AS (
        SELECT c.*, row_number() OVER (PARTITION BY signature ORDER BY classification_id DESC) = 1 AS is_newest
        FROM payment_classifications AS c
    )
    SELECT a.classification_id, a.signature, a.action, a.tax_class, a.classified_by, a.classified_at, a.note,
           s.payment_date, s.business_name, s.total_charge, s.tax_class AS split_class
    FROM actions AS a LEFT JOIN payment_tax_split AS s USING (signature)
    WHERE ? OR (a.is_newest AND a.action = 'classify')
    ORDER BY a.classification_id
"""


def cmd_classifications(args: argparse.Namespace) -> int:
    with _warehouse(writable=False).connect(read_only=True) as conn:
        rows = conn.execute(_CLASSIFICATIONS, [args.history]).fetchall()
    what = "every classify and undo, oldest first" if args.history else "payments classified by a person now"
    print(f"{len(rows):,} {what}:" if rows else f"none: no {what}")
    for cid, signature, action, tax_class, by, at, note, day, business, total, split_class in rows:
        payment = f"{day} {business} {total:,} won, split: {split_class}" if day else "payment not in the warehouse"
        print(f"#{cid} {at:%Y-%m-%d %H:%M} KST {action} {signature} {tax_class or '-'} by {by} ({payment}): {note}")
    return 0


EXPORT_ENCODINGS = {"utf-8-sig": "utf-8", "cp949": "cp949"}  # what people type -> export.ENCODINGS


def cmd_export_filing(args: argparse.Namespace) -> int:
    from point3_pipeline.export import export_filing
    from point3_pipeline.periods import Period

    period = Period.parse(args.period)
    out = args.out if args.out is not None else config.reports_dir(_env()) / period.label
    if args.out is not None and args.all_merchants:
        out = args.out / cli_merchants.current_merchant_id()  # one folder each, never one for all
    with _warehouse().connect() as conn:
        paths = export_filing(conn, period.first, period.last, out, EXPORT_ENCODINGS[args.encoding])
    print(f"{len(paths)} filing file(s) for {period.label} ({args.encoding}) in {out}:")
    for path in paths:
        print(f"  {path.name}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from point3_pipeline.sandbox.server import run_from_args

    return run_from_args(args)


def _add_tax_commands(sub) -> None:
    """classify, classifications and export: the tax split's commands."""
    p = sub.add_parser("classify", help="record a person's tax class for a payment (or undo it, or many from a CSV)")
    p.add_argument("signature", nargs="?", help="the payment's signature")
    p.add_argument("tax_class", nargs="?", metavar="CLASS", help="taxable, exempt or mixed")
    p.add_argument("--note", help="why (required to classify; optional with --undo)")
    p.add_argument("--by", help="who classifies (default: the OS user)")
    p.add_argument("--undo", metavar="SIGNATURE", help="undo the person's classification of this payment")
    p.add_argument("--csv", type=Path, metavar="FILE", help="classify every line of a CSV signature,tax_class,note; all or nothing")
    p.set_defaults(func=cmd_classify)
    _merchant_options(p)

    p = sub.add_parser("classifications", help="list the payments classified by a person")
    p.add_argument("--history", action="store_true", help="every classify and undo ever recorded")
    p.set_defaults(func=cmd_classifications)
    _merchant_options(p)

    p = sub.add_parser("export", help="export figures for other programs")
    export_sub = p.add_subparsers(dest="export_command", required=True, metavar="WHAT")
    e = export_sub.add_parser("filing", help="per business, a CSV of the period's daily filing lines")
    e.add_argument("--period", type=_period, required=True, help="YYYY-MM, YYYY-Qn, YYYY-Hn or YYYY (KST)")
    e.add_argument("--out", type=Path, help="folder to write into (default: the period's folder in POINT3_REPORTS_DIR)")
    e.add_argument("--encoding", choices=list(EXPORT_ENCODINGS), default="utf-8-sig",
                   help="utf-8-sig (UTF-8 with BOM, default) or cp949")
    e.set_defaults(func=cmd_export_filing)
    _merchant_options(e)


def _merchant_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """--merchant ID / --all, before the command or after it (there, absent ones leave the
    values given before it alone)."""
    group = parser.add_argument_group("merchants (POINT3_MERCHANTS)")
    group.add_argument("--merchant", dest="merchant_id", metavar="ID", default=None if top else argparse.SUPPRESS,
                       help="the merchant of the merchants file to work on")
    group.add_argument("--all", dest="all_merchants", action="store_true", default=False if top else argparse.SUPPRESS,
                       help="work on every merchant of the merchants file, one line prefix each")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="point3", description="Keep a point3 merchant's books straight.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and lock waits")
    _merchant_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sync", help="incremental sync (or a date range) of payments into the warehouse")
    p.add_argument("--since", type=_date, help="first KST day of a range to (re)sync")
    p.add_argument("--until", type=_date, help="last KST day of the range (default: today)")
    p.add_argument("--lookback-days", type=_days_back(0), default=DEFAULT_LOOKBACK_DAYS,
                   help="incremental: days re-read before the last complete one (default %(default)s)")
    p.set_defaults(func=cmd_sync)
    _merchant_options(p)

    p = sub.add_parser("sweep", help="re-read the last N days to catch late cancellations")
    p.add_argument("--days", type=_days_back(1), default=DEFAULT_SWEEP_DAYS,
                   help="how many days back from today to re-read (default %(default)s)")
    p.set_defaults(func=cmd_sweep)
    _merchant_options(p)

    p = sub.add_parser("settlement", help="take one observation of the settlement balance, or import earlier ones")
    p.add_argument("action", nargs="?", choices=["import"], help="import: store observations from FILE (observed_at,balance)")
    p.add_argument("file", nargs="?", type=Path, metavar="FILE.csv")
    p.set_defaults(func=cmd_settlement)
    _merchant_options(p)

    p = sub.add_parser("deposits", help="bank deposits for the reconciliation")
    deposits_sub = p.add_subparsers(dest="deposits_command", required=True, metavar="ACTION")
    d = deposits_sub.add_parser("import", help="import a bank's 거래내역 CSV (UTF-8 or CP949)")
    d.add_argument("file", type=Path, metavar="FILE.csv")
    d.set_defaults(func=cmd_deposits)
    _merchant_options(d)

    p = sub.add_parser("status", help="coverage, last runs, rejected records, the balance and the tax split "
                                      "(--all: one line per merchant)")
    p.add_argument("--period", type=_period,
                   help="show the tax split of this period (YYYY-MM, YYYY-Qn, YYYY-Hn, YYYY) instead of the current and last quarter")
    p.set_defaults(func=cmd_status)
    _merchant_options(p)

    p = sub.add_parser("publish", help="refresh the analysts' read-only copy of the warehouse")
    p.set_defaults(func=cmd_publish)
    _merchant_options(p)

    p = sub.add_parser("key", help="merchant key management")
    key_sub = p.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    k = key_sub.add_parser("rotate", help="get a new key from point3 and write it to POINT3_SECRET_KEY_FILE")
    k.set_defaults(func=cmd_key_rotate)
    _merchant_options(k)

    p = sub.add_parser("report", help="render an Excel workbook for a period, or the index of them")
    p.add_argument("kind", choices=["tax", "reconciliation", "vat", "index"],
                   help="tax: any period; vat: a quarter, half-year or year; reconciliation: a month")
    p.add_argument("--period", "--month", dest="period", type=_period,
                   help="YYYY-MM, YYYY-Qn, YYYY-Hn or YYYY (KST); --month is the old name")
    p.set_defaults(func=cmd_report)
    _merchant_options(p)

    _add_tax_commands(sub)

    p = sub.add_parser("sandbox", help="run the local point3 sandbox server")
    from point3_pipeline.sandbox.server import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_sandbox)
    cli_portal.add_commands(sub)
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


def _argument_problem(args: argparse.Namespace) -> str | None:
    """What argparse cannot check alone: which period a report takes, which form of classify."""
    if args.command == "report" and args.kind != "index":
        return report_period_problem(args.kind, args.period)
    if args.command == "classify":
        return _classify_problem(args)
    return None


def _classify_problem(args: argparse.Namespace) -> str | None:
    if args.csv is not None or args.undo is not None:
        if args.signature is not None or (args.csv is not None and args.undo is not None):
            return "classify takes one of SIGNATURE CLASS, --undo SIGNATURE or --csv FILE"
        if args.csv is not None and args.note is not None:
            return "classify --csv takes its notes from the file's note column, not --note"
        return None
    if args.signature is None or args.tax_class is None:
        return "classify needs SIGNATURE and CLASS (taxable, exempt or mixed), --undo SIGNATURE or --csv FILE"
    if args.tax_class not in ("taxable", "exempt", "mixed"):
        return f"CLASS must be taxable, exempt or mixed, not {args.tax_class!r}"
    if not (args.note or "").strip():
        return "classify needs --note TEXT saying why the payment has this class"
    return None


def _failure(exc: Exception) -> tuple[int, str]:
    """(exit code, one sentence) for what a command can meet that is no bug; anything else is raised again."""
    if isinstance(exc, config.ConfigError):
        return 2, str(exc)
    if isinstance(exc, (Point3Error, WarehouseError, KeyNotSavedError, BalanceNotStoredError, ClassificationError, ExportError,
                        AccountError)):
        return 1, str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return 1, f"cannot use {where}{exc.strerror or _first_line(exc)}."
    if isinstance(exc, duckdb.IOException):
        return 1, f"the warehouse could not be read or written: {_first_line(exc)}"
    raise exc


def _run(args: argparse.Namespace) -> int:
    """The command for the merchant(s) --merchant / --all name, or as today without a merchants file."""
    if args.command == "sandbox":
        if args.merchant_id is not None or args.all_merchants:
            raise config.ConfigError("point3 sandbox serves merchants of its own (--merchants N): "
                                     "--merchant and --all are for the pipeline's commands.")
        return args.func(args)
    if args.command in cli_portal.COMMANDS:
        if args.merchant_id is not None or args.all_merchants:
            raise config.ConfigError(f"point3 {args.command} is the reports portal's, for every merchant: "
                                     "give --merchant after `users add` to choose whom a person may see.")
        return args.func(args)
    selection = cli_merchants.select(args.merchant_id, args.all_merchants)
    if selection.every:
        return _run_all(args, selection)
    if not selection.merchants:
        return args.func(args)
    with cli_merchants.merchant_env(selection.merchants[0]):
        code = args.func(args)
    return _after_publish(args, selection) or code


def _run_all(args: argparse.Namespace, selection: cli_merchants.Selection) -> int:
    """--all: the command for every merchant, each line prefixed with its id; a merchant's
    failure is its line, and the exit code is 1 when any failed."""
    refused = cli_merchants.refusal(args.command, getattr(args, "action", None))
    if refused:
        raise config.ConfigError(f"--all: {refused}.")
    if args.command == "status":
        from point3_pipeline.status import fleet_status

        lines = fleet_status(selection.loaded)
        print("\n".join(lines))
        return 1 if any(": FAILING: " in line for line in lines) else 0
    runs = cli_merchants.run_for_each(selection, lambda: args.func(args), _failure,
                                      parallel=args.command in cli_merchants.PARALLEL_COMMANDS)
    for run in runs:
        if run.failure is not None:
            print(f"{run.merchant_id}: FAILED: {run.failure}", file=sys.stderr)
    failed = [run.merchant_id for run in runs if run.code != 0]
    code = _after_publish(args, selection)
    print(f"point3 {args.command}: {len(runs) - len(failed)} of {len(runs)} merchants succeeded"
          + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr if failed else sys.stdout)
    return 1 if failed else code


def _after_publish(args: argparse.Namespace, selection: cli_merchants.Selection) -> int:
    """After a command that publishes, with a merchants file: the combined catalog up to date."""
    if args.command not in cli_merchants.PUBLISHING_COMMANDS or not cli_merchants.has_merchants_file():
        return 0
    problem = cli_merchants.update_catalog(selection)
    if problem:
        print(f"point3: {problem}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = _argument_problem(args)
    if problem:
        parser.error(problem)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with _sigterm_as_interrupt():
            return _run(args)
    except (config.ConfigError, Point3Error, WarehouseError, KeyNotSavedError, BalanceNotStoredError,
            ClassificationError, ExportError, AccountError, OSError, duckdb.IOException) as exc:
        code, sentence = _failure(exc)
        print(f"point3: {sentence}", file=sys.stderr)
        return code
    except KeyboardInterrupt as exc:
        what = "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"
        print(f"point3: {what}; finished windows are kept, the one in progress was rolled back", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())

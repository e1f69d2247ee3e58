"""Which merchant a `point3` command works on, and running one command for every merchant.

`--merchant ID` picks one merchant of the merchants file (POINT3_MERCHANTS); `--all` runs the
command for each, the commands that mostly wait for point3 or write a merchant's own files on
the fleet's bounded thread pool, the others one merchant after another. Without either, a
deployment without the file works as it always did (the merchant `default` of the POINT3_*
variables) and a file with exactly one merchant means that one.

A command reads its settings through `current_env()`: the process environment, or in a
merchant's run that environment with the merchant's POINT3_* variables laid over it
(Merchant.environment), so two merchants running at once in two threads never see each
other's warehouse, reports folder or key. Their output lines are prefixed with the merchant id.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from point3_pipeline import catalog, fleet
from point3_pipeline.config import ConfigError
from point3_pipeline.merchants import DEFAULT_ID, ENV_VAR, Merchant, Merchants, load_merchants

_ENV: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("point3_env", default=None)
_PREFIX: contextvars.ContextVar[str | None] = contextvars.ContextVar("point3_output_prefix", default=None)

# The commands that mostly wait for point3 or write one merchant's own files: in parallel under --all.
PARALLEL_COMMANDS = frozenset({"sync", "sweep", "settlement", "publish", "report"})
# What --all refuses, and why: each acts on one merchant's own thing, by a person's choice.
ONE_AT_A_TIME = {
    "key": "key rotate replaces one merchant's key at a time: run it with --merchant ID",
    "deposits": "a bank export belongs to one merchant: import it with --merchant ID",
    "settlement import": "a balance history belongs to one merchant: import it with --merchant ID",
    "classify": "a payment belongs to one merchant: classify it with --merchant ID",
}
# The commands that publish a merchant's copy, after which the combined catalog is brought up to date.
PUBLISHING_COMMANDS = frozenset({"sync", "sweep", "settlement", "publish", "report", "classify", "deposits"})


def current_env() -> Mapping[str, str]:
    """The settings the running command reads: its merchant's, or the process environment."""
    env = _ENV.get()
    return os.environ if env is None else env


def current_merchant_id() -> str | None:
    """The merchant whose run this thread is in, under --all."""
    return _PREFIX.get()


def has_merchants_file(env: Mapping[str, str] = os.environ) -> bool:
    return bool(env.get(ENV_VAR, "").strip())


@dataclass(frozen=True)
class Selection:
    """What a command runs on: the merchants (none: the process environment as it is), and
    the merchants file's bad entries when every merchant was asked for."""

    loaded: Merchants | None  # None without a merchants file
    merchants: tuple[Merchant, ...]
    every: bool  # --all

    @property
    def failed_entries(self):
        return self.loaded.errors if self.every and self.loaded is not None else ()


def select(merchant_id: str | None, every: bool, env: Mapping[str, str] = os.environ) -> Selection:
    """The merchants `--merchant ID` / `--all` / neither mean; ConfigError with one sentence when
    they mean none."""
    if merchant_id is not None and every:
        raise ConfigError("give either --merchant ID or --all, not both.")
    if not has_merchants_file(env):
        if merchant_id not in (None, DEFAULT_ID):
            raise ConfigError(f"{ENV_VAR} is not set, so the only merchant is {DEFAULT_ID!r} (from the POINT3_* "
                              f"variables), not {merchant_id!r}: set {ENV_VAR} to the merchants file.")
        if not every:
            return Selection(None, (), False)  # today's single-merchant behaviour, untouched
        loaded = load_merchants(env)
        return Selection(loaded, loaded.merchants, True)
    loaded = load_merchants(env)
    if merchant_id is not None:
        return Selection(loaded, (loaded.get(merchant_id),), False)
    if every:
        return Selection(loaded, loaded.merchants, True)
    if len(loaded.merchants) + len(loaded.errors) == 1:
        if loaded.errors:
            raise ConfigError(loaded.errors[0].message)
        return Selection(loaded, loaded.merchants, False)
    count = len(loaded.merchants) + len(loaded.errors)
    raise ConfigError(f"{loaded.source} lists {count} merchants: name one with --merchant ID, or run every "
                      "one with --all.")


def refusal(command: str, action: str | None) -> str | None:
    """Why --all cannot run this command, or None."""
    return ONE_AT_A_TIME.get(f"{command} {action}") or ONE_AT_A_TIME.get(command)


@contextlib.contextmanager
def merchant_env(merchant: Merchant) -> Iterator[None]:
    """Settings of `merchant` for the command running in this thread."""
    token = _ENV.set({**os.environ, **merchant.environment()})
    try:
        yield
    finally:
        _ENV.reset(token)


class _PrefixedStream(io.TextIOBase):
    """stdout or stderr for many threads: a thread running a merchant writes whole lines, each
    prefixed with the merchant id; other threads write through unchanged."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: dict[int, str] = {}

    def write(self, text: str) -> int:
        prefix = _PREFIX.get()
        if prefix is None:
            with self._lock:
                return self._stream.write(text)
        key = threading.get_ident()
        with self._lock:
            buffered = self._pending.pop(key, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._pending[key] = rest
            for line in lines:
                self._stream.write(f"{prefix}: {line}\n")
            self._stream.flush()
        return len(text)

    def end_thread(self) -> None:
        """Write what this thread left without a line end."""
        with self._lock:
            rest = self._pending.pop(threading.get_ident(), "")
            if rest:
                self._stream.write(f"{_PREFIX.get()}: {rest}\n")

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()


@contextlib.contextmanager
def prefixed_output() -> Iterator[None]:
    """While it lasts, lines written by a merchant's thread carry the merchant id."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PrefixedStream(streams[0]), _PrefixedStream(streams[1])
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = streams


@dataclass(frozen=True)
class MerchantRun:
    merchant_id: str
    code: int
    failure: str | None  # one sentence, when the command failed with an error rather than its own output


def run_for_each(selection: Selection, command: Callable[[], int], failure: Callable[[BaseException], tuple[int, str]],
                 *, parallel: bool) -> list[MerchantRun]:
    """`command()` once per selected merchant, with its settings and its output prefixed.
    `failure` turns an exception into (exit code, sentence); a KeyboardInterrupt is not caught."""

    def run(merchant: Merchant) -> MerchantRun:
        token = _PREFIX.set(merchant.id)
        try:
            with merchant_env(merchant):
                try:
                    return MerchantRun(merchant.id, command(), None)
                except Exception as exc:
                    return MerchantRun(merchant.id, *failure(exc))
                except SystemExit as exc:  # an argument the command itself refuses
                    return MerchantRun(merchant.id, 2, str(exc.code))
        finally:
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, _PrefixedStream):
                    stream.end_thread()
            _PREFIX.reset(token)

    workers = fleet.max_parallel(os.environ) if parallel else 1
    with prefixed_output():
        outcomes = fleet.run_each(selection.merchants, run, max_workers=workers)
    runs = [o.value if o.ok else MerchantRun(o.merchant_id, 1, o.error) for o in outcomes]
    runs += [MerchantRun(e.entry, 2, e.message) for e in selection.failed_entries]
    return runs


def update_catalog(selection: Selection) -> str | None:
    """Bring the combined catalog up to date after a publish; a sentence when it cannot be."""
    loaded = selection.loaded
    if loaded is None or loaded.root is None:
        return None
    try:
        result = catalog.ensure_catalog(loaded.merchants, loaded.root)
    except Exception as exc:  # the merchants' own data is fine; the firm's catalog is stale
        return f"the combined catalog in {loaded.root} could not be brought up to date: {fleet.failure_sentence(exc)}"
    if result.rebuilt:
        print(f"combined catalog rebuilt: {result.path} ({len(result.included)} merchants, {result.views} views)")
    return None

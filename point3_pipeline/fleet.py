"""One library operation for many merchants at once, each apart from the others.

Most of a merchant's sync is waiting for point3, so merchants run on a thread pool (up to
`POINT3_MAX_PARALLEL_MERCHANTS`, default 4) rather than one after another, each DuckDB
database they open with its share of the cores (MerchantPool). Each merchant has its own
client (its own key and connections) and its own warehouse file, so no two threads share a
DuckDB file or a key. One merchant's exception becomes that merchant's failure, one
sentence in its outcome; it never stops the others. Outcomes come back in input order.

A Ctrl-C while merchants run cancels those not started and waits for the running ones, whose
windows already read are committed as usual; the interrupt is then raised again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import duckdb

from point3_pipeline import config, sync
from point3_pipeline.client import Point3Client
from point3_pipeline.config import ConfigError
from point3_pipeline.errors import Point3Error
from point3_pipeline.merchants import Merchant
from point3_pipeline.warehouse import (
    Warehouse,
    WarehouseError,
    duckdb_threads_sharing,
    first_line,
    with_duckdb_threads,
)

log = logging.getLogger(__name__)

MAX_PARALLEL_VAR = "POINT3_MAX_PARALLEL_MERCHANTS"
DEFAULT_MAX_PARALLEL = 4
# More threads than this would only queue on the machine's sockets and DuckDB's own threads.
MOST_PARALLEL = 256

T = TypeVar("T")

# What a merchant's operation can meet that is no bug. These say in their own words what to fix...
SELF_EXPLAINED = (ConfigError, Point3Error, WarehouseError, sync.SyncFailed)
# ...and these get a few words of context.
KNOWN_FAILURES = (*SELF_EXPLAINED, OSError, duckdb.Error)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one merchant's operation gave: its value, or one sentence saying why it failed."""

    merchant_id: str
    value: T | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


def max_parallel(env: Mapping[str, str] = os.environ) -> int:
    """How many merchants run at once: POINT3_MAX_PARALLEL_MERCHANTS, else the default."""
    value = env.get(MAX_PARALLEL_VAR, "").strip()
    if not value:
        return DEFAULT_MAX_PARALLEL
    if not re.fullmatch(r"[0-9]+", value) or not 1 <= int(value) <= MOST_PARALLEL:
        raise ConfigError(f"{MAX_PARALLEL_VAR} must be a whole number from 1 to {MOST_PARALLEL}, not {value!r} (unset it for {DEFAULT_MAX_PARALLEL}).")
    return int(value)


class MerchantPool(ThreadPoolExecutor):
    """Threads for merchants' operations at once, up to `workers`: each DuckDB database an
    operation opens gets its share of the cores rather than a worker per core of its own, and
    with more than one at once each sync reads one day window at a time (the merchants'
    syncs overlap one another's waits already; see sync.among_merchants)."""

    def __init__(self, workers: int, merchants: int, thread_name_prefix: str = "point3-merchant"):
        workers = min(workers, max(1, merchants))
        super().__init__(max_workers=workers, thread_name_prefix=thread_name_prefix)
        self.duckdb_threads = duckdb_threads_sharing(workers)
        self.shared = workers > 1

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(self._run, fn, *args, **kwargs)

    def _run(self, fn, /, *args, **kwargs):
        with sync.among_merchants() if self.shared else contextlib.nullcontext():
            return with_duckdb_threads(self.duckdb_threads, fn, *args, **kwargs)


def max_parallel_computing(env: Mapping[str, str] = os.environ) -> int:
    """How many merchants at once for work that waits on nothing but the CPU and the disk (a
    derived refresh, a publish): max_parallel, but no more than the cores (and one), since more
    would only take turns on them, and the thread recording what the others did would wait too."""
    return min(max_parallel(env), (os.cpu_count() or 1) + 1)


def failure_sentence(exc: BaseException) -> str:
    """One sentence for what went wrong, in the words the CLI would use. The library's errors
    already name what to fix and never carry a key."""
    if isinstance(exc, SELF_EXPLAINED):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"cannot use {where}{exc.strerror or first_line(exc)}."
    if isinstance(exc, duckdb.Error):
        return f"the warehouse could not be read or written: {first_line(exc)}"
    return f"{type(exc).__name__}: {first_line(exc)}"


def run_each(merchants: Sequence[Merchant], operation: Callable[[Merchant], T], *,
             max_workers: int | None = None) -> list[Outcome[T]]:
    """`operation(merchant)` for every merchant, up to `max_workers` at once (default from the
    environment); one Outcome per merchant, in the order given."""
    workers = max_workers if max_workers is not None else max_parallel()
    if workers < 1:
        raise ValueError(f"max_workers must be at least 1, not {workers}")
    pool = MerchantPool(workers, len(merchants))
    try:
        futures: list[Future[Outcome[T]]] = [pool.submit(_outcome, m, operation) for m in merchants]
        return [future.result() for future in futures]
    finally:
        # After an interrupt: the merchants not started are not started; the running ones end.
        pool.shutdown(wait=True, cancel_futures=True)


def _outcome(merchant: Merchant, operation: Callable[[Merchant], T]) -> Outcome[T]:
    started = time.perf_counter()
    try:
        value = operation(merchant)
    except Exception as exc:
        sentence = failure_sentence(exc)
        # A known failure is its sentence; anything else is a bug worth its traceback.
        log.error("merchant %s failed: %s", merchant.id, sentence, exc_info=None if isinstance(exc, KNOWN_FAILURES) else exc)
        return Outcome(merchant.id, None, sentence, time.perf_counter() - started)
    return Outcome(merchant.id, value, None, time.perf_counter() - started)


def open_client(merchant: Merchant, **options) -> Point3Client:
    """The merchant's own client: its API URL, its key (read now from its key file) and the
    bounds from the environment unless `options` give them."""
    options.setdefault("limits", config.limits())
    return Point3Client(merchant.api_url, merchant.secret_key(), **options)


def with_client(operation: Callable[[Merchant, Point3Client, Warehouse], T],
                **client_options) -> Callable[[Merchant], T]:
    """An operation on (merchant, its client, its warehouse with its own businesses), for `run_each`."""

    def run(merchant: Merchant) -> T:
        with open_client(merchant, **client_options) as client:
            return operation(merchant, client, merchant.warehouse(businesses=merchant.businesses()))

    return run


def sync_and_publish(merchant: Merchant, client: Point3Client, warehouse: Warehouse, *,
                     lookback_days: int = sync.DEFAULT_LOOKBACK_DAYS, **options) -> sync.SyncResult:
    """`point3 sync` for one merchant: the incremental run from its first day, the derived
    tables, then its published copy, which a failed run also publishes (every stored window
    is valid) before its SyncFailed is raised. The file is opened once for all of it.
    `options` are sync_range's."""
    options.setdefault("limits", config.limits())
    with warehouse.held():
        try:
            result = sync.sync_incremental(client, warehouse, start_date=merchant.start_date,
                                           lookback_days=lookback_days, refresh_derived=True, **options)
        except sync.SyncFailed:
            warehouse.publish()
            raise
        warehouse.publish()
    return result

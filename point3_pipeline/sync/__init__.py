"""Incremental sync of point3's date endpoint into the warehouse, one KST day window at a time.

Where each concept lives:
- `plan`: which days a run reads, the settle margin, and when a day counts as synced;
- `window`: reading one day window: the walk over its pages (`WindowWalk`, pure) with its
  shift, conflict, cycle and bound rules, and `read_window` driving it with a client;
- `store`: storing a batch of window reads in one transaction (`BatchStore`, one method per
  statement of point3_pipeline/sql/sync/);
- `run`: a run over many windows (read a few at once, stored in day order), its batches
  (`BatchPolicy`) and its row in `sync_runs`;
- `results`: what a run reports; `settlement`: the settlement-balance observation.
Rejected records are kept by point3_pipeline.quarantine.

Correctness does not depend on what the date endpoint leaves undocumented:
- windows overlap at midnight (startDate = day 00:00:00, endDate = next day 00:00:00) and
  rows are keyed by signature, so inclusive or exclusive ends both give one row per payment;
- a walk whose pages shifted (a signature seen twice: payments arrived while paging, in either
  sort order) is walked again until a walk brings nothing new, up to `max_walks`;
- a window's rows, events and log are written in one transaction (several whole windows
  share one when they come fast, to spare DuckDB per-statement costs), so a crash leaves
  every unfinished window as it was and a re-run converges to the same rows;
- the window containing "now" (plus a settle margin for the 30-second confirm and the
  5-minute cancellation batch) is never marked complete, so the next run reads it again.
"""

from point3_pipeline.sync.plan import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_SWEEP_DAYS,
    SETTLE_MARGIN,
    Clock,
    days_between,
    kst_now,
    plan_incremental,
    synced_days,
)
from point3_pipeline.sync.results import ProgressCallback, SyncResult, WindowResult
from point3_pipeline.sync.run import (
    DEFAULT_BATCH,
    MAX_CONSECUTIVE_FAILURES,
    ONE_WINDOW_PER_BATCH,
    BatchPolicy,
    SyncFailed,
    among_merchants,
    sweep,
    sync_incremental,
    sync_range,
)
from point3_pipeline.sync.settlement import SettlementObservation, observe_settlement
from point3_pipeline.sync.store import NEIGHBOURHOOD_DAYS
from point3_pipeline.client import DATE_ENDPOINT
from point3_pipeline.sync.window import ACCEPT_TOLERANCE_DAYS, DEFAULT_MAX_WALKS

BATCH_MAX_RECORDS = DEFAULT_BATCH.max_records
BATCH_MAX_SECONDS = DEFAULT_BATCH.max_seconds

__all__ = [
    "ACCEPT_TOLERANCE_DAYS", "BATCH_MAX_RECORDS", "BATCH_MAX_SECONDS", "DATE_ENDPOINT", "DEFAULT_BATCH",
    "DEFAULT_LOOKBACK_DAYS", "DEFAULT_MAX_WALKS", "DEFAULT_SWEEP_DAYS", "MAX_CONSECUTIVE_FAILURES",
    "NEIGHBOURHOOD_DAYS", "ONE_WINDOW_PER_BATCH", "SETTLE_MARGIN", "BatchPolicy", "Clock", "ProgressCallback",
    "SettlementObservation", "SyncFailed", "SyncResult", "WindowResult", "among_merchants", "days_between", "kst_now",
    "observe_settlement", "plan_incremental", "sweep", "sync_incremental", "sync_range", "synced_days",
]

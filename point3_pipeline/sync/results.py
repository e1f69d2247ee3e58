"""What a sync run reports: one WindowResult per window committed, and the run's SyncResult."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

RUN_TOTALS = ("pages", "records_read", "payments_new", "payments_changed", "newly_canceled", "rejected", "retries")


@dataclass(frozen=True)
class WindowResult:
    window_date: dt.date
    walks: int
    pages: int
    records_read: int
    distinct_payments: int
    payments_new: int
    payments_changed: int
    # A stored payment seen cancelled now that was not before: a cancellation detected.
    cancellations_detected: int
    # A payment cancelled already the first time it was seen (a first backfill of an old day):
    # no cancellation was detected, it was cancelled before the pipeline knew it.
    first_seen_canceled: int
    rejected: int
    retries: int
    is_complete: bool
    incomplete_reason: str | None
    seconds: float
    failed: bool = False  # the read ended on an error after the client's retries

    @property
    def newly_canceled(self) -> int:
        """Both kinds together: the `newly_canceled` column of sync_windows and sync_runs."""
        return self.cancellations_detected + self.first_seen_canceled


@dataclass
class SyncResult:
    run_id: int
    mode: str
    first_day: dt.date
    last_day: dt.date
    windows: list[WindowResult] = field(default_factory=list)
    status: str = "running"
    seconds: float = 0.0
    error: str | None = None

    def total(self, name: str) -> int:
        return sum(getattr(w, name) for w in self.windows)

    @property
    def incomplete_days(self) -> list[dt.date]:
        return [w.window_date for w in self.windows if not w.is_complete]

    @property
    def failed_days(self) -> list[dt.date]:
        return [w.window_date for w in self.windows if w.failed]

    def summary(self) -> dict[str, int]:
        names = (*RUN_TOTALS, "cancellations_detected", "first_seen_canceled")
        return {"windows": len(self.windows), **{n: self.total(n) for n in names}}


ProgressCallback = Callable[[int, int, WindowResult], None]

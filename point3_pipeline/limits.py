"""Bounds on what upstream data may cost: one definition, read from the environment by config.py.

A hostile or broken upstream must never hold the warehouse without bound: every request has
an overall deadline and a maximum body, every window a maximum number of pages and records,
and an amount beyond a plausible bound is quarantined instead of stored. The load a sync puts
on upstream is bounded too: at most `windows_read_at_once` requests in flight. The defaults sit
far above any real merchant's day; a window that hits a bound is not final and says why.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # Largest plausible amount of one payment, in won; above it a record is quarantined.
    max_amount_won: int = 10_000_000_000
    # Overall deadline of one HTTP request, body included (the per-read timeout alone lets a
    # response dripping a byte at a time run forever).
    request_deadline_seconds: float = 60.0
    # Largest response body read; a bigger one is a failed attempt, not memory spent.
    max_body_bytes: int = 32 * 1024 * 1024
    # The comma-less-JSON repair is pure Python: only bodies this small are tried.
    max_repair_bytes: int = 1024 * 1024
    # Per window (all walks of one day together).
    max_pages_per_window: int = 20_000
    max_records_per_window: int = 500_000
    # Day windows a sync reads at once (each on its own thread, stored in day order). Reading
    # is mostly waiting for point3, so a second window's requests overlap the first's parsing;
    # 1 reads one window after another, for an upstream that answers 429 to more.
    windows_read_at_once: int = 2


DEFAULT_LIMITS = Limits()

"""The sandbox's own clock: starts at a chosen moment, runs at a chosen speed, can be moved.

Time-dependent behaviour (confirm window, 5-minute cancel batches, 30-minute settlement,
future payments) reads this clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from point3_pipeline.models import KST


class SandboxClock:
    def __init__(self, start: dt.datetime | None = None, speed: float = 1.0):
        self._lock = threading.Lock()
        self._base = (start or dt.datetime.now(KST)).timestamp()
        self._real = time.monotonic()
        self._speed = float(speed)

    def timestamp(self) -> float:
        """Sandbox now as epoch seconds: the hot path compares these, not datetimes."""
        with self._lock:
            return self._base + (time.monotonic() - self._real) * self._speed

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.timestamp(), KST)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._base += seconds

    def set_now(self, moment: dt.datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("set_now needs an aware datetime")
        with self._lock:
            self._base = moment.timestamp()
            self._real = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"speed must be a number >= 0, not {value!r}")
        with self._lock:
            # Re-anchor first so the time already elapsed keeps the old speed.
            real = time.monotonic()
            self._base += (real - self._real) * self._speed
            self._real = real
            self._speed = float(value)

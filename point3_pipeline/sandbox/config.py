"""What a sandbox instance is built from: seed, history shape, merchant key, start time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from point3_pipeline.sandbox.faults import Faults

# A fixed key so the demo's env file and the sandbox agree without copying secrets around.
DEFAULT_KEY = "sk_sandbox_demo_0000000000000000"


@dataclass(frozen=True)
class SandboxConfig:
    seed: int = 42
    days: int = 90  # days of history ending with the clock's today (KST)
    per_day: int = 40  # average payments a day
    future_days: int = 7  # days of payments after now, revealed as the clock advances
    key: str = DEFAULT_KEY
    start_at: dt.datetime | None = None  # the clock's initial "now"; None = real now
    speed: float = 1.0  # sandbox seconds per real second
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        for name in ("seed", "days", "per_day", "future_days"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        if not isinstance(self.key, str) or not self.key or any(c.isspace() for c in self.key):
            raise ValueError("key must be a non-empty string without spaces")
        if self.start_at is not None and self.start_at.tzinfo is None:
            raise ValueError("start_at must be an aware datetime")
        if not isinstance(self.speed, (int, float)) or isinstance(self.speed, bool) or self.speed < 0:
            raise ValueError(f"speed must be a number >= 0, not {self.speed!r}")

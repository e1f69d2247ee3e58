"""Misbehaviour the sandbox can be told to show; all off by default.

The rates are shares of requests; the rest change how the date endpoint pages. Instances are
frozen so a request reads one consistent set; `SandboxState.set_faults` swaps in a new one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

SORT_ORDERS = ("asc", "desc")


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0  # share of API requests answered 500
    rate_limit_rate: float = 0.0  # share answered 429 with Retry-After
    retry_after_seconds: int = 1
    latency_ms: int = 0
    truncate_rate: float = 0.0  # share of 200 bodies cut in half (invalid JSON)
    drift_per_page: int = 0  # new payments inserted into the window before each date page
    sort_order: str = "asc"
    max_page_size: int | None = None  # count above it -> 400
    end_inclusive: bool = True

    def __post_init__(self) -> None:
        for name in ("error_rate", "rate_limit_rate", "truncate_rate"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, not {value!r}")
        for name in ("retry_after_seconds", "latency_ms", "drift_per_page"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
        if self.sort_order not in SORT_ORDERS:
            raise ValueError(f"sort_order must be 'asc' or 'desc', not {self.sort_order!r}")
        if self.max_page_size is not None and (type(self.max_page_size) is not int or self.max_page_size < 1):
            raise ValueError(f"max_page_size must be null or an integer >= 1, not {self.max_page_size!r}")
        if type(self.end_inclusive) is not bool:
            raise ValueError(f"end_inclusive must be true or false, not {self.end_inclusive!r}")

    def changed(self, **changes: Any) -> Faults:
        """A copy with `changes` applied; unknown names and bad values raise ValueError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return Faults(**{**asdict(self), **changes})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

"""Misbehaviour the sandbox can be told to show; all off by default.

The rates are shares of requests; the rest change how the date endpoint pages or how a body
is sent. Instances are frozen so a request reads one consistent set; `SandboxState.set_faults`
swaps in a new one. The hostile ones (endless_pages, cycle_pages, drip, garbage) exist to
prove that every wait and loop over upstream data is bounded.
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
    # Every date page is `count` fresh junk payments, for every page number, forever.
    endless_pages: bool = False
    # Odd pages repeat page 1, even pages page 2 (padded with junk so both are full): never a short page.
    cycle_pages: bool = False
    drip_bytes_per_second: int = 0  # > 0: every API body is sent a few bytes at a time at this rate
    garbage_body_bytes: int = 0  # > 0: date pages answer 200 with this many bytes of non-JSON text

    def __post_init__(self) -> None:
        for name in ("error_rate", "rate_limit_rate", "truncate_rate"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, not {value!r}")
        for name in ("retry_after_seconds", "latency_ms", "drift_per_page", "drip_bytes_per_second",
                     "garbage_body_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
        if self.sort_order not in SORT_ORDERS:
            raise ValueError(f"sort_order must be 'asc' or 'desc', not {self.sort_order!r}")
        if self.max_page_size is not None and (type(self.max_page_size) is not int or self.max_page_size < 1):
            raise ValueError(f"max_page_size must be null or an integer >= 1, not {self.max_page_size!r}")
        for name in ("end_inclusive", "endless_pages", "cycle_pages"):
            if type(getattr(self, name)) is not bool:
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")

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

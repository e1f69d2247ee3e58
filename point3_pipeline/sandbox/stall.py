"""The stall gate: API requests that wait inside the sandbox until a test lets them go.

A test arms the gate for a path (and optionally a date window's startDate and a page), waits
until a client's request is held, then kills the client or changes data at a known moment,
and releases. Armed, the gate holds every matching request until `release()`, which also
disarms it; a held request is answered 503 after `hold_seconds` so nothing waits forever.

Held requests wait on asyncio futures in the server's event loop (not threads), so the
server keeps answering other requests, the admin endpoints included, while they wait.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from point3_pipeline.models import format_api_datetime, parse_api_datetime

DATE_PATH = "/api/payments/date"
HOLD_SECONDS = 300.0


def parse_start_date(value: str) -> dt.datetime | dt.date:
    """`YYYY-MM-DD` as a date, else the API's `yyyy-MM-ddTHH:mm:ss` (KST; a space for the T is fine)."""
    if len(value) == 10:
        return dt.date.fromisoformat(value)
    return parse_api_datetime(value.replace(" ", "T", 1))


@dataclass(frozen=True)
class StallMatch:
    """Which requests the gate holds: this path, and startDate / page when given.

    `start_date` as a datetime matches that exact startDate; as a date, any startDate on that
    KST day (the sync's day windows start at midnight). `page` is the request's page (1 when
    absent).
    """

    path: str = DATE_PATH
    start_date: dt.datetime | dt.date | str | None = None  # a str is parsed by parse_start_date
    page: int | None = None
    merchant: int | None = None  # only this merchant's requests (its number, 1..N); None: any merchant's

    def __post_init__(self) -> None:
        if isinstance(self.start_date, str):
            try:
                object.__setattr__(self, "start_date", parse_start_date(self.start_date))
            except ValueError:
                raise ValueError(f"startDate must be YYYY-MM-DD or yyyy-MM-ddTHH:mm:ss, "
                                 f"not {self.start_date[:40]!r}") from None
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ValueError(f"path must be a string starting with /, not {self.path!r}")
        if isinstance(self.start_date, dt.datetime) and self.start_date.tzinfo is None:
            raise ValueError("start_date must be an aware datetime (or a date)")
        if self.start_date is not None and not isinstance(self.start_date, dt.date):
            raise ValueError(f"start_date must be a datetime, a date or None, not {self.start_date!r}")
        if self.page is not None and (type(self.page) is not int or self.page < 1):
            raise ValueError(f"page must be an integer >= 1 or None, not {self.page!r}")
        if self.merchant is not None and (type(self.merchant) is not int or self.merchant < 1):
            raise ValueError(f"merchant must be a merchant's number (1..N) or None, not {self.merchant!r}")

    def matches(self, path: str, query: Mapping[str, str], merchant: int | None = None) -> bool:
        if path != self.path or (self.merchant is not None and merchant != self.merchant):
            return False
        if self.page is not None:
            page = query.get("page") or "1"  # absent or empty: the API's default page
            if not (page.isascii() and page.isdigit() and int(page) == self.page):
                return False
        if self.start_date is None:
            return True
        try:
            start = parse_api_datetime(query.get("startDate", ""))
        except ValueError:
            return False
        if isinstance(self.start_date, dt.datetime):
            return start == self.start_date
        return start.date() == self.start_date

    def to_json(self) -> dict[str, object]:
        start = self.start_date
        if isinstance(start, dt.datetime):
            start = format_api_datetime(start)
        elif isinstance(start, dt.date):
            start = start.isoformat()
        merchant = {} if self.merchant is None else {"merchant": self.merchant}
        return {"path": self.path, "startDate": start, "page": self.page, **merchant}


class StallGate:
    """Thread-safe: tests arm, wait and release from their thread; requests wait in the loop's."""

    def __init__(self, hold_seconds: float = HOLD_SECONDS):
        self.hold_seconds = hold_seconds
        self._changed = threading.Condition()
        self._match: StallMatch | None = None
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def armed(self) -> StallMatch | None:
        with self._changed:
            return self._match

    @property
    def held(self) -> int:
        with self._changed:
            return len(self._waiting)

    def arm(self, match: StallMatch) -> None:
        with self._changed:
            self._match = match

    def wait_held(self, timeout: float, at_least: int = 1) -> int:
        """Block until `at_least` requests are held or `timeout` s pass; the number held (maybe fewer)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._waiting) >= at_least, timeout)
            return len(self._waiting)

    def release(self) -> int:
        """Let every held request go on and disarm; how many were held."""
        with self._changed:
            waiting, self._waiting, self._match = self._waiting, [], None
            self._changed.notify_all()
        for loop, future in waiting:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # the loop is closed: the server has stopped
                pass
        return len(waiting)

    async def hold(self, path: str, query: Mapping[str, str], merchant: int | None = None) -> bool:
        """Wait here if the gate is armed for this request (of merchant number `merchant`); False
        if `hold_seconds` ran out first."""
        with self._changed:
            if self._match is None or not self._match.matches(path, query, merchant):
                return True
            waiter = (asyncio.get_running_loop(), asyncio.get_running_loop().create_future())
            self._waiting.append(waiter)
            self._changed.notify_all()
        try:
            await asyncio.wait_for(waiter[1], self.hold_seconds)
            return True
        except TimeoutError:
            return False
        finally:
            with self._changed:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
                    self._changed.notify_all()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

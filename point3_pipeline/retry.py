"""The one retry policy of the point3 client: what is retried and how long to wait.

The client has a single request loop; it asks `retry_reason` whether an error is worth
another attempt and `RetryPolicy.delay` how long to wait first. Only reads (and the
harmless token creation) go through retries; writes that must not repeat get one attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from .errors import (
    MalformedResponseError,
    Point3ConnectionError,
    Point3Error,
    Point3TimeoutError,
    RateLimitError,
    RequestDeadlineError,
    ServerError,
)

# Errors raised while the answer was being read: the server got the request and the
# connection broke under it, which is what "connection reset" means to an operator.
_RESET_CAUSES = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass(frozen=True)
class RetryEvent:
    """One retry about to happen, for callbacks (Dagster logs, tests). No key in it."""

    attempt: int  # the attempt that just failed, 1-based
    reason: str  # "HTTP 429", "HTTP 503", "timeout", "deadline", "connection reset", "malformed body"...
    delay: float  # seconds waited before the next attempt
    method: str
    path: str  # the URL path only: no query, no key


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; honours Retry-After up to max_delay.

    `sleep` is injectable so tests run without waiting.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5  # each backoff is scaled by a random factor in [1 - jitter, 1 + jitter]
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if type(self.max_attempts) is not int or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, not {self.max_attempts!r}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {self.jitter!r}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        A server-given Retry-After wins over the backoff (the server knows when it will
        take us again) but is capped at max_delay so a bogus value cannot stall a sync.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        backoff = self.base_delay * 2 ** (attempt - 1)
        return min(backoff * random.uniform(1 - self.jitter, 1 + self.jitter), self.max_delay)


def retry_reason(error: Point3Error) -> str | None:
    """Why `error` is worth retrying on a read, or None when it is not.

    400/401/404 and other client errors would fail the same way again. So would a body
    over the size bound (ResponseTooLargeError): the same request gets the same answer, and
    each repeat would download it again. A missed deadline is retried: slowness passes, and
    each attempt costs at most the deadline. A body too big to repair stays a malformed body,
    retried like any garbled answer, each attempt bounded by the repair limit.
    """
    if isinstance(error, (RateLimitError, ServerError)):
        return f"HTTP {error.status_code}"
    if isinstance(error, RequestDeadlineError):
        return "deadline"
    if isinstance(error, Point3TimeoutError):
        return "timeout"
    if isinstance(error, Point3ConnectionError):
        return "connection reset" if isinstance(error.__cause__, _RESET_CAUSES) else "connection error"
    if isinstance(error, MalformedResponseError):
        return "malformed body"
    return None

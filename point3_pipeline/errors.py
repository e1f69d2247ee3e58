"""One exception tree for everything the point3 API can do wrong.

    Point3Error
    ├── Point3ConnectionError         the request never got an answer
    │   └── Point3TimeoutError
    │       └── RequestDeadlineError  the answer did not arrive whole within the deadline
    ├── ResponseTooLargeError         the answer is over the body-size bound
    ├── MalformedResponseError        an answer that is not the documented envelope
    └── Point3StatusError             the envelope says no (HTTP status or statusCode)
        ├── BadRequestError           400
        ├── AuthenticationError       401
        ├── NotFoundError             404
        ├── RateLimitError            429 (carries Retry-After)
        └── ServerError               5xx

Messages say what happened and where; they never contain the merchant key.
"""

from __future__ import annotations


class Point3Error(Exception):
    """Base class of every point3 API error."""


class Point3ConnectionError(Point3Error):
    """The request did not get an HTTP answer (refused, reset, DNS...)."""


class Point3TimeoutError(Point3ConnectionError):
    """The request did not get an answer in time."""


class RequestDeadlineError(Point3TimeoutError):
    """The answer, body included, did not arrive within `Limits.request_deadline_seconds`."""


class ResponseTooLargeError(Point3Error):
    """The answer's body is over `Limits.max_body_bytes` (declared or as read)."""


class MalformedResponseError(Point3Error):
    """The answer is not the documented envelope (bad JSON, truncated, wrong shape)."""


class Point3StatusError(Point3Error):
    """point3 answered with an error status (in HTTP or in the envelope's statusCode)."""

    def __init__(self, message: str, *, status_code: int, server_message: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message


class BadRequestError(Point3StatusError):
    """400: point3 refused the request as malformed (or, for paging, the page size)."""


class AuthenticationError(Point3StatusError):
    """401: the Authorization header is missing or the key is wrong (or was rotated)."""


class NotFoundError(Point3StatusError):
    """404: no such payment or path."""


class RateLimitError(Point3StatusError):
    """429: too many requests; retry_after is the server's Retry-After in seconds, if any."""

    def __init__(self, message: str, *, status_code: int = 429, server_message: str | None = None,
                 retry_after: float | None = None):
        super().__init__(message, status_code=status_code, server_message=server_message)
        self.retry_after = retry_after


class ServerError(Point3StatusError):
    """5xx: point3 failed internally."""


def status_error_class(status_code: int) -> type[Point3StatusError]:
    if status_code == 400:
        return BadRequestError
    if status_code == 401:
        return AuthenticationError
    if status_code == 404:
        return NotFoundError
    if status_code == 429:
        return RateLimitError
    if status_code >= 500:
        return ServerError
    return Point3StatusError

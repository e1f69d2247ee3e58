"""The point3 merchant API client (see docs: /work/shared/spec/point3-api.md).

Every answer is an envelope `{"statusCode", "message", "result"}`; both the HTTP status and
the body's statusCode must say 2xx. Errors come from `errors.py` and never carry the key.

Retries happen in one loop (`_call`) under `retry.RetryPolicy`. Errors found while getting
and decoding the envelope (429, 5xx, timeouts, broken connections, undecodable bodies) are
retried on reads; a `result` of the wrong shape is a stable contract break and is raised at
once. Writes whose repetition could move money or lose a key get exactly one attempt.

What one answer may cost is bounded by `limits.Limits`: each attempt has an overall deadline
with the body read in chunks against it and against a size bound, and only small bodies get
the pure-Python repair. A record with bytes that are not UTF-8 is quarantined on its own; it
does not make its page unreadable.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import json
import logging
import math
import os
import re
import reprlib
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlparse

import httpx
import orjson

from . import config
from .config import SecretKey
from .errors import (
    BadRequestError,
    MalformedResponseError,
    Point3ConnectionError,
    Point3Error,
    Point3TimeoutError,
    RateLimitError,
    RequestDeadlineError,
    ResponseTooLargeError,
    status_error_class,
)
from .limits import DEFAULT_LIMITS, Limits
from .models import MAX_AMOUNT, Order, PaymentRequest, RecordRejected, format_api_datetime, parse_order
from .retry import RetryEvent, RetryPolicy, retry_reason

logger = logging.getLogger(__name__)

MIN_PAGE_SIZE = 30  # the documented default count, so point3 must accept it
DATE_ENDPOINT = "/api/payments/date"  # the payments listed by date: what the sync reads
_MESSAGE_LIMIT = 200  # server text quoted in errors is cut here
_MESSAGE_SCAN = 4096  # of a non-JSON error body, only this much text is tidied for the message
_KEY_SHAPE = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces: safe in a header
_PREVIEW = reprlib.Repr()  # bounded in depth and length, whatever the value
_PREVIEW.maxstring = _PREVIEW.maxother = 200


@dataclass
class ClientStats:
    """Counters for run metadata and checks. A sync reads several windows at once on one
    client, so a retry is also counted for the thread it happened on (`thread_retries`): a
    window's retries are its own thread's."""

    requests: int = 0  # HTTP attempts, retries included
    retries: int = 0
    retries_by_reason: Counter[str] = field(default_factory=Counter)
    page_size_backoffs: int = 0
    repaired_bodies: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _thread: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    def count(self, name: str) -> None:
        """One more `name` (requests, page_size_backoffs, repaired_bodies): threads share the client."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def count_retry(self, reason: str) -> None:
        with self._lock:
            self.retries += 1
            self.retries_by_reason[reason] += 1
        self._thread.retries = self.thread_retries + 1

    @property
    def thread_retries(self) -> int:
        """Retries made so far by the calling thread."""
        return getattr(self._thread, "retries", 0)


@dataclass(frozen=True)
class RejectedRecord:
    """A date-endpoint record that broke the contract, kept for quarantine."""

    # orjson dump of the raw record (repr when it is not JSON-able); for a record that is not
    # UTF-8, its text as sent with each bad byte as \xNN (see `undecodable`)
    raw_text: str
    reason: str
    signature: str | None

    @classmethod
    def from_raw(cls, raw: Any, reason: str) -> RejectedRecord:
        try:
            raw_text = orjson.dumps(raw).decode()
        except orjson.JSONEncodeError:
            raw_text = repr(raw)
        signature = raw.get("signature") if isinstance(raw, dict) else None
        if not isinstance(signature, str) or not signature:
            return cls(raw_text, reason, None)
        # A lone surrogate cannot be stored: keep it visible as an escape instead.
        return cls(raw_text, reason, signature.encode("utf-8", "backslashreplace").decode("utf-8"))

    @classmethod
    def undecodable(cls, source: str, value: Any) -> RejectedRecord:
        """A record whose text `source` holds bytes that are not UTF-8 (as surrogateescape
        stand-ins); `value` is it parsed. raw_text is the record exactly as sent, each bad
        byte shown as \\xNN."""
        raw = source.encode("utf-8", "surrogateescape")
        bad = _STAND_IN.findall(source)
        offset = len(source[: source.index(bad[0])].encode("utf-8", "surrogateescape"))
        others = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        reason = (f"invalid UTF-8 in the record: byte 0x{raw[offset]:02x} at byte {offset} of the record"
                  f"{others}; raw_text shows each as \\xNN")
        signature = value.get("signature") if isinstance(value, dict) else None
        if not isinstance(signature, str) or not signature:
            return cls(raw.decode("utf-8", "backslashreplace"), reason, None)
        return cls(raw.decode("utf-8", "backslashreplace"), reason, _visible(signature))


@dataclass(frozen=True)
class Page:
    """One page of the date endpoint. It is the last page when record_count < count."""

    page: int
    count: int
    orders: list[Order]
    rejected: list[RejectedRecord]
    record_count: int  # raw records on the page: orders + rejected


# --- the slow path: record by record -------------------------------------------------------

_JSON_WS = re.compile(r"[ \t\n\r]*")
_STAND_IN = re.compile("[\udc80-\udcff]")  # surrogateescape's stand-in for a byte that is not UTF-8


# NaN, Infinity and numbers no float or int holds are kept as a Decimal, which cannot be
# stored as JSON, so only their record is quarantined. Without this a 5,000-digit integer
# made the whole page unreadable, and 1e400 or NaN was stored as null.


def _float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else Decimal(text)


def _int(text: str) -> Any:
    return int(text) if len(text) <= 4000 else Decimal(text)  # int() refuses beyond 4,300 digits


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=Decimal)

# Where the payment records sit: the envelope holds `result`; `result` holds `orders` (a list
# of records) or is itself one record. Keys not listed here are parsed whole.
_ENVELOPE, _RESULT, _ORDERS, _RECORD = "envelope", "result", "orders", "record"
_CHILDREN = {_ENVELOPE: {"result": _RESULT}, _RESULT: {"orders": _ORDERS}}


def _load_per_record(text: str) -> Any:
    """The envelope in `text` (a body decoded with surrogateescape), each payment record
    parsed on its own: one holding bytes that are not UTF-8 becomes a RejectedRecord in
    its place. ValueError if it is not JSON, or a bad byte lies outside the records."""
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as the standard library allows
    value, end = _scan(text, 0, _ENVELOPE)
    if _JSON_WS.match(text, end).end() != len(text):
        raise ValueError(f"extra data at character {end}")
    return value


def _scan(text: str, pos: int, level: str | None) -> tuple[Any, int]:
    """The JSON value at text[pos:] (after whitespace) and where it ends.

    Parsed whole first (in C); only a value holding a bad byte is taken apart, down the
    path to the record that holds it.
    """
    start = _JSON_WS.match(text, pos).end()
    value, end = _DECODER.raw_decode(text, start)
    if _STAND_IN.search(text, start, end) is None:
        return value, end
    holds_orders = isinstance(value, dict) and isinstance(value.get("orders"), list)
    if level == _RECORD or (level == _RESULT and not holds_orders):
        return RejectedRecord.undecodable(text[start:end], value), end
    if level == _ORDERS and isinstance(value, list):
        return _scan_records(text, start)
    if level in _CHILDREN and isinstance(value, dict):
        return _scan_object(text, start, _CHILDREN[level])
    raise ValueError(f"invalid UTF-8 outside the payment records, at character {start}")


def _scan_object(text: str, pos: int, children: dict[str, str]) -> tuple[dict[str, Any], int]:
    value: dict[str, Any] = {}
    pos = _JSON_WS.match(text, pos + 1).end()
    if text.startswith("}", pos):
        return value, pos + 1
    while True:
        pos = _JSON_WS.match(text, pos).end()
        if not text.startswith('"', pos):
            raise ValueError(f"expected a key at character {pos}")
        key, pos = _scan(text, pos, None)
        pos = _JSON_WS.match(text, pos).end()
        if not text.startswith(":", pos):
            raise ValueError(f"expected ':' at character {pos}")
        value[key], pos = _scan(text, pos + 1, children.get(key))
        pos, closed = _next_item(text, pos, "}")
        if closed:
            return value, pos


def _scan_records(text: str, pos: int) -> tuple[list[Any], int]:
    records: list[Any] = []
    pos = _JSON_WS.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return records, pos + 1
    while True:
        record, pos = _scan(text, pos, _RECORD)
        records.append(record)
        pos, closed = _next_item(text, pos, "]")
        if closed:
            return records, pos


def _next_item(text: str, pos: int, closer: str) -> tuple[int, bool]:
    """After an item: past its comma (False) or past the closing bracket (True)."""
    pos = _JSON_WS.match(text, pos).end()
    if text.startswith(",", pos):
        return pos + 1, False
    if text.startswith(closer, pos):
        return pos + 1, True
    raise ValueError(f"expected ',' or {closer!r} at character {pos}")


def _visible(text: str) -> str:
    """`text` storable: each stand-in for a bad byte as \\xNN, any other lone surrogate as \\uNNNN."""
    shown = _STAND_IN.sub(lambda bad: f"\\x{ord(bad.group()) - 0xDC00:02x}", text)
    return shown.encode("utf-8", "backslashreplace").decode("utf-8")


# --- lenient JSON -------------------------------------------------------------------------

_WS = re.compile(r"\s*")
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')  # raw newlines cannot be in a JSON string
_KEY_AHEAD = re.compile(r'"(?:[^"\\\n]|\\.)*"\s*:')
_SCALAR = re.compile(r"-?\d[\d.eE+-]*|true|false|null")


def _repair_json(text: str) -> str:
    """Fix the two slips in point3's own doc examples, outside strings only.

    A value followed on the next line by `"key":` gets its missing comma; a comma right
    before `}` or `]` is dropped. Nothing is balanced or closed, so a truncated body stays
    invalid.
    """
    out: list[str] = []
    pos, after_value = 0, False
    while pos < len(text):
        gap = _WS.match(text, pos).group()
        pos += len(gap)
        if after_value and "\n" in gap and _KEY_AHEAD.match(text, pos):
            out.append(",")
        out.append(gap)
        if pos == len(text):
            break
        char = text[pos]
        token = _STRING.match(text, pos) if char == '"' else _SCALAR.match(text, pos)
        if token:
            out.append(token.group())
            pos, after_value = token.end(), True
            continue
        after_value = char in "}]"
        if char == ",":
            after = _WS.match(text, pos + 1).end()  # one character looked at, not the rest copied
            if text[after : after + 1] in ("}", "]"):
                pos += 1
                continue
        elif char == '"':
            # A string that does not close on its line: no comma makes this JSON, and trying
            # each later quote again would cost the square of the line.
            out.append(text[pos:])
            break
        out.append(char)
        pos += 1
    return "".join(out)


# --- the client ---------------------------------------------------------------------------


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default certificate verification (certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR),
    built once per process: loading the roots costs ~30 ms of CPU, and a deployment builds a
    client per merchant per run. An SSLContext is safe to share between clients and threads."""
    return httpx.create_ssl_context()


class Point3Client:
    """Talks to point3 with one keep-alive connection pool; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        secret_key: SecretKey | str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        page_size: int = MIN_PAGE_SIZE,
        transport: httpx.BaseTransport | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`timeout` bounds each network step (connect, each read); `limits` bounds a whole
        attempt (`request_deadline_seconds`, on `clock`), its body and the amounts accepted."""
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if type(page_size) is not int or page_size < 1:
            raise ValueError(f"page_size must be a positive int, not {page_size!r}")
        if not 0 <= limits.max_amount_won <= MAX_AMOUNT:
            raise ValueError(f"max_amount_won must be between 0 and {MAX_AMOUNT:,} (the warehouse's BIGINT), "
                             f"not {limits.max_amount_won!r}")
        key = secret_key if isinstance(secret_key, SecretKey) else SecretKey(secret_key)
        if not _KEY_SHAPE.fullmatch(key.reveal()):
            raise ValueError("the merchant key must be non-empty printable ASCII without spaces")
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self.limits = limits
        self._clock = clock
        self._timeout = timeout
        self._on_retry = on_retry
        self._key = key
        self._known_keys = [key]  # every key held, so a rotated one is scrubbed from text too
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  verify=shared_ssl_context())

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **kwargs: Any) -> Point3Client:
        """POINT3_API_URL and POINT3_SECRET_KEY (or POINT3_SECRET_KEY_FILE); ConfigError if absent."""
        return cls(config.api_url(env), config.secret_key(env), **kwargs)

    def __repr__(self) -> str:
        return f"Point3Client(base_url={self.base_url!r}, page_size={self.page_size})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Point3Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- payment flow --------------------------------------------------------------------

    def create_payment_token(self, request: PaymentRequest | Mapping[str, Any]) -> str:
        """POST /purchase/token: a session token for the widget.

        Retried like a read: a token only opens a widget session, no money moves until the
        user pays and the merchant confirms, so a repeat at worst leaves an unused session.
        """
        body = request.to_json() if isinstance(request, PaymentRequest) else dict(request)
        result = self._call("POST", "/purchase/token", body=body, retried=True)
        return self._token(result, "POST /purchase/token")

    def confirm_payment(self, signature: str) -> Order:
        """POST /purchase/confirm: completes the payment. Exactly one attempt.

        On any error the payment may or may not be confirmed: look it up with
        `payment(signature)` and confirm again only if it is absent and still within the
        30 seconds after the widget returned the signature (after that point3 cancels it).
        """
        path = "/purchase/confirm"
        _require(signature, "signature")
        result = self._call("POST", path, body={"signature": signature}, retried=False)
        if isinstance(result, dict) and "isCanceled" not in result:
            # The documented confirm result has no isCanceled: a 200 means it went through.
            result = {**result, "isCanceled": False}
        return self._order(result, f"POST {path}")

    # --- managing transactions -----------------------------------------------------------

    def refresh_merchant_key(self) -> SecretKey:
        """POST /api/token/refresh: point3 destroys the current key and issues a new one.

        Exactly one attempt, and this client switches to the new key. If the call fails the
        old key may already be dead and the new one lost with the answer: get the key from
        point3's merchant console. Save the new key at once (`keys.rotate_key` does).
        """
        path = "/api/token/refresh"
        token = self._token(self._call("POST", path, retried=False), f"POST {path}")
        if not _KEY_SHAPE.fullmatch(token):
            raise MalformedResponseError(
                f"point3 POST {path}: the new key is not printable ASCII without spaces; "
                "the old key is already invalid, get the key from point3's merchant console"
            )
        self._key = SecretKey(token)
        self._known_keys.append(self._key)
        return self._key

    def settlement_balance(self) -> int:
        """GET /api/settlement: the settleable balance in KRW (point3 refreshes it every 30 min)."""
        path = "/api/settlement"
        result = self._call("GET", path, retried=True)
        balance = result.get("balance") if isinstance(result, dict) else None
        if type(balance) is not int:
            raise MalformedResponseError(f"point3 GET {path}: result.balance is not an integer: {self._preview(result)}")
        return balance

    def payment(self, signature: str) -> Order:
        """GET /api/payments/{signature}."""
        path = f"/api/payments/{_segment(signature, 'signature')}"
        return self._order(self._call("GET", path, retried=True), f"GET {path}")

    def payments_by_order_id(self, order_id: str) -> list[Order]:
        """GET /api/payments/orderid/{orderId}: orderId is not unique, so a list."""
        path = f"/api/payments/orderid/{_segment(order_id, 'order_id')}"
        result = self._call("GET", path, retried=True)
        return self._orders(result, f"GET {path}")

    def payments_by_user_id(self, user_id: str) -> list[Order]:
        """GET /api/payments/userId/{clientGeneratedUserId}.

        Documented as one order in `result` though a user can pay many times: accepts that
        single object or `{"orders": [...]}`.
        """
        path = f"/api/payments/userId/{_segment(user_id, 'user_id')}"
        result = self._call("GET", path, retried=True)
        if isinstance(result, dict) and "orders" in result:
            return self._orders(result, f"GET {path}")
        return [self._order(result, f"GET {path}")]

    def cancel_payment(self, signature: str) -> None:
        """POST /api/payments/{signature}/cancel. Exactly one attempt.

        On any error the cancellation may or may not have been taken. point3 processes
        cancellations every 5 minutes, so `payment(signature).is_canceled` only proves it
        after that: look it up more than 5 minutes later before cancelling again.
        """
        path = f"/api/payments/{_segment(signature, 'signature')}/cancel"
        result = self._call("POST", path, retried=False)
        if not isinstance(result, dict):
            raise MalformedResponseError(
                f"point3 POST {path} answered success but result is not an object: {self._preview(result)}; "
                "the cancellation was probably taken, look it up after the 5-minute batch"
            )

    def payments_page(self, start: dt.datetime, end: dt.datetime | None, page: int, count: int) -> Page:
        """GET /api/payments/date, one page. Contract-breaking records come back as `rejected`."""
        for name, moment in (("start", start), ("end", end)):
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware (it is sent as KST)")
        if page < 1 or count < 1:
            raise ValueError(f"page and count start at 1, not page={page}, count={count}")
        path = DATE_ENDPOINT
        params = {
            "startDate": format_api_datetime(start),
            "endDate": "" if end is None else format_api_datetime(end),  # empty: until now
            "page": page,
            "count": count,
        }
        records = self._order_list(self._call("GET", path, params=params, retried=True), f"GET {path}")
        orders: list[Order] = []
        rejected: list[RejectedRecord] = []
        bound = self.limits.max_amount_won
        for raw in records:
            try:
                orders.append(parse_order(raw, bound))
            except RecordRejected as exc:
                # A record that was not even UTF-8 comes already rejected (see _load_per_record);
                # parse_order refuses it as "not an object", so the good path pays no extra check.
                rejected.append(raw if isinstance(raw, RejectedRecord) else RejectedRecord.from_raw(raw, str(exc)))
        return Page(page=page, count=count, orders=orders, rejected=rejected, record_count=len(records))

    def iter_payment_pages(
        self, start: dt.datetime, end: dt.datetime | None, *, page_size: int | None = None
    ) -> Iterator[Page]:
        """Walk pages 1, 2, ... until one is shorter than the page size (or empty).

        point3 documents no largest `count`: a 400 at a size above 30 halves it (never
        below 30), keeps it in `self.page_size` and restarts at page 1, so pages already
        yielded come again: callers dedupe by signature (they must anyway, pages can shift).
        """
        size = self.page_size if page_size is None else page_size
        number = 1
        previous: tuple[list[str], list[str]] | None = None
        while True:
            try:
                current = self.payments_page(start, end, number, size)
            except BadRequestError:
                if size <= MIN_PAGE_SIZE:
                    raise
                refused, size = size, max(MIN_PAGE_SIZE, size // 2)
                self.page_size = size
                self.stats.count("page_size_backoffs")
                logger.warning("point3 refused page size %d; restarting the walk from page 1 at %d", refused, size)
                number, previous = 1, None
                continue
            yield current
            if current.record_count < size:
                return
            seen = ([order.signature for order in current.orders], [record.raw_text for record in current.rejected])
            if seen == previous:
                # A full page identical to the last one: the server ignores `page`, and
                # walking on would never end.
                raise MalformedResponseError(
                    f"point3 GET {DATE_ENDPOINT} returned the same {size} records for pages "
                    f"{number - 1} and {number}; it seems to ignore the page parameter"
                )
            number, previous = number + 1, seen

    # --- result shapes -------------------------------------------------------------------

    def _token(self, result: Any, where: str) -> str:
        token = result.get("token") if isinstance(result, dict) else None
        if not isinstance(token, str) or not token:
            raise MalformedResponseError(f"point3 {where}: result.token is missing or not a string")
        return token

    def _order(self, raw: Any, where: str) -> Order:
        try:
            return parse_order(raw, self.limits.max_amount_won)
        except RecordRejected as exc:
            reason = raw.reason if isinstance(raw, RejectedRecord) else str(exc)
            raise MalformedResponseError(
                f"point3 {where}: the payment record breaks the contract: {self._scrub(reason)}"
            ) from None

    def _orders(self, result: Any, where: str) -> list[Order]:
        return [self._order(raw, where) for raw in self._order_list(result, where)]

    def _order_list(self, result: Any, where: str) -> list[Any]:
        orders = result.get("orders") if isinstance(result, dict) else None
        if not isinstance(orders, list):
            raise MalformedResponseError(f"point3 {where}: result.orders is not a list: {self._preview(result)}")
        return orders

    # --- the request loop ----------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        retried: bool,
    ) -> Any:
        """One request, under the retry policy when `retried`; returns the envelope's `result`."""
        attempts = self.retry.max_attempts if retried else 1
        attempt = 1
        while True:
            try:
                return self._attempt(method, path, params, body)
            except Point3Error as exc:
                reason = retry_reason(exc)
                if reason is None or attempt >= attempts:
                    if reason is not None and attempts > 1:
                        exc.args = (f"{exc.args[0]} (gave up after {attempt} attempts)",)
                    raise
                delay = self.retry.delay(attempt, getattr(exc, "retry_after", None))
                self.stats.count_retry(reason)
                logger.warning(
                    "point3 %s %s: %s on attempt %d of %d, retrying in %.2fs",
                    method, path, reason, attempt, attempts, delay,
                )
                if self._on_retry is not None:
                    self._on_retry(RetryEvent(attempt, reason, delay, method, path))
                self.retry.sleep(delay)
                attempt += 1

    def _attempt(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: Mapping[str, Any] | None
    ) -> Any:
        where = f"point3 {method} {path}"
        headers = {"Authorization": f"Basic {self._key.reveal()}"}
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        self.stats.count("requests")
        response, raw_body = self._send(where, method, path, params, content, headers)
        try:
            envelope = self._decode(raw_body)
        except ValueError as exc:
            if response.is_success:
                raise MalformedResponseError(
                    f"{where} answered {response.status_code} with a body that is not JSON: {exc}"
                ) from None
            envelope = None
        if not response.is_success:
            what = f"answered {response.status_code}"
            raise self._status_error(where, response, raw_body, envelope, response.status_code, what)
        if not isinstance(envelope, dict):
            raise MalformedResponseError(f"{where}: the answer is not an envelope object: {self._preview(envelope)}")
        code = envelope.get("statusCode")
        if type(code) is not int:
            raise MalformedResponseError(f"{where}: the envelope has no integer statusCode: {self._preview(code)}")
        if not 200 <= code < 300:
            what = f"answered HTTP {response.status_code} with statusCode {code}"
            raise self._status_error(where, response, raw_body, envelope, code, what)
        if "result" not in envelope:
            raise MalformedResponseError(f"{where}: the envelope has no result")
        return envelope["result"]

    def _send(
        self, where: str, method: str, path: str, params: Mapping[str, Any] | None,
        content: bytes | None, headers: dict[str, str],
    ) -> tuple[httpx.Response, bytes]:
        """One exchange: the response and its whole body, read under the deadline and size bound."""
        deadline = self._clock() + self.limits.request_deadline_seconds
        try:
            with self._http.stream(method, path, params=params, content=content, headers=headers) as response:
                return response, self._read_body(where, response, deadline)
        except httpx.RequestError as exc:
            failure = exc
        # Raised outside the except block, with a bare copy as the cause: the original holds
        # the request, Authorization header included, and must be neither cause nor context.
        bare = type(failure)(self._scrub(str(failure)))
        name = type(failure).__name__
        if isinstance(failure, httpx.TimeoutException):
            raise Point3TimeoutError(f"{where} got no answer within {self._timeout}s ({name})") from bare
        if isinstance(failure, httpx.DecodingError):  # a broken gzip/deflate body: as good as truncated
            raise MalformedResponseError(f"{where}: the body could not be decompressed: {bare}") from bare
        raise Point3ConnectionError(f"{where} failed: {name}: {bare}") from bare

    def _read_body(self, where: str, response: httpx.Response, deadline: float) -> bytes:
        """The body, chunk by chunk: the per-read timeout alone lets a drip run forever.

        The size counts decoded bytes, so a small compressed body cannot inflate past it.
        """
        limit = self.limits.max_body_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and (len(declared) > 20 or int(declared) > limit):
            raise ResponseTooLargeError(
                f"{where} answered with a {declared}-byte body, over the {limit:,}-byte bound "
                "(setting max_body_bytes); not read"
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(
                    f"{where}: the body is over the {limit:,}-byte bound (setting max_body_bytes); stopped reading"
                )
            if self._clock() > deadline:
                raise RequestDeadlineError(
                    f"{where}: the answer was not whole within the {self.limits.request_deadline_seconds}s "
                    f"request deadline (setting request_deadline_seconds); {size:,} bytes had arrived"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode(self, content: bytes) -> Any:
        """orjson; if it refuses, record by record; then one conservative repair of doc-style
        slips for small bodies. ValueError if nothing works."""
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            first_error = exc
        # Only bodies orjson refuses get here. Each byte that is not UTF-8 becomes a stand-in,
        # so the one record holding it is quarantined and its neighbours are read; the
        # standard library also reads what orjson refuses but is still JSON (a lone surrogate
        # escape): that record then fails its own contract check.
        text = content.decode("utf-8", "surrogateescape")
        try:
            return _load_per_record(text)
        except (ValueError, RecursionError):
            pass
        bound = self.limits.max_repair_bytes
        if len(content) > bound:
            raise ValueError(f"{first_error}; a body over {bound:,} bytes is not repaired (setting max_repair_bytes)")
        try:
            value = _load_per_record(_repair_json(text))
        except (ValueError, RecursionError):
            raise ValueError(str(first_error)) from None
        self.stats.count("repaired_bodies")
        return value

    def _status_error(
        self, where: str, response: httpx.Response, raw_body: bytes, envelope: Any, code: int, what: str
    ) -> Point3Error:
        if isinstance(envelope, dict):
            server_message = envelope.get("message")
            server_message = self._scrub(server_message) if isinstance(server_message, str) else None
        else:  # not an envelope (a proxy's HTML page...): quote the text itself, the start of it
            # Scrubbed before it is cut, so no cut can leave part of a key unscrubbed.
            text = self._scrub(raw_body.decode("utf-8", "replace"))[:_MESSAGE_SCAN]
            server_message = " ".join(text.split()) or None
        if server_message is not None:
            server_message = server_message[:_MESSAGE_LIMIT]
        message = f"{where} {what}: {server_message or '(no message)'}"
        error_class = status_error_class(code)
        if error_class is RateLimitError:
            return RateLimitError(message, status_code=code, server_message=server_message,
                                  retry_after=_retry_after(response.headers.get("Retry-After")))
        return error_class(message, status_code=code, server_message=server_message)

    def _preview(self, value: Any) -> str:
        """A short, scrubbed view of a wrong value for an error message."""
        if isinstance(value, RejectedRecord):
            text = f"{value.reason}: {value.raw_text}"
        else:
            try:
                text = orjson.dumps(value).decode()
            except orjson.JSONEncodeError:  # a lone surrogate, a Decimal: a bounded repr instead
                text = _PREVIEW.repr(value)
        text = self._scrub(text)
        return text if len(text) <= 80 else text[:77] + "..."

    def _scrub(self, text: str) -> str:
        """Server text is quoted in errors; make sure it cannot echo a key back."""
        for key in self._known_keys:
            text = text.replace(key.reveal(), "********")
        return text


def _require(value: str, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")


def _segment(value: str, name: str) -> str:
    """A path segment, URL-encoded (`/`, `?`, `#` included) so it cannot change the path."""
    _require(value, name)
    return quote(value, safe="")


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)  # HTTP dates are GMT
    return max((when - dt.datetime.now(dt.timezone.utc)).total_seconds(), 0.0)


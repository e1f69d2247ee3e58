"""The point3 client, retry policy and key rotation, on httpx.MockTransport (no waiting)."""

from __future__ import annotations

import datetime as dt
import email.utils
import gzip
import logging
import os
import stat
import threading
import tracemalloc
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from point3_pipeline import client as client_module
from point3_pipeline import keys
from point3_pipeline.client import ClientStats, Page, Point3Client, RejectedRecord
from point3_pipeline.config import ConfigError, SecretKey
from point3_pipeline.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    NotFoundError,
    Point3ConnectionError,
    Point3Error,
    Point3StatusError,
    Point3TimeoutError,
    RateLimitError,
    RequestDeadlineError,
    ResponseTooLargeError,
    ServerError,
)
from point3_pipeline.limits import Limits
from point3_pipeline.models import KST, PaymentRequest
from point3_pipeline.retry import RetryEvent, RetryPolicy, retry_reason
from tests.records import record

KEY = "sk_live_ZEBRA42unmistakable"
NEW_KEY = "sk_live_NEWKEY99distinctive"
BASE = "http://point3.test"
START = dt.datetime(2024, 3, 1, tzinfo=KST)
BOUND = 120  # seconds: an upper bound on a wait that ends by an event, never a race


def envelope(result, *, status=200, code=200, message="success", headers=None):
    return httpx.Response(status, json={"statusCode": code, "message": message, "result": result}, headers=headers)


def raw_body(text, status=200):
    return httpx.Response(status, content=text.encode() if isinstance(text, str) else text)


class Script:
    """A MockTransport handler answering from a list of steps; the last step repeats."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        return step(request) if callable(step) else step


class Harness:
    def __init__(self, *steps, **kwargs):
        self.script = steps[0] if len(steps) == 1 and callable(steps[0]) else Script(*steps)
        self.sleeps: list[float] = []
        self.events: list[RetryEvent] = []
        kwargs.setdefault("retry", RetryPolicy(jitter=0, sleep=self.sleeps.append))
        self.client = Point3Client(BASE, KEY, transport=httpx.MockTransport(self.script),
                                   on_retry=self.events.append, **kwargs)

    @property
    def requests(self):
        return self.script.requests


@pytest.fixture
def harness():
    made = []

    def make(*steps, **kwargs):
        made.append(Harness(*steps, **kwargs))
        return made[-1]

    yield make
    for h in made:
        h.client.close()


# --- requests as sent ---------------------------------------------------------------------


def test_header_is_the_key_as_issued_and_segments_are_encoded(harness):
    h = harness(envelope(record(signature="a/b c?#")))
    order = h.client.payment("a/b c?#")
    request = h.requests[0]
    assert request.headers["Authorization"] == f"Basic {KEY}"
    assert request.url.raw_path == b"/api/payments/a%2Fb%20c%3F%23"
    assert order.signature == "a/b c?#"


def test_one_http_client_reused_and_closed_by_context_manager(harness):
    h = harness(envelope({"balance": 150000}))
    with h.client as client:
        assert client.settlement_balance() == 150000
        assert client.settlement_balance() == 150000
        pool = client._http
    assert pool.is_closed
    assert h.client.stats.requests == 2


@pytest.mark.parametrize(("call", "path"), [
    (lambda c: c.payments_by_order_id("주문 1"), "/api/payments/orderid/%EC%A3%BC%EB%AC%B8%201"),
    (lambda c: c.payments_by_user_id("u/1"), "/api/payments/userId/u%2F1"),
])
def test_lookup_paths(harness, call, path):
    h = harness(envelope({"orders": [record(), record(signature="S2")]}))
    orders = call(h.client)
    assert [o.signature for o in orders] == ["CnwGnosGohK2iu3cSrE68Ew4xVLr98Gl", "S2"]
    assert h.requests[0].url.raw_path.decode() == path


@pytest.mark.parametrize("call", [
    lambda c: c.payment(""),
    lambda c: c.payments_by_order_id(""),
    lambda c: c.payments_by_user_id(""),
    lambda c: c.confirm_payment(""),
    lambda c: c.cancel_payment(""),
])
def test_empty_identifiers_refused_before_any_request(harness, call):
    h = harness(envelope({}))
    with pytest.raises(ValueError, match="non-empty"):
        call(h.client)
    assert h.requests == []


def test_user_lookup_accepts_the_documented_single_order(harness):
    h = harness(envelope(record(clientGeneratedUserId="user-7")))
    [order] = h.client.payments_by_user_id("user-7")
    assert order.client_generated_user_id == "user-7"


def test_create_payment_token_sends_the_request_and_is_retried(harness):
    request = PaymentRequest("user-1", 1000, "order-1", "a", "a", "1428801897", "가게", "젤리", 900, 100)
    h = harness(envelope(None, status=503), envelope({"token": "tok+/="}))
    assert h.client.create_payment_token(request) == "tok+/="
    assert [r.method for r in h.requests] == ["POST", "POST"]
    assert orjson.loads(h.requests[-1].content) == request.to_json()
    assert h.requests[-1].headers["Content-Type"] == "application/json"
    assert h.client.create_payment_token({"totalCharge": 1}) == "tok+/="


def test_confirm_payment_returns_the_order(harness):
    h = harness(envelope(record(cultureExpenseType="b", timeStampOnRequest="20240301120000",
                                timeStampOnAccept="20240301120005", paymentMethodType="card")))
    order = h.client.confirm_payment("SIG")
    assert orjson.loads(h.requests[0].content) == {"signature": "SIG"}
    assert order.accepted_at == dt.datetime(2024, 3, 1, 12, 0, 5, tzinfo=KST)
    assert order.culture_expense_type == "b"


def test_cancel_payment(harness):
    h = harness(envelope({}))
    assert h.client.cancel_payment("SIG") is None
    assert h.requests[0].method == "POST"
    assert h.requests[0].url.path == "/api/payments/SIG/cancel"


def test_refresh_switches_the_client_to_the_new_key(harness):
    h = harness(envelope({"token": NEW_KEY}), envelope({"balance": 1}))
    assert h.client.refresh_merchant_key() == SecretKey(NEW_KEY)
    h.client.settlement_balance()
    assert h.requests[0].headers["Authorization"] == f"Basic {KEY}"
    assert h.requests[1].headers["Authorization"] == f"Basic {NEW_KEY}"


def test_from_env_reads_url_and_key_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    seen = []
    env = {"POINT3_API_URL": BASE + "/", "POINT3_SECRET_KEY_FILE": str(key_file)}
    transport = httpx.MockTransport(lambda r: seen.append(r) or envelope({"balance": 5}))
    with Point3Client.from_env(env, transport=transport, page_size=100) as client:
        assert client.settlement_balance() == 5
        assert client.page_size == 100
    assert seen[0].headers["Authorization"] == f"Basic {KEY}"
    assert str(seen[0].url) == BASE + "/api/settlement"
    with pytest.raises(ConfigError, match="POINT3_API_URL"):
        Point3Client.from_env({})


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("ftp://point3.test", KEY), {}, "http"),
    ((BASE, ""), {}, "merchant key"),
    ((BASE, KEY + " tail"), {}, "merchant key"),
    ((BASE, KEY), {"page_size": 0}, "page_size"),
    ((BASE, KEY), {"limits": Limits(max_amount_won=2**63)}, "max_amount_won must be between 0 and"),
])
def test_constructor_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        Point3Client(*args, **kwargs)
    assert KEY not in str(info.value)


# --- status errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), [
    (400, BadRequestError), (401, AuthenticationError), (404, NotFoundError), (409, Point3StatusError),
])
def test_client_errors_are_not_retried(harness, status, error):
    h = harness(envelope(None, status=status, code=status, message="nope"))
    with pytest.raises(error) as info:
        h.client.settlement_balance()
    assert str(info.value) == f"point3 GET /api/settlement answered {status}: nope"
    assert (info.value.status_code, info.value.server_message) == (status, "nope")
    assert len(h.requests) == 1 and h.sleeps == [] and h.events == []


@pytest.mark.parametrize(("failure", "reason"), [
    (envelope(None, status=500, code=500), "HTTP 500"),
    (envelope(None, status=503, code=503), "HTTP 503"),
    (raw_body("<html>502 Bad Gateway</html>", status=502), "HTTP 502"),
    (envelope(None, status=429, code=429), "HTTP 429"),
    (envelope(None, code=500, message="db down"), "HTTP 500"),  # HTTP 200, body says 500
    (httpx.ReadTimeout("read timed out"), "timeout"),
    (httpx.ConnectTimeout("connect timed out"), "timeout"),
    (httpx.ConnectError("connection refused"), "connection error"),
    (httpx.RemoteProtocolError("peer closed connection"), "connection reset"),
    (httpx.ReadError("connection reset by peer"), "connection reset"),
    (raw_body('{"statusCode": 200, "message": "success", "result": {"bal'), "malformed body"),
    (raw_body("<html>maintenance</html>"), "malformed body"),
    (raw_body(b"\xff\xfe not utf-8"), "malformed body"),
    (lambda request: httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"\x1f\x8b cut")),
     "malformed body"),
    (raw_body(b'{"statusCode": 200, "message": "success", "result": {"orders": [{"signature": "\xff'), "malformed body"),
    (raw_body(b'{"statusCode": 200, "message": "succ\xffss", "result": {"balance": 1}}'), "malformed body"),
    (raw_body(b'{"statusCode": 200, "message": "success", "result": {"balance": 1} \xff}'), "malformed body"),
    (raw_body("[1, 2]"), "malformed body"),
    (raw_body('{"message": "success", "result": {}}'), "malformed body"),
    (raw_body('{"statusCode": "200", "result": {}}'), "malformed body"),
    (raw_body('{"statusCode": 200, "message": "success"}'), "malformed body"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_transient_failures_are_retried_on_reads(harness, failure, reason, caplog):
    h = harness(failure, envelope({"balance": 150000}))
    with caplog.at_level(logging.WARNING, logger="point3_pipeline.client"):
        assert h.client.settlement_balance() == 150000
    assert h.events == [RetryEvent(1, reason, 0.5, "GET", "/api/settlement")]
    assert h.sleeps == [0.5]
    assert h.client.stats == ClientStats(requests=2, retries=1, retries_by_reason={reason: 1})
    [log] = caplog.records
    assert log.name == "point3_pipeline.client" and reason in log.getMessage()


@pytest.mark.parametrize(("failure", "error", "text"), [
    (envelope(None, status=503, code=503, message="busy"), ServerError, "answered 503: busy"),
    (raw_body("<h1>Bad   Gateway</h1>", status=502), ServerError, "answered 502: <h1>Bad Gateway</h1>"),
    (envelope(None, status=429, code=429), RateLimitError, "answered 429: success"),
    (envelope(None, code=503, message="busy"), ServerError, "answered HTTP 200 with statusCode 503: busy"),
    (httpx.ReadTimeout("slow"), Point3TimeoutError, "got no answer within 10.0s (ReadTimeout)"),
    (httpx.ConnectError("refused"), Point3ConnectionError, "failed: ConnectError: refused"),
    (raw_body('{"statusCode": 200, "result": {"balance": 1'), MalformedResponseError, "body that is not JSON"),
    (raw_body('{"statusCode": 200}'), MalformedResponseError, "envelope has no result"),
    (raw_body('"just a string"'), MalformedResponseError, "not an envelope object"),
])
def test_exhausted_attempts_raise_the_last_error_saying_how_many(harness, failure, error, text):
    h = harness(failure)
    with pytest.raises(error) as info:
        h.client.settlement_balance()
    message = str(info.value)
    assert message.startswith("point3 GET /api/settlement")
    assert text in message and message.endswith("(gave up after 5 attempts)")
    assert len(h.requests) == 5
    assert h.sleeps == [0.5, 1.0, 2.0, 4.0]  # exponential, jitter 0
    assert h.client.stats.retries == 4


def test_http_error_wins_over_a_body_saying_200(harness):
    h = harness(envelope(None, status=401, code=200, message="bad key"))
    with pytest.raises(AuthenticationError, match="answered 401: bad key"):
        h.client.settlement_balance()


def test_body_status_error_on_http_200_is_not_retried_when_4xx(harness):
    h = harness(envelope(None, code=401, message="key rotated"))
    with pytest.raises(AuthenticationError) as info:
        h.client.settlement_balance()
    assert str(info.value) == "point3 GET /api/settlement answered HTTP 200 with statusCode 401: key rotated"
    assert len(h.requests) == 1


@pytest.mark.parametrize("response", [
    httpx.Response(400, json={"statusCode": 400, "message": None}),
    httpx.Response(400, content=b""),
])
def test_missing_server_message(harness, response):
    h = harness(response)
    with pytest.raises(BadRequestError) as info:
        h.client.settlement_balance()
    assert str(info.value) == "point3 GET /api/settlement answered 400: (no message)"
    assert info.value.server_message is None


def test_long_server_text_is_cut(harness):
    h = harness(raw_body("x" * 5000, status=400))
    with pytest.raises(BadRequestError) as info:
        h.client.settlement_balance()
    assert len(info.value.server_message) == 200


@pytest.mark.parametrize(("header", "delay"), [
    ("7", 7.0),
    ("0.25", 0.25),
    ("120", 30.0),  # capped at max_delay
    ("-3", 0.0),
    ("soon", 0.5),  # unreadable: plain backoff
    ("nan", 0.5),
    ("Sat, 01 Jan 2000 00:00:00 -0000", 0.0),  # a zone-less HTTP date is GMT
    (email.utils.format_datetime(dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), usegmt=True), 0.0),
    (email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1), usegmt=True), 30.0),
])
def test_retry_after_is_honoured(harness, header, delay):
    h = harness(envelope(None, status=429, code=429, headers={"Retry-After": header}), envelope({"balance": 1}))
    h.client.settlement_balance()
    assert h.sleeps == [delay]
    assert h.events[0].delay == delay and h.events[0].reason == "HTTP 429"


def test_rate_limit_error_carries_retry_after(harness):
    h = harness(envelope(None, status=429, code=429, headers={"Retry-After": "3"}),
                retry=RetryPolicy(max_attempts=1))
    with pytest.raises(RateLimitError) as info:
        h.client.settlement_balance()
    assert info.value.retry_after == 3.0
    assert "gave up" not in str(info.value)  # a single allowed attempt is not "giving up"


def test_mixed_failures_are_counted_by_reason(harness):
    h = harness(envelope(None, status=503, code=503), httpx.ReadTimeout("t"), envelope(None, status=503, code=503),
                envelope({"balance": 1}))
    h.client.settlement_balance()
    assert h.client.stats.retries_by_reason == {"HTTP 503": 2, "timeout": 1}
    assert [e.attempt for e in h.events] == [1, 2, 3]


def test_retry_stops_at_a_permanent_error(harness):
    h = harness(envelope(None, status=503, code=503), envelope(None, status=404, code=404, message="no such payment"))
    with pytest.raises(NotFoundError) as info:
        h.client.payment("SIG")
    assert str(info.value) == "point3 GET /api/payments/SIG answered 404: no such payment"
    assert len(h.requests) == 2


# --- writes that must not repeat ----------------------------------------------------------


@pytest.mark.parametrize("write", [
    lambda c: c.confirm_payment("SIG"),
    lambda c: c.cancel_payment("SIG"),
    lambda c: c.refresh_merchant_key(),
], ids=["confirm", "cancel", "refresh"])
@pytest.mark.parametrize(("failure", "error"), [
    (envelope(None, status=500, code=500), ServerError),
    (envelope(None, status=429, code=429), RateLimitError),
    (httpx.ReadTimeout("slow"), Point3TimeoutError),
    (httpx.RemoteProtocolError("reset"), Point3ConnectionError),
    (raw_body('{"statusCode": 200, "res'), MalformedResponseError),
], ids=["500", "429", "timeout", "reset", "truncated"])
def test_writes_get_exactly_one_attempt(harness, write, failure, error):
    h = harness(failure)
    with pytest.raises(error) as info:
        write(h.client)
    assert len(h.requests) == 1
    assert h.requests[0].method == "POST"
    assert h.sleeps == [] and h.client.stats.retries == 0
    assert "gave up" not in str(info.value)


def test_refresh_keeps_the_old_key_when_the_answer_is_unusable(harness):
    h = harness(envelope({"token": "has space"}), envelope({"balance": 1}))
    with pytest.raises(MalformedResponseError, match="merchant console"):
        h.client.refresh_merchant_key()
    h.client.settlement_balance()
    assert h.requests[1].headers["Authorization"] == f"Basic {KEY}"


# --- result shapes ------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "result", "text"), [
    (lambda c: c.settlement_balance(), {"balance": "150000"}, "GET /api/settlement: result.balance is not an integer"),
    (lambda c: c.settlement_balance(), {"balance": True}, "result.balance is not an integer"),
    (lambda c: c.settlement_balance(), [], "result.balance"),
    (lambda c: c.create_payment_token({}), {"token": ""}, "POST /purchase/token: result.token"),
    (lambda c: c.refresh_merchant_key(), {}, "POST /api/token/refresh: result.token"),
    (lambda c: c.payments_by_order_id("o"), {"orders": {}}, "result.orders is not a list"),
    (lambda c: c.payments_page(START, None, 1, 30), {}, "GET /api/payments/date: result.orders is not a list"),
    (lambda c: c.payment("SIG"), record(totalCharge="1000"), "GET /api/payments/SIG: the payment record breaks the contract: totalCharge is not an integer"),
    (lambda c: c.payment("SIG"), None, "record is a NoneType"),
    (lambda c: c.confirm_payment("SIG"), record(signature=...), "POST /purchase/confirm: the payment record breaks the contract: missing signature"),
    (lambda c: c.payments_by_user_id("u"), {}, "missing signature"),
    (lambda c: c.payments_by_user_id("u"), {"orders": [record(), record(isCanceled="N")]}, "isCanceled is not a boolean"),
    (lambda c: c.cancel_payment("SIG"), "ok", "look it up after the 5-minute batch"),
])
def test_wrong_result_shapes_raise_at_once(harness, call, result, text):
    h = harness(envelope(result))
    with pytest.raises(MalformedResponseError) as info:
        call(h.client)
    assert text in str(info.value)
    assert len(h.requests) == 1  # a stable contract break is not retried


# --- lenient JSON -------------------------------------------------------------------------

DOC_ORDERS = """{
"statusCode": 200,
"message": "success",
"result": {
"orders": [
{
"signature": "CnwGnosGohK2iu3cSrE68Ew4xVLr98Gl",
"userId": "1",
"totalCharge": 10000000,
"taxFreeAmount": 0,
"vat": 0,
"clientGeneratedUserId": "IDIDIDIDIDIDIDIDIDIDIDIDIDIDT0"
"isCanceled": true,
},
{
"signature": "NsIlFFvv8zdEMMaFZSI3i7iEKXRdUuMz",
"clientNickname": "a,}\\" \\"b\\": [1,]",
"totalCharge": 90000,
"taxFreeAmount": 0,
"vat": 0
"isCanceled": false
},
],
},
}"""


def test_doc_style_json_is_repaired_once_and_counted(harness):
    h = harness(raw_body(DOC_ORDERS))
    orders = h.client.payments_by_order_id("orderIdRandom")
    assert [(o.signature, o.total_charge, o.is_canceled) for o in orders] == [
        ("CnwGnosGohK2iu3cSrE68Ew4xVLr98Gl", 10000000, True),
        ("NsIlFFvv8zdEMMaFZSI3i7iEKXRdUuMz", 90000, False),
    ]
    assert orders[1].client_nickname == 'a,}" "b": [1,]'  # strings are left alone
    assert h.client.stats.repaired_bodies == 1
    assert h.client.stats.retries == 0


def test_doc_style_token_answer_is_repaired(harness):
    h = harness(raw_body('{ "statusCode": 200, "message": "success", "result": { "token": "t", }, }'))
    assert h.client.create_payment_token({}) == "t"
    assert h.client.stats.repaired_bodies == 1


@pytest.mark.parametrize("body", [
    DOC_ORDERS[: len(DOC_ORDERS) // 2],  # truncated: the repair never closes brackets
    DOC_ORDERS[:-1],
    DOC_ORDERS.replace('"userId": "1",', '"userId": "1'),  # unterminated string
    '{"statusCode": 200 "message": "success", "result": {}}',  # missing comma on one line: not a doc slip
    '{"statusCode": 200, "message": "success", "result": {"orders": [' + "[" * 5000 + "]" * 5000 + "]}}",  # too deep
])
def test_unrepairable_bodies_stay_malformed(harness, body):
    h = harness(raw_body(body), retry=RetryPolicy(max_attempts=2, jitter=0, sleep=lambda s: None))
    with pytest.raises(MalformedResponseError, match="not JSON"):
        h.client.payments_by_order_id("orderIdRandom")
    assert h.client.stats.repaired_bodies == 0
    assert h.client.stats.retries_by_reason == {"malformed body": 1}


# --- the date endpoint and paging ---------------------------------------------------------


def pages_server(total: int, *, max_count: int | None = None, extra_on_page: dict | None = None):
    """A date endpoint over `total` records; 400 when count > max_count."""
    def handler(request: httpx.Request) -> httpx.Response:
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}
        page, count = int(query["page"]), int(query["count"])
        if max_count is not None and count > max_count:
            return envelope(None, status=400, code=400, message="count too large")
        first = (page - 1) * count
        records = [record(signature=f"S{i:04d}") for i in range(first, min(first + count, total))]
        records += (extra_on_page or {}).get(page, [])
        return envelope({"orders": records})
    handler.requests = []  # type: ignore[attr-defined]

    def recording(request):
        handler.requests.append(request)  # type: ignore[attr-defined]
        return handler(request)
    recording.requests = handler.requests  # type: ignore[attr-defined]
    return recording


def query_of(request):
    return {k: v[0] for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}


def test_date_params_are_kst_without_zone_and_empty_end_means_now(harness):
    h = harness(envelope({"orders": []}))
    utc_start = dt.datetime(2024, 2, 29, 15, 30, tzinfo=dt.timezone.utc)
    h.client.payments_page(utc_start, None, 1, 30)
    h.client.payments_page(utc_start, dt.datetime(2024, 3, 2, tzinfo=KST), 2, 50)
    assert query_of(h.requests[0]) == {"startDate": "2024-03-01T00:30:00", "endDate": "", "page": "1", "count": "30"}
    assert query_of(h.requests[1])["endDate"] == "2024-03-02T00:00:00"
    assert h.requests[0].url.path == "/api/payments/date"


@pytest.mark.parametrize(("start", "end", "page", "count", "match"), [
    (dt.datetime(2024, 3, 1), None, 1, 30, "start must be timezone-aware"),
    (START, dt.datetime(2024, 3, 2), 1, 30, "end must be timezone-aware"),
    (START, None, 0, 30, "start at 1"),
    (START, None, 1, 0, "start at 1"),
])
def test_payments_page_argument_checks(harness, start, end, page, count, match):
    h = harness(envelope({"orders": []}))
    with pytest.raises(ValueError, match=match):
        h.client.payments_page(start, end, page, count)
    assert h.requests == []


@pytest.mark.parametrize(("total", "expected_sizes"), [
    (70, [30, 30, 10]),  # short last page
    (60, [30, 30, 0]),  # empty last page
    (0, [0]),
])
def test_iter_walks_until_a_short_or_empty_page(harness, total, expected_sizes):
    server = pages_server(total)
    h = harness(server)
    pages = list(h.client.iter_payment_pages(START, None))
    assert [p.record_count for p in pages] == expected_sizes
    assert [p.page for p in pages] == list(range(1, len(expected_sizes) + 1))
    assert all(isinstance(p, Page) and p.count == 30 for p in pages)
    assert sum(len(p.orders) for p in pages) == total
    assert [query_of(r)["page"] for r in server.requests] == [str(i) for i in range(1, len(expected_sizes) + 1)]


def test_page_size_backs_off_by_halves_down_to_30_and_is_remembered(harness, caplog):
    server = pages_server(45, max_count=30)
    h = harness(server, page_size=1000)
    with caplog.at_level(logging.WARNING, logger="point3_pipeline.client"):
        pages = list(h.client.iter_payment_pages(START, None))
    sizes = [int(query_of(r)["count"]) for r in server.requests]
    assert sizes == [1000, 500, 250, 125, 62, 31, 30, 30]
    assert [p.record_count for p in pages] == [30, 15]
    assert h.client.page_size == 30
    assert h.client.stats.page_size_backoffs == 6
    assert "refused page size 62" in caplog.text
    server.requests.clear()
    list(h.client.iter_payment_pages(START, None))
    assert [query_of(r)["count"] for r in server.requests] == ["30", "30"]


def test_backoff_mid_walk_restarts_at_page_1(harness):
    calls = []

    def handler(request):
        q = query_of(request)
        calls.append((q["page"], q["count"]))
        if q["page"] == "2" and q["count"] == "60":
            return envelope(None, status=400, code=400)
        return envelope({"orders": [record(signature=f"{q['page']}-{i}") for i in range(int(q["count"]) if q["page"] == "1" else 5)]})

    h = harness(handler, page_size=60)
    pages = list(h.client.iter_payment_pages(START, None))
    assert calls == [("1", "60"), ("2", "60"), ("1", "30"), ("2", "30")]
    assert [p.record_count for p in pages] == [60, 30, 5]


def test_explicit_page_size_overrides_the_client_default(harness):
    server = pages_server(5)
    h = harness(server)
    list(h.client.iter_payment_pages(START, None, page_size=200))
    assert query_of(server.requests[0])["count"] == "200"
    assert h.client.page_size == 30


def test_400_at_size_30_is_raised(harness):
    h = harness(envelope(None, status=400, code=400, message="bad startDate"))
    with pytest.raises(BadRequestError, match="answered 400: bad startDate"):
        list(h.client.iter_payment_pages(START, None))
    assert len(h.requests) == 1
    assert h.client.stats.page_size_backoffs == 0


def test_a_server_ignoring_page_does_not_loop_forever(harness):
    h = harness(envelope({"orders": [record(signature=f"S{i}") for i in range(30)]}))
    with pytest.raises(MalformedResponseError, match="same 30 records for pages 1 and 2"):
        list(h.client.iter_payment_pages(START, None))
    assert len(h.requests) == 2


def test_retries_inside_a_walk(harness):
    server = pages_server(40)
    flaky = Script(envelope(None, status=503, code=503), server)
    h = harness(flaky)
    pages = list(h.client.iter_payment_pages(START, None))
    assert [p.record_count for p in pages] == [30, 10]
    assert h.client.stats.retries_by_reason == {"HTTP 503": 1}


BAD_RECORDS = [
    (record(signature=...), "missing signature", None),
    (record(signature="S-str", totalCharge="1000"), "totalCharge is not an integer amount: '1000'", "S-str"),
    (record(signature="S-e", cultureExpenseType="e"), "unknown cultureExpenseType code 'e'", "S-e"),
    (record(signature="S-ts", timeStampOnAccept="2024-03-01 12:00"), "timeStampOnAccept is not a YYYYMMDDHHmmss timestamp", "S-ts"),
    (record(signature="S-float", vat=100.0), "vat is not an integer amount", "S-float"),
    ("not an object", "record is a str, not an object", None),
]


def test_rejected_records_are_kept_with_reasons_beside_good_ones(harness):
    good = [record(signature="G1"), record(signature="G2", taxFreeAmount=0, vat=0, extra="kept")]
    raws = [good[0]] + [raw for raw, _, _ in BAD_RECORDS] + [good[1]]
    h = harness(envelope({"orders": raws}))
    page = h.client.payments_page(START, None, 1, 30)
    assert page.record_count == len(raws)
    assert [o.signature for o in page.orders] == ["G1", "G2"]
    assert page.orders[1].vat + page.orders[1].tax_free_amount != page.orders[1].total_charge and page.orders[1].raw["extra"] == "kept"
    assert len(page.rejected) == len(BAD_RECORDS)
    for rejected, (raw, reason, signature) in zip(page.rejected, BAD_RECORDS):
        assert rejected.reason.startswith(reason)
        assert rejected.signature == signature
        assert orjson.loads(rejected.raw_text) == raw


def test_a_page_of_only_rejected_records_is_full_and_walk_continues(harness):
    def handler(request):
        page = int(query_of(request)["page"])
        return envelope({"orders": [record(signature=f"S{page}-{i}", vat="x") for i in range(30 if page == 1 else 2)]})

    h = harness(handler)
    pages = list(h.client.iter_payment_pages(START, None))
    assert [(len(p.orders), len(p.rejected)) for p in pages] == [(0, 30), (0, 2)]


def test_rejected_record_falls_back_to_repr():
    rejected = RejectedRecord.from_raw({"signature": "S", "bad": {1, 2}}, "weird")
    assert rejected == RejectedRecord("{'signature': 'S', 'bad': {1, 2}}", "weird", "S")
    assert RejectedRecord.from_raw({"signature": 7}, "r").signature is None


# --- one record that is not UTF-8 does not make its page unreadable -----------------------


def page_body(*records: bytes, doc_style: bool = False) -> bytes:
    """An envelope around records given as raw JSON bytes (which may hold bytes that are not UTF-8)."""
    if doc_style:  # point3's doc slips: a missing comma after the status and a trailing one
        return b'{\n"statusCode": 200\n"message": "success",\n"result": {"orders": [' + b",\n".join(records) + b",]}}"
    return b'{"statusCode": 200, "message": "success", "result": {"orders": [' + b", ".join(records) + b"]}}"


def raw_record(**changes) -> bytes:
    return orjson.dumps(record(**changes))


BAD_NICK = b'{"signature": "BAD1", "clientNickname": "caf\xe9 \xea\xb0", "totalCharge": 1000, "taxFreeAmount": 900, "vat": 100, "isCanceled": false}'
BAD_SIG = b'{"signature":"B\xffD2","totalCharge":1,"taxFreeAmount":1,"vat":0,"isCanceled":false,"note":"\\ud800"}'


@pytest.mark.parametrize("doc_style", [False, True], ids=["compact", "doc-style"])
def test_a_record_with_invalid_utf8_is_quarantined_with_its_bytes_and_its_neighbours_kept(harness, doc_style):
    body = page_body(raw_record(signature="G1"), BAD_NICK, raw_record(signature="G2"), BAD_SIG, doc_style=doc_style)
    h = harness(raw_body(body))
    page = h.client.payments_page(START, None, 1, 30)
    assert [o.signature for o in page.orders] == ["G1", "G2"]
    assert page.record_count == 4
    assert [r.signature for r in page.rejected] == ["BAD1", "B\\xffD2"]
    nick, sig = page.rejected
    # The record exactly as sent, each byte that is not UTF-8 shown as \xNN.
    assert nick.raw_text == BAD_NICK.decode("utf-8", "backslashreplace")
    assert "caf\\xe9 \\xea\\xb0" in nick.raw_text
    assert nick.reason == ("invalid UTF-8 in the record: byte 0xe9 at byte 44 of the record (and 2 more); "
                           "raw_text shows each as \\xNN")
    assert sig.raw_text == BAD_SIG.decode("utf-8", "backslashreplace") and "\\ud800" in sig.raw_text
    assert sig.reason.startswith("invalid UTF-8 in the record: byte 0xff at byte 15 of the record;")
    assert len(h.requests) == 1 and h.client.stats.retries == 0  # upstream data, not a transport fault
    assert h.client.stats.repaired_bodies == (1 if doc_style else 0)


def test_a_walk_goes_on_past_a_page_with_invalid_utf8(harness):
    def handler(request):
        page = int(query_of(request)["page"])
        records = [raw_record(signature=f"S{page}-{i}") for i in range(30 if page == 1 else 3)]
        if page == 1:
            records[7] = BAD_NICK
        return raw_body(page_body(*records))

    h = harness(handler)
    pages = list(h.client.iter_payment_pages(START, None))
    assert [(p.record_count, len(p.orders), len(p.rejected)) for p in pages] == [(30, 29, 1), (3, 3, 0)]


@pytest.mark.parametrize(("call", "body", "text"), [
    (lambda c: c.payment("SIG"), b'{"statusCode": 200, "message": "success", "result": ' + BAD_NICK + b"}",
     "GET /api/payments/SIG: the payment record breaks the contract: invalid UTF-8 in the record: byte 0xe9"),
    (lambda c: c.payments_by_order_id("o"), page_body(BAD_NICK, raw_record()),
     "GET /api/payments/orderid/o: the payment record breaks the contract: invalid UTF-8 in the record"),
    (lambda c: c.settlement_balance(), b'{"statusCode": 200, "message": "success", "result": {"balance": 1, "x": "\xff"}}',
     'result.balance is not an integer: invalid UTF-8 in the record: byte 0xff at byte 21 of the record;'),
], ids=["payment", "orderid", "settlement"])
def test_invalid_utf8_in_a_looked_up_record_is_a_contract_break_not_a_retry(harness, call, body, text):
    h = harness(raw_body(body))
    with pytest.raises(MalformedResponseError) as info:
        call(h.client)
    assert text in str(info.value)
    assert len(h.requests) == 1


@pytest.mark.parametrize(("value", "reason"), [
    (b"9" * 5000, "record cannot be stored as JSON"),  # beyond what int() reads: the whole page failed
    (b"1e400", "record cannot be stored as JSON"),  # was stored as null
    (b"NaN", "record cannot be stored as JSON"),  # was stored as null
    (b"-Infinity", "record cannot be stored as JSON"),
])
def test_numbers_orjson_refuses_quarantine_their_record_only(harness, value, reason):
    bad = b'{"signature": "ODD", "totalCharge": 1, "taxFreeAmount": 1, "vat": 0, "isCanceled": false, "n": ' + value + b"}"
    h = harness(raw_body(page_body(raw_record(signature="G1"), bad)))
    page = h.client.payments_page(START, None, 1, 30)
    assert [o.signature for o in page.orders] == ["G1"]
    [rejected] = page.rejected
    assert (rejected.signature, rejected.reason.startswith(reason)) == ("ODD", True)
    assert h.client.stats.retries == 0


def test_a_valid_body_never_takes_the_slow_path(harness, monkeypatch):
    def refuse(text):
        raise AssertionError("the per-record path ran for a body orjson reads")

    monkeypatch.setattr(client_module, "_load_per_record", refuse)
    h = harness(envelope({"orders": [record(clientNickname="바이올렛 캔디")]}))
    [order] = h.client.payments_page(START, None, 1, 30).orders
    assert order.client_nickname == "바이올렛 캔디"


def test_an_amount_beyond_the_bound_is_quarantined_with_the_clients_limit(harness):
    h = harness(envelope({"orders": [record(signature="OK", vat=10**9), record(signature="BIG", vat=10**9 + 1)]}),
                limits=Limits(max_amount_won=10**9))
    page = h.client.payments_page(START, None, 1, 30)
    assert [o.signature for o in page.orders] == ["OK"]
    [rejected] = page.rejected
    assert (rejected.signature, rejected.reason) == (
        "BIG", "vat 1000000001 is beyond the bound of 1,000,000,000 won (setting max_amount_won)")
    h = harness(envelope(record(totalCharge=2**62)))
    with pytest.raises(MalformedResponseError, match="totalCharge 4611686018427387904 is beyond the bound of 10,000,000,000 won"):
        h.client.payment("SIG")


# --- bounds on what one answer may cost --------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Drip(httpx.SyncByteStream):
    """A body sent one byte at a time, each byte one (fake) second after the last."""

    def __init__(self, body: bytes, clock: FakeClock, step: float = 1.0):
        self.body, self.clock, self.step = body, clock, step
        self.sent = 0

    def __iter__(self):
        for i in range(len(self.body)):
            self.clock.now += self.step
            self.sent += 1
            yield self.body[i : i + 1]


BALANCE = orjson.dumps({"statusCode": 200, "message": "success", "result": {"balance": 150000}})


def test_a_dripping_body_fails_at_the_deadline_and_is_retried(harness):
    clock = FakeClock()
    drips: list[Drip] = []

    def dripping(request):
        drips.append(Drip(BALANCE, clock))
        return httpx.Response(200, stream=drips[-1])

    h = harness(dripping, limits=Limits(request_deadline_seconds=5.0), clock=clock,
                retry=RetryPolicy(max_attempts=2, jitter=0, sleep=lambda s: None))
    with pytest.raises(RequestDeadlineError) as info:
        h.client.settlement_balance()
    assert str(info.value) == (
        "point3 GET /api/settlement: the answer was not whole within the 5.0s request deadline "
        "(setting request_deadline_seconds); 6 bytes had arrived (gave up after 2 attempts)")
    assert isinstance(info.value, Point3TimeoutError)
    assert [d.sent for d in drips] == [6, 6]  # it stopped; the body is longer
    assert len(BALANCE) > 6
    assert h.events[0].reason == "deadline"


def test_a_body_within_the_deadline_is_read(harness):
    clock = FakeClock()
    h = harness(lambda request: httpx.Response(200, stream=Drip(BALANCE, clock, step=0.001)),
                limits=Limits(request_deadline_seconds=5.0), clock=clock)
    assert h.client.settlement_balance() == 150000


def test_the_deadline_starts_afresh_for_each_attempt(harness):
    clock = FakeClock()
    responses = iter([httpx.Response(503), httpx.Response(200, stream=Drip(BALANCE, clock, step=0.01))])

    def handler(request):
        clock.now += 4.0  # the first attempt and its backoff use up most of one deadline
        return next(responses)

    h = harness(handler, limits=Limits(request_deadline_seconds=5.0), clock=clock)
    assert h.client.settlement_balance() == 150000


class Counted(httpx.SyncByteStream):
    def __init__(self, chunks):
        self.chunks, self.sent = chunks, 0

    def __iter__(self):
        for chunk in self.chunks:
            self.sent += 1
            yield chunk


def test_a_declared_body_over_the_bound_is_not_read_nor_retried(harness):
    stream = Counted([BALANCE])
    h = harness(httpx.Response(200, headers={"Content-Length": "5000"}, stream=stream),
                limits=Limits(max_body_bytes=4096))
    with pytest.raises(ResponseTooLargeError) as info:
        h.client.settlement_balance()
    assert str(info.value) == ("point3 GET /api/settlement answered with a 5000-byte body, over the 4,096-byte "
                               "bound (setting max_body_bytes); not read")
    assert stream.sent == 0 and len(h.requests) == 1 and h.client.stats.retries == 0


def test_a_streamed_body_over_the_bound_stops_being_read(harness):
    stream = Counted([b" " * 1000] * 100 + [BALANCE])  # valid JSON once whole: only the bound refuses it
    h = harness(httpx.Response(200, stream=stream), limits=Limits(max_body_bytes=4096))
    with pytest.raises(ResponseTooLargeError, match="over the 4,096-byte bound \\(setting max_body_bytes\\); stopped reading"):
        h.client.settlement_balance()
    assert stream.sent == 5 and len(h.requests) == 1


def test_a_compressed_body_is_bounded_by_what_it_inflates_to(harness):
    body = gzip.compress(BALANCE[:-1] + b" " * 100_000 + b"}")
    assert len(body) < 4096
    h = harness(httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=body),
                limits=Limits(max_body_bytes=4096))
    with pytest.raises(ResponseTooLargeError, match="stopped reading"):
        h.client.settlement_balance()


def test_a_body_at_the_bound_is_read(harness):
    h = harness(httpx.Response(200, content=BALANCE), limits=Limits(max_body_bytes=len(BALANCE)))
    assert h.client.settlement_balance() == 150000


def test_only_small_bodies_are_repaired(harness):
    h = harness(raw_body(DOC_ORDERS), limits=Limits(max_repair_bytes=len(DOC_ORDERS.encode()) - 1),
                retry=RetryPolicy(max_attempts=1))
    with pytest.raises(MalformedResponseError) as info:
        h.client.payments_by_order_id("orderIdRandom")
    assert str(info.value).endswith(f"a body over {len(DOC_ORDERS.encode()) - 1:,} bytes is not repaired "
                                    "(setting max_repair_bytes)")
    assert h.client.stats.repaired_bodies == 0
    h = harness(raw_body(DOC_ORDERS), limits=Limits(max_repair_bytes=len(DOC_ORDERS.encode())))
    assert len(h.client.payments_by_order_id("orderIdRandom")) == 2


def test_the_repair_looks_at_an_unclosed_string_once(monkeypatch):
    # '"\\"\\"\\"...' never closes: every later quote used to be tried again, the square of the
    # line (100 KB took 47 s); now the first failure ends the repair.
    attempts = []

    class CountingString:
        def match(self, text, pos):
            attempts.append(pos)
            return STRING.match(text, pos)

    STRING = client_module._STRING
    monkeypatch.setattr(client_module, "_STRING", CountingString())
    text = '{"a": "' + '\\"' * 2000
    assert client_module._repair_json(text) == text
    assert len(attempts) <= 2


def test_a_huge_error_body_is_quoted_from_its_start_only(harness):
    body = ("word " * 1_000_000).encode()  # 5 MB of words: the message once split every one of them
    h = harness(raw_body(body, status=400), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(BadRequestError) as info:
        h.client.settlement_balance()
    assert info.value.server_message == ("word " * 40)[:200]
    # Measured on the message alone: orjson's failed parse of such a body costs its own 12x.
    tracemalloc.start()
    try:
        error = h.client._status_error("point3 GET /x", httpx.Response(400), body, None, 400, "answered 400")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.server_message == info.value.server_message
    assert peak < 3 * len(body)  # a million words split took over 60 MB


@pytest.mark.parametrize(("body", "text"), [
    (b'{"statusCode": 200, "message": "success", "result": {"balance": "\\ud800"}}', "result.balance is not an integer: {'balance': '\\ud800'}"),
    (b'{"statusCode": 200, "message": "success", "result": {"balance": NaN}}', "result.balance is not an integer: {'balance': Decimal('NaN')}"),
])
def test_a_wrong_value_orjson_cannot_write_is_still_a_clear_error(harness, body, text):
    h = harness(raw_body(body))
    with pytest.raises(MalformedResponseError) as info:
        h.client.settlement_balance()
    assert text in str(info.value)


# --- the key never leaks ------------------------------------------------------------------


def test_the_key_appears_in_no_message_repr_or_log(harness, caplog):
    echo = f"invalid key {KEY}"  # a server echoing the header back must not leak it either
    failures = [
        envelope(None, status=401, code=401, message=echo),
        raw_body(f"<html>{echo}</html>", status=500),
        envelope(None, code=403, message=echo),
        httpx.ConnectError(f"cannot connect with {KEY}"),
        httpx.ReadTimeout("slow"),
        raw_body("{truncated"),
        envelope({"balance": KEY}),
    ]
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for failure in failures:
            h = harness(failure)
            with pytest.raises(Point3Error) as info:
                h.client.settlement_balance()
            chain = [info.value, info.value.__cause__, info.value.__context__]
            seen += [str(e) for e in chain if e is not None] + [repr(info.value)]
            seen += [repr(h.client), repr(h.client.stats), repr(h.events), repr(h.client.retry)]
            seen.append(str(getattr(info.value, "server_message", "")))
        h = harness(envelope({"token": NEW_KEY}), envelope(None, status=401, code=401, message=f"old {KEY} new {NEW_KEY}"))
        new_key = h.client.refresh_merchant_key()
        with pytest.raises(AuthenticationError) as info:
            h.client.settlement_balance()
        seen += [str(info.value), repr(info.value), repr(h.client), repr(new_key), str(new_key)]
    seen += [record.getMessage() for record in caplog.records] + [caplog.text]
    text = "\n".join(seen)
    assert "invalid key ********" in text
    assert KEY not in text and NEW_KEY not in text


# --- the retry policy ---------------------------------------------------------------------


def test_backoff_is_exponential_capped_and_jittered():
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0, jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    jittered = RetryPolicy(base_delay=1.0, max_delay=100.0, jitter=0.5)
    samples = [jittered.delay(3) for _ in range(200)]
    assert all(2.0 <= d <= 6.0 for d in samples) and len(set(samples)) > 1
    assert RetryPolicy(max_delay=3.0).delay(1, retry_after=9.0) == 3.0


@pytest.mark.parametrize("kwargs", [
    {"max_attempts": 0}, {"max_attempts": 2.5}, {"base_delay": -1}, {"max_delay": -1}, {"jitter": 1.5}, {"jitter": -0.1},
])
def test_retry_policy_validation(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_retry_policy_is_frozen_with_the_documented_defaults():
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_delay, policy.max_delay, policy.jitter) == (5, 0.5, 30.0, 0.5)
    with pytest.raises(AttributeError):
        policy.max_attempts = 9  # type: ignore[misc]


@pytest.mark.parametrize(("error", "reason"), [
    (BadRequestError("x", status_code=400), None),
    (AuthenticationError("x", status_code=401), None),
    (NotFoundError("x", status_code=404), None),
    (Point3StatusError("x", status_code=409), None),
    (RateLimitError("x"), "HTTP 429"),
    (ServerError("x", status_code=504), "HTTP 504"),
    (Point3TimeoutError("x"), "timeout"),
    (Point3ConnectionError("x"), "connection error"),
    (MalformedResponseError("x"), "malformed body"),
    (RequestDeadlineError("x"), "deadline"),
    (ResponseTooLargeError("x"), None),
])
def test_retry_reason(error, reason):
    assert retry_reason(error) == reason


# --- key file and rotation ----------------------------------------------------------------


def test_write_key_file_is_private_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "point3.key"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    keys.write_key_file(path, NEW_KEY)
    assert path.read_text() == NEW_KEY + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["point3.key"]
    assert SecretKey(NEW_KEY) == __import__("point3_pipeline.config", fromlist=["x"]).secret_key(
        {"POINT3_SECRET_KEY_FILE": str(path)})


def test_write_key_file_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "point3.key"
    path.write_text("old\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keys.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        keys.write_key_file(path, NEW_KEY)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["point3.key"]


@pytest.mark.parametrize("bad", ["", " padded", "two\nlines"])
def test_write_key_file_refuses_unusable_keys(tmp_path, bad):
    with pytest.raises(ValueError) as info:
        keys.write_key_file(tmp_path / "k", bad)
    assert os.listdir(tmp_path) == []
    assert bad.strip() == "" or bad.strip() not in str(info.value)


def test_rotate_key_saves_the_new_key_before_returning(harness, tmp_path):
    path = tmp_path / "point3.key"
    path.write_text(KEY + "\n")
    h = harness(envelope({"token": NEW_KEY}))
    assert keys.rotate_key(h.client, path) == SecretKey(NEW_KEY)
    assert path.read_text() == NEW_KEY + "\n"
    assert h.requests[0].url.path == "/api/token/refresh"


def test_rotate_key_into_a_missing_folder_is_refused_before_the_refresh(harness, tmp_path):
    path = tmp_path / "missing-dir" / "point3.key"
    h = harness(envelope({"token": NEW_KEY}))
    with pytest.raises(ConfigError) as info:
        keys.rotate_key(h.client, path)
    message = str(info.value)
    assert str(path.parent) in message and "no key was rotated" in message and KEY not in message
    assert h.requests == []  # the old key is still alive


def test_rotate_key_propagates_a_failed_refresh(harness, tmp_path):
    path = tmp_path / "point3.key"
    path.write_text(KEY + "\n")
    h = harness(envelope(None, status=500, code=500))
    with pytest.raises(ServerError):
        keys.rotate_key(h.client, path)
    assert path.read_text() == KEY + "\n"


def test_retries_are_counted_for_the_client_and_for_each_thread():
    stats = ClientStats()
    counted = threading.Barrier(2)

    def retry_on_this_thread(times: int, seen: list[int]) -> None:
        for _ in range(times):
            stats.count_retry("server_error")
        counted.wait(BOUND)  # both threads have counted before either reads its own count
        seen.append(stats.thread_retries)

    seen_first, seen_second = [], []
    threads = [threading.Thread(target=retry_on_this_thread, args=(3, seen_first)),
               threading.Thread(target=retry_on_this_thread, args=(5, seen_second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)
    assert (seen_first, seen_second) == ([3], [5])
    assert (stats.retries, stats.retries_by_reason["server_error"], stats.thread_retries) == (8, 8, 0)

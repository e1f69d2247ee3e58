"""The point3 sandbox over real HTTP on loopback: documented behaviour, faults, determinism."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from urllib.parse import quote

import httpx
import orjson
import pytest

from point3_pipeline.models import CULTURE_EXPENSE_TYPES, KST, format_api_datetime, parse_order
from point3_pipeline.sandbox import DEFAULT_KEY, Faults, SandboxConfig, SandboxServer, SandboxState
from point3_pipeline.sandbox.hostile import dripped
from point3_pipeline.sandbox.openapi import openapi_document
from point3_pipeline.sandbox.process import spawn
from point3_pipeline.sandbox.server import add_arguments, config_from_args
from point3_pipeline.sandbox.stall import DATE_PATH, StallMatch

NOW = dt.datetime(2026, 3, 18, 12, 1, 0, tzinfo=KST)  # a Wednesday, 12:01 KST
DAY = dt.datetime(2026, 3, 17, tzinfo=KST)  # a full day of history before NOW


def config(**changes) -> SandboxConfig:
    # speed 0: the clock stands still unless a test moves it, so boundaries are exact.
    return SandboxConfig(**{"seed": 7, "days": 10, "per_day": 40, "future_days": 2, "start_at": NOW, "speed": 0.0,
                            **changes})


@pytest.fixture
def sb():
    with SandboxServer(config()) as server:
        yield server


def api(server: SandboxServer, timeout: float = 10) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Basic {server.key}"}, timeout=timeout)


def request_body(**changes):
    body = {
        "clientGeneratedUserId": "USER-0001",
        "totalCharge": 12000,
        "orderIdFromClient": "order-42",
        "cultureExpenseType": "b",
        "cashReceiptType": "a",
        "clientBusinessNum": "1428801897",
        "clientNickname": "바이올렛 캔디 앤 젤리",
        "purchasingProductName": "바이올렛 솜사탕맛 젤리",
        "taxFreeAmount": 10909,
        "vat": 1091,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def date_page(client: httpx.Client, start, end=None, page=1, count=30) -> list[dict]:
    params = {"startDate": format_api_datetime(start), "endDate": "" if end is None else format_api_datetime(end),
              "page": page, "count": count}
    response = client.get("/api/payments/date", params=params)
    assert response.status_code == 200, response.text
    return response.json()["result"]["orders"]


def all_pages(client: httpx.Client, start, end=None, count=30) -> list[dict]:
    orders, page = [], 1
    while True:
        batch = date_page(client, start, end, page, count)
        orders += batch
        if len(batch) < count:
            return orders
        page += 1


def accepted_in(state: SandboxState, start: dt.datetime, end: dt.datetime, inclusive: bool = True) -> list[dict]:
    now = state.clock.timestamp()
    lo, hi = start.timestamp(), end.timestamp()
    return [e.to_dict(now) for e in state.store.visible(now)
            if lo <= e.epoch and (e.epoch <= hi if inclusive else e.epoch < hi)]


HELD_TIMEOUT = 120  # a request the stall gate holds waits for the test's release, not for a clock


class InThread:
    """A request sent from another thread; its result is there once the server answered."""

    def __init__(self, send):
        self.result: object = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send) -> None:
        try:
            self.result = send()
        except Exception as exc:  # handed to the test, which asserts on it
            self.result = exc

    def join(self) -> object:
        self._thread.join(timeout=HELD_TIMEOUT + 10)
        assert not self._thread.is_alive(), "the request did not finish after release"
        return self.result


def date_params(start, page=1, count=30) -> dict:
    return {"startDate": format_api_datetime(start), "endDate": format_api_datetime(start + dt.timedelta(days=1)),
            "page": page, "count": count}


def pay(client: httpx.Client, **changes) -> str:
    """token -> widget approve: the signature, issued at the clock's now."""
    token = client.post("/purchase/token", json=request_body(**changes)).json()["result"]["token"]
    return client.post("/widget/approve", json={"token": token}).json()["result"]["signature"]


# --- /purchase/token validation -----------------------------------------------------------

REQUIRED = ("clientGeneratedUserId", "totalCharge", "orderIdFromClient", "cultureExpenseType", "cashReceiptType",
            "clientBusinessNum", "clientNickname", "purchasingProductName", "taxFreeAmount", "vat")


@pytest.mark.parametrize(("changes", "rule"), [
    *[({name: ...}, f"missing required field {name}") for name in REQUIRED],
    ({"totalCharge": 12000.0}, "totalCharge must be an integer"),
    ({"vat": True, "taxFreeAmount": 11999}, "vat must be an integer"),
    ({"taxFreeAmount": "10909"}, "taxFreeAmount must be an integer"),
    ({"vat": 0, "taxFreeAmount": 12000}, "vat must be greater than 0"),
    ({"taxFreeAmount": 0, "vat": 12000}, "taxFreeAmount must be greater than 0"),
    ({"totalCharge": -12000, "taxFreeAmount": -10909, "vat": -1091}, "totalCharge must be greater than 0"),
    ({"vat": 1000}, "vat + taxFreeAmount must equal totalCharge"),
    ({"cultureExpenseType": "e"}, "cultureExpenseType must be one of a, b, c, d, f, g"),
    ({"cultureExpenseType": 1}, "cultureExpenseType must be a string"),
    ({"cashReceiptType": "b"}, "cashReceiptType must be 'a'"),
    ({"clientBusinessNum": "142880189"}, "clientBusinessNum must be exactly 10 digits"),
    ({"clientBusinessNum": "142-88-0189"}, "clientBusinessNum must be exactly 10 digits"),
    ({"clientBusinessNum": 1428801897}, "clientBusinessNum must be a string"),
    ({"clientNickname": 7}, "clientNickname must be a string"),
    ({"clientGeneratedUserId": " "}, "clientGeneratedUserId must not be empty"),
])
def test_token_rejects_each_broken_rule_naming_it(sb, changes, rule):
    response = api(sb).post("/purchase/token", json=request_body(**changes))
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400 and body["result"] is None
    assert rule in body["message"]


@pytest.mark.parametrize(("content", "message"), [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object")])
def test_token_rejects_a_body_that_is_not_an_object(sb, content, message):
    response = api(sb).post("/purchase/token", content=content)
    assert response.status_code == 400 and message in response.json()["message"]


def test_token_is_random_and_needs_url_encoding(sb):
    client = api(sb)
    tokens = {client.post("/purchase/token", json=request_body()).json()["result"]["token"] for _ in range(5)}
    assert len(tokens) == 5
    assert all("=" in token for token in tokens)  # standard base64 padding, at least


# --- authorization ------------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/purchase/token"), ("POST", "/purchase/confirm"), ("POST", "/api/token/refresh"),
    ("GET", "/api/settlement"), ("GET", "/api/payments/abc"), ("GET", "/api/payments/orderid/o"),
    ("GET", "/api/payments/userId/u"), ("GET", "/api/payments/date?startDate=2026-03-01T00:00:00"),
    ("POST", "/api/payments/abc/cancel"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(("header", "message"), [
    (None, "missing Authorization header"),
    (f"Basic {DEFAULT_KEY}x", "not valid"),
    (f"Bearer {DEFAULT_KEY}", "must be 'Basic"),
])
def test_every_endpoint_needs_the_merchant_key(sb, method, path, header, message):
    headers = {} if header is None else {"Authorization": header}
    response = httpx.request(method, sb.url + path, headers=headers, json={})
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": response.json()["message"], "result": None}
    assert message in response.json()["message"]


def test_key_rotation_retires_the_old_key(sb):
    old = sb.key
    response = api(sb).post("/api/token/refresh")
    new = response.json()["result"]["token"]
    assert response.status_code == 200 and new != old and sb.key == new
    assert httpx.get(sb.url + "/api/settlement", headers={"Authorization": f"Basic {old}"}).status_code == 401
    assert api(sb).get("/api/settlement").status_code == 200
    assert sb.state.rotate_key() != new


# --- payment flow -------------------------------------------------------------------------

def test_full_flow_token_widget_approve_confirm(sb):
    client = api(sb)
    token = client.post("/purchase/token", json=request_body()).json()["result"]["token"]
    page = httpx.get(f"{sb.url}/?d={quote(token, safe='')}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for text in ("바이올렛 캔디 앤 젤리", "바이올렛 솜사탕맛 젤리", "12,000원", "결제하기", "닫기",
                 'window.parent.postMessage(message, "*")', "window.Point3WidgetBridge.postMessage(raw)",
                 "window.webkit.messageHandlers.point3WidgetHandler.postMessage(message)",
                 "window.ReactNativeWebView.postMessage(raw)", 'status: "success"', 'status: "error"'):
        assert text in html, text

    approved = httpx.post(sb.url + "/widget/approve", json={"token": token})
    signature = approved.json()["result"]["signature"]
    assert re.fullmatch(r"[A-Za-z0-9]{32}", signature)
    assert httpx.get(f"{sb.url}/?d={quote(token, safe='')}").status_code == 410  # used
    assert httpx.post(sb.url + "/widget/approve", json={"token": token}).status_code == 410

    sb.state.clock.advance(29)
    confirmed = client.post("/purchase/confirm", json={"signature": signature})
    assert confirmed.status_code == 200
    record = confirmed.json()["result"]
    assert set(record) == {"signature", "userId", "clientNickname", "purchasingProductName", "totalCharge",
                           "taxFreeAmount", "vat", "orderIdFromClient", "clientIdentification",
                           "clientGeneratedUserId", "paymentMethodType", "cultureExpenseType",
                           "timeStampOnRequest", "timeStampOnAccept"}
    assert (record["signature"], record["totalCharge"], record["vat"], record["cultureExpenseType"]) == \
           (signature, 12000, 1091, "b")
    assert record["timeStampOnAccept"] == "20260318120100"

    again = client.post("/purchase/confirm", json={"signature": signature})
    assert again.status_code == 400 and "already confirmed" in again.json()["message"]
    looked_up = client.get(f"/api/payments/{signature}").json()["result"]
    assert looked_up == {**record, "isCanceled": False}
    assert parse_order(looked_up).total_charge == 12000
    assert client.get("/api/payments/userId/USER-0001").json()["result"]["signature"] == signature
    assert [o["signature"] for o in client.get("/api/payments/orderid/order-42").json()["result"]["orders"]] == \
           [signature]


def test_widget_rejects_unknown_or_unencoded_tokens(sb):
    token = api(sb).post("/purchase/token", json=request_body()).json()["result"]["token"]
    assert httpx.get(f"{sb.url}/?d=" + token.replace("=", "%3D") + "x").status_code == 404
    unknown = httpx.get(f"{sb.url}/?d=nope")
    assert unknown.status_code == 404 and "결제 정보를 찾을 수 없습니다" in unknown.text
    assert httpx.get(sb.url + "/").status_code == 400
    assert httpx.post(sb.url + "/widget/approve", json={"token": "nope"}).status_code == 404
    assert httpx.post(sb.url + "/widget/approve", json={}).status_code == 400


def test_confirm_after_30_seconds_is_refused_and_cancels(sb):
    client = api(sb)
    signature = pay(client)
    sb.state.clock.advance(31)
    response = client.post("/purchase/confirm", json={"signature": signature})
    assert response.status_code == 400 and "expired" in response.json()["message"]
    assert client.get(f"/api/payments/{signature}").json()["result"]["isCanceled"] is True
    balance_slot = sb.state.settlement_balance(NOW + dt.timedelta(hours=1))
    assert balance_slot == sb.state.settlement_balance(NOW + dt.timedelta(hours=1, minutes=30)), "never settled"


def test_unconfirmed_payment_cancels_itself_after_30_seconds(sb):
    client = api(sb)
    signature = pay(client)
    assert client.get(f"/api/payments/{signature}").json()["result"]["isCanceled"] is False
    sb.state.clock.advance(30.5)
    assert client.get(f"/api/payments/{signature}").json()["result"]["isCanceled"] is True


def test_confirm_errors(sb):
    client = api(sb)
    # point3 documents only 400, 401 and 500 for confirm: an unknown signature is a bad request.
    for unknown in ("x" * 32, next(e.signature for e in sb.state.store.entries if e.epoch > NOW.timestamp())):
        response = client.post("/purchase/confirm", json={"signature": unknown})
        assert response.status_code == 400
        assert response.json() == {"statusCode": 400, "result": None,
                                   "message": f"no payment with signature {unknown!r}"}
    assert client.post("/purchase/confirm", json={}).status_code == 400
    historic = sb.state.orders()[0]["signature"]
    assert "already confirmed" in client.post("/purchase/confirm", json={"signature": historic}).json()["message"]


# --- lookups and cancellation -------------------------------------------------------------

def test_lookups(sb):
    client = api(sb)
    orders = sb.state.orders()
    repeated = Counter(o["orderIdFromClient"] for o in orders if o["orderIdFromClient"] != "orderIdRandom")
    order_id = next(oid for oid, n in repeated.items() if n > 1)
    found = client.get(f"/api/payments/orderid/{order_id}").json()["result"]["orders"]
    assert [o["signature"] for o in found] == [o["signature"] for o in orders if o["orderIdFromClient"] == order_id]
    assert client.get("/api/payments/orderid/none-such").json()["result"] == {"orders": []}

    users = Counter(o["clientGeneratedUserId"] for o in orders)
    user, _ = users.most_common(1)[0]
    latest = [o for o in orders if o["clientGeneratedUserId"] == user][-1]
    assert client.get(f"/api/payments/userId/{user}").json()["result"] == latest

    missing = client.get("/api/payments/" + "Z" * 32)
    assert missing.status_code == 404 and missing.json()["result"] is None
    assert client.get("/api/payments/userId/nobody").status_code == 404
    future = [e for e in sb.state.store.entries if e.epoch > NOW.timestamp()][0]
    assert client.get(f"/api/payments/{future.signature}").status_code == 404, "not accepted yet"
    assert client.get("/api/nothing").json()["statusCode"] == 404


def test_cancel_is_processed_at_the_next_5_minute_batch(sb):
    client = api(sb)
    signature = sb.state.add_payment()["signature"]
    response = client.post(f"/api/payments/{signature}/cancel")
    assert response.status_code == 200 and response.json() == {"statusCode": 200, "message": "success", "result": {}}

    def canceled() -> bool:
        return client.get(f"/api/payments/{signature}").json()["result"]["isCanceled"]

    assert not canceled()
    sb.state.clock.set_now(NOW.replace(minute=4, second=59))
    assert not canceled()
    assert client.post(f"/api/payments/{signature}/cancel").status_code == 200  # a retry changes nothing
    sb.state.clock.set_now(NOW.replace(minute=5, second=0))
    assert canceled()
    assert client.post("/api/payments/" + "Z" * 32 + "/cancel").status_code == 404


def test_cancel_exactly_on_a_boundary_waits_for_the_next_one(sb):
    sb.state.clock.set_now(NOW.replace(minute=10, second=0))
    signature = sb.state.add_payment()["signature"]
    sb.state.cancel(signature)
    assert sb.state.payment(signature)["isCanceled"] is False
    sb.state.clock.set_now(NOW.replace(minute=15, second=0))
    assert sb.state.payment(signature)["isCanceled"] is True


def test_settlement_moves_only_at_30_minute_slots(sb):
    client = api(sb)

    def balance() -> int:
        return client.get("/api/settlement").json()["result"]["balance"]

    # Historic payments keep arriving as the clock moves: compare with the history alone.
    history_1230 = sb.state.settlement_balance(NOW.replace(minute=30))
    history_1300 = sb.state.settlement_balance(NOW.replace(hour=13, minute=0))
    sb.state.clock.set_now(NOW.replace(minute=10))
    before = balance()
    signature = sb.state.add_payment(totalCharge=55000)["signature"]
    assert balance() == before
    sb.state.clock.set_now(NOW.replace(minute=29, second=59))
    assert balance() == before
    sb.state.clock.set_now(NOW.replace(minute=30))
    assert balance() == history_1230 + 55000
    sb.state.clock.set_now(NOW.replace(minute=31))
    sb.state.cancel(signature)  # processed 12:35, reported from 13:00
    sb.state.clock.set_now(NOW.replace(minute=59, second=59))
    assert balance() == history_1230 + 55000
    sb.state.clock.set_now(NOW.replace(hour=13, minute=0))
    assert balance() == history_1300
    assert isinstance(balance(), int)


def test_weekly_payout_lowers_the_balance():
    state = SandboxState(config(days=30))
    wednesday = dt.datetime(2026, 3, 11, tzinfo=KST)
    before = state.settlement_balance(wednesday - dt.timedelta(minutes=1))
    after = state.settlement_balance(wednesday)
    assert after < before
    assert state.settlement_balance(wednesday + dt.timedelta(minutes=29)) == after


# --- date endpoint ------------------------------------------------------------------------

def test_date_paging_matches_the_ground_truth(sb):
    client = api(sb)
    end = DAY + dt.timedelta(days=1)
    expected = accepted_in(sb.state, DAY, end)
    assert len(expected) > 20
    got = all_pages(client, DAY, end, count=7)
    assert got == expected
    last = date_page(client, DAY, end, page=len(expected) // 7 + 1, count=7)
    assert 0 <= len(last) < 7
    assert date_page(client, DAY, end, page=1000, count=7) == []
    default = client.get("/api/payments/date", params={"startDate": format_api_datetime(DAY),
                                                       "endDate": format_api_datetime(end)})
    assert len(default.json()["result"]["orders"]) == 30, "count defaults to 30, page to 1"


def test_date_descending_order(sb):
    client = api(sb)
    end = DAY + dt.timedelta(days=1)
    ascending = all_pages(client, DAY, end, count=9)
    sb.state.set_faults(sort_order="desc")
    assert all_pages(client, DAY, end, count=9) == ascending[::-1]


def test_empty_end_date_means_until_now_and_future_appears_with_time(sb):
    client = api(sb)
    start = NOW - dt.timedelta(hours=3)
    until_now = all_pages(client, start, None, count=50)
    assert until_now == accepted_in(sb.state, start, NOW)
    far_end = all_pages(client, start, NOW + dt.timedelta(days=1), count=50)
    assert far_end == until_now, "nothing after now exists yet"
    sb.state.clock.advance(6 * 3600)
    assert len(all_pages(client, start, None, count=50)) > len(until_now)


def test_end_date_inclusive_or_exclusive_at_midnight(sb):
    client = api(sb)
    midnight = DAY + dt.timedelta(days=1)
    sb.state.clock.set_now(midnight)
    signature = sb.state.add_payment()["signature"]
    sb.state.clock.set_now(NOW)
    before, after = (DAY, midnight), (midnight, midnight + dt.timedelta(days=1))

    def signatures(window):
        return {o["signature"] for o in all_pages(client, *window, count=100)}

    assert signature in signatures(before) and signature in signatures(after)
    sb.state.set_faults(end_inclusive=False)
    assert signature not in signatures(before) and signature in signatures(after)
    assert all_pages(client, *before, count=100) == accepted_in(sb.state, *before, inclusive=False)


@pytest.mark.parametrize(("params", "name"), [
    ({}, "startDate"),
    ({"startDate": "2026-03-17"}, "startDate"),
    ({"startDate": "2026-03-17 00:00:00"}, "startDate"),
    ({"startDate": "2026-03-17T00:00:00", "endDate": "tomorrow"}, "endDate"),
    ({"startDate": "2026-03-17T00:00:00", "endDate": "2026-03-16T00:00:00"}, "endDate"),
    ({"startDate": "2026-03-17T00:00:00", "page": "0"}, "page"),
    ({"startDate": "2026-03-17T00:00:00", "page": "one"}, "page"),
    ({"startDate": "2026-03-17T00:00:00", "count": "0"}, "count"),
    ({"startDate": "2026-03-17T00:00:00", "count": "-5"}, "count"),
    ({"startDate": "2026-03-17T00:00:00", "count": "1.5"}, "count"),
])
def test_date_parameters_are_checked(sb, params, name):
    response = api(sb).get("/api/payments/date", params=params)
    assert response.status_code == 400 and response.json()["message"].startswith(name)


def test_drift_inserts_payments_into_the_paged_window(sb):
    client = api(sb)
    end = DAY + dt.timedelta(days=1)
    before = accepted_in(sb.state, DAY, end)
    sb.state.set_faults(drift_per_page=3)
    pages = [date_page(client, DAY, end, page, 10) for page in (1, 2, 3)]
    after = accepted_in(sb.state, DAY, end)
    assert len(after) == len(before) + 9
    assert len(sb.state.orders()) == len(sb.state.orders(NOW)) and all(len(p) == 10 for p in pages)
    new = {o["signature"] for o in after} - {o["signature"] for o in before}
    assert all(DAY.timestamp() <= sb.state.store.by_signature[s].epoch <= end.timestamp() for s in new)


# --- faults -------------------------------------------------------------------------------

def test_error_rate_answers_a_share_with_500(sb):
    sb.state.set_faults(error_rate=0.5)
    client = api(sb)
    statuses = [client.get("/api/settlement") for _ in range(200)]
    errors = [r for r in statuses if r.status_code == 500]
    assert 60 < len(errors) < 140
    assert all(r.json()["statusCode"] == 500 and r.json()["result"] is None for r in errors)


def test_rate_limit_answers_429_with_retry_after(sb):
    sb.state.set_faults(rate_limit_rate=1.0, retry_after_seconds=7)
    response = api(sb).get("/api/settlement")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["statusCode"] == 429


def test_truncated_body_is_invalid_json(sb):
    sb.state.set_faults(truncate_rate=1.0)
    response = api(sb).get("/api/payments/date", params={"startDate": format_api_datetime(DAY)})
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content) > 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_max_page_size(sb):
    sb.state.set_faults(max_page_size=100)
    client = api(sb)
    params = {"startDate": format_api_datetime(DAY)}
    refused = client.get("/api/payments/date", params={**params, "count": 101})
    assert refused.status_code == 400 and "100" in refused.json()["message"]
    assert client.get("/api/payments/date", params={**params, "count": 100}).status_code == 200


def test_latency(sb):
    sb.state.set_faults(latency_ms=150)
    started = time.monotonic()
    assert api(sb).get("/api/settlement").status_code == 200
    # Only a lower bound, which a slower machine makes easier to meet: the server sleeps 150 ms
    # on this same monotonic clock inside the measured interval. asyncio may wake a timer up to
    # its clock resolution early; the 1 ms allowance covers that and nothing else.
    assert time.monotonic() - started >= 0.15 - 0.001


def test_faults_are_validated():
    with pytest.raises(ValueError, match="error_rate"):
        Faults(error_rate=1.5)
    with pytest.raises(ValueError, match="sort_order"):
        Faults().changed(sort_order="random")
    with pytest.raises(ValueError, match="unknown fault"):
        Faults().changed(bogus=1)
    assert Faults().changed(max_page_size=10).max_page_size == 10


def test_faults_from_the_config_are_active_at_start():
    with SandboxServer(config(faults=Faults(error_rate=1.0))) as server:
        assert api(server).get("/api/settlement").status_code == 500


# --- ground truth, determinism, hostile data ----------------------------------------------

def test_same_seed_same_orders_and_a_realistic_history():
    first, second = SandboxState(config(days=30)), SandboxState(config(days=30))
    orders = first.orders()
    assert orders == second.orders()
    assert orders != SandboxState(config(days=30, seed=8)).orders()
    assert {o.get("cultureExpenseType") for o in orders} == set(CULTURE_EXPENSE_TYPES) | {None}
    docs_shaped = [o for o in orders if "timeStampOnAccept" not in o]
    assert docs_shaped and all(o["vat"] == o["taxFreeAmount"] == 0 for o in docs_shaped)
    assert 0.002 < len(docs_shaped) / len(orders) < 0.03
    normal = [o for o in orders if "timeStampOnAccept" in o]
    # vat is 0 only in fully VAT-exempt sales (a tax shape of the history, see sandbox/data.py).
    assert all(o["vat"] + o["taxFreeAmount"] == o["totalCharge"] and (o["vat"] > 0 or o["taxFreeAmount"] == o["totalCharge"])
               for o in normal)
    assert all(type(o[k]) is int for o in orders for k in ("totalCharge", "taxFreeAmount", "vat"))
    assert any(o["timeStampOnAccept"].endswith("000000") for o in normal)
    assert max(Counter(o["clientGeneratedUserId"] for o in orders).values()) > 3
    assert max(Counter(o["orderIdFromClient"] for o in orders).values()) > 1
    assert 0.01 < sum(o["isCanceled"] for o in orders) / len(orders) < 0.1
    assert 30 * 40 * 0.8 < len(orders) < 30 * 40 * 1.2
    for order in orders:
        parse_order(order)


def test_cancellations_and_payments_arrive_as_the_clock_advances():
    state = SandboxState(config(days=30))
    now_orders = state.orders()
    later = state.orders(NOW + dt.timedelta(days=2))
    assert len(later) > len(now_orders)
    canceled_now = {o["signature"] for o in now_orders if o["isCanceled"]}
    canceled_later = {o["signature"] for o in later if o["isCanceled"]}
    assert canceled_now < canceled_later
    assert any(o["signature"] in canceled_later for o in now_orders if not o["isCanceled"]), \
        "some existing payments are cancelled later"


def test_hostile_records_are_served_without_crashing(sb):
    at = DAY + dt.timedelta(hours=5)
    hostile = [
        {}, {"signature": 123, "isCanceled": "yes"}, "just a string", None, [1, 2, 3],
        {"signature": "H" * 32, "purchasingProductName": "가" * 200_000, "totalCharge": 1.5},
        {"signature": "big", "totalCharge": 2 ** 70, "cultureExpenseType": "e", "extra": {"nested": [None]}},
        {"signature": "obj", "when": dt.datetime(2026, 1, 1), "odd": {1, 2}, "surrogate": "\udc80"},
    ]
    sb.state.inject_records(hostile, at)
    client = api(sb)
    window = all_pages(client, at, at, count=3)
    served = {json.dumps(r, sort_keys=True, default=str) for r in window}
    assert len(window) >= len(hostile)
    assert json.dumps({}, sort_keys=True) in served and json.dumps(None) in served
    big = next(r for r in window if isinstance(r, dict) and r.get("signature") == "big")
    assert big["totalCharge"] == 2 ** 70
    assert len(next(r for r in window if isinstance(r, dict) and r.get("signature") == "H" * 32)
               ["purchasingProductName"]) == 200_000
    truth = [o for o in sb.state.orders() if not (isinstance(o, dict) and "isCanceled" in o
                                                    and isinstance(o.get("userId"), str))]
    assert len(truth) == len(hostile)
    assert client.get("/api/settlement").status_code == 200

    over_http = httpx.post(sb.url + "/_sandbox/records", json={"records": [{"signature": None}, 5],
                                                               "at": format_api_datetime(at)})
    assert over_http.status_code == 200
    assert len(all_pages(client, at, at, count=50)) == len(window) + 2


# --- admin, openapi, CLI ------------------------------------------------------------------

def test_admin_endpoints(sb):
    admin = httpx.Client(base_url=sb.url + "/_sandbox")
    assert admin.get("/faults").json()["result"] == Faults().to_json()
    assert admin.post("/faults", json={"error_rate": 0.25, "sort_order": "desc"}).json()["result"]["error_rate"] == 0.25
    assert sb.state.faults.sort_order == "desc"
    assert admin.post("/faults", json={"error_rate": 3}).status_code == 400
    assert admin.post("/faults", json={"nope": 1}).status_code == 400
    sb.state.set_faults(error_rate=0.0)

    assert admin.get("/clock").json()["result"] == {"now": "2026-03-18T12:01:00", "speed": 0.0}
    assert admin.post("/clock", json={"advance_seconds": 59}).json()["result"]["now"] == "2026-03-18T12:01:59"
    assert admin.post("/clock", json={"now": "2026-03-18T13:00:00"}).json()["result"]["now"] == "2026-03-18T13:00:00"
    assert admin.post("/clock", json={"speed": 60}).json()["result"]["speed"] == 60
    assert admin.post("/clock", json={"now": "tomorrow"}).status_code == 400
    assert admin.post("/clock", json={"when": 1}).status_code == 400
    sb.state.clock.speed = 0

    added = admin.post("/payments", json={"totalCharge": 33000, "cultureExpenseType": "f"}).json()["result"]
    assert (added["totalCharge"], added["vat"], added["taxFreeAmount"]) == (33000, 3000, 30000)
    assert admin.post("/payments", json={"vat": 1}).status_code == 400
    assert admin.post("/payments", json={"isCanceled": True}).status_code == 400
    orders = admin.get("/orders").json()["result"]["orders"]
    assert orders == sb.state.orders() and orders[-1]["signature"] == added["signature"]


def test_openapi_lists_every_documented_path(sb):
    response = httpx.get(sb.url + "/openapi.json")
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) >= {
        "/purchase/token", "/purchase/confirm", "/api/token/refresh", "/api/settlement", "/api/payments/{signature}",
        "/api/payments/orderid/{orderId}", "/api/payments/userId/{userId}", "/api/payments/date",
        "/api/payments/{signature}/cancel",
    }
    assert not any(path.startswith("/_sandbox") for path in document["paths"])
    assert set(document["paths"]["/purchase/confirm"]["post"]["responses"]) == {"200", "400", "401", "429", "500"}
    assert document == openapi_document()

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):  # every reference resolves
        target = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]


@pytest.mark.slow
def test_cli_serves_until_sigterm(tmp_path):
    process, info = spawn(["--days", "3", "--per-day", "20", "--key", "sk_sandbox_cli", "--max-page-size", "50"],
                          tmp_path / "ready.json", timeout=20, stdout=subprocess.PIPE, text=True)
    try:
        assert info["key"] == "sk_sandbox_cli" and info["pid"] == process.pid
        headers = {"Authorization": "Basic sk_sandbox_cli"}
        assert httpx.get(info["url"] + "/api/settlement", headers=headers).status_code == 200
        too_big = httpx.get(info["url"] + "/api/payments/date?startDate=2026-01-01T00:00:00&count=51", headers=headers)
        assert too_big.status_code == 400
        # A request held by the stall gate does not keep SIGTERM from stopping the sandbox.
        assert httpx.post(info["url"] + "/_sandbox/stall", json={"path": "/api/settlement"}).status_code == 200
        held = InThread(lambda: httpx.get(info["url"] + "/api/settlement", headers=headers, timeout=HELD_TIMEOUT))
        assert httpx.get(info["url"] + "/_sandbox/stall?wait_seconds=30", timeout=40).json()["result"]["held"] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert held.join().status_code == 200
        assert info["url"] in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_rejects_bad_settings(tmp_path):
    result = subprocess.run([sys.executable, "-m", "point3_pipeline.sandbox", "--error-rate", "2"],
                            capture_output=True, text=True, timeout=30, env={**os.environ})
    assert result.returncode == 2 and "error_rate" in result.stderr


def test_orjson_and_http_agree_on_records(sb):
    """The cached JSON of a record is what to_dict says, before and after it is cancelled."""
    payment = sb.state.store.by_signature[sb.state.add_payment()["signature"]]
    now = sb.state.clock.timestamp()
    assert orjson.loads(payment.to_json(now)) == payment.to_dict(now)
    sb.state.cancel(payment.signature)
    later = now + 300
    assert orjson.loads(payment.to_json(later)) == payment.to_dict(later) and payment.is_canceled(later)


# --- the stall gate -----------------------------------------------------------------------

@pytest.mark.parametrize(("match", "path", "query", "held"), [
    ({}, DATE_PATH, {"startDate": "2026-03-17T00:00:00"}, True),
    ({}, DATE_PATH, {}, True),
    ({}, "/api/settlement", {}, False),
    ({"path": "/api/settlement"}, "/api/settlement", {}, True),
    ({"path": "/api/settlement"}, DATE_PATH, {}, False),
    ({"page": 2}, DATE_PATH, {"startDate": "2026-03-17T00:00:00"}, False),
    ({"page": 1}, DATE_PATH, {"startDate": "2026-03-17T00:00:00"}, True),
    ({"page": 2}, DATE_PATH, {"page": "2"}, True),
    ({"page": 2}, DATE_PATH, {"page": "02"}, True),
    ({"page": 1}, DATE_PATH, {"page": ""}, True),
    ({"page": 1}, DATE_PATH, {"page": "one"}, False),
    ({"start_date": dt.date(2026, 3, 17)}, DATE_PATH, {"startDate": "2026-03-17T13:00:00"}, True),
    ({"start_date": dt.date(2026, 3, 17)}, DATE_PATH, {"startDate": "2026-03-16T23:59:59"}, False),
    ({"start_date": DAY}, DATE_PATH, {"startDate": "2026-03-17T00:00:00"}, True),
    ({"start_date": DAY}, DATE_PATH, {"startDate": "2026-03-17T00:00:01"}, False),
    ({"start_date": "2026-03-17 00:00:00"}, DATE_PATH, {"startDate": "2026-03-17T00:00:00"}, True),
    ({"start_date": "2026-03-17T00:00:00"}, DATE_PATH, {"startDate": "nonsense"}, False),
    ({"start_date": "2026-03-17"}, DATE_PATH, {}, False),
])
def test_stall_match(match, path, query, held):
    assert StallMatch(**match).matches(path, query) is held


@pytest.mark.parametrize("match", [{"start_date": "17.03.2026"}, {"start_date": dt.datetime(2026, 3, 17)},
                                   {"page": 0}, {"page": "2"}, {"path": "api"}])
def test_stall_match_rejects_bad_settings(match):
    with pytest.raises(ValueError):
        StallMatch(**match)


def test_stall_holds_the_matching_request_until_released(sb):
    client = api(sb)
    sb.stall(start_date=DAY.date(), page=2)
    assert client.get("/api/payments/date", params=date_params(DAY, page=1)).status_code == 200, "not matched"
    held = InThread(lambda: api(sb, HELD_TIMEOUT).get("/api/payments/date", params=date_params(DAY, page=2)))
    assert sb.wait_stalled() == 1
    assert held.result is None, "answered while held"
    assert client.get("/api/settlement").status_code == 200, "other requests are served meanwhile"
    sb.state.inject_records([{"signature": "added while held"}], DAY + dt.timedelta(hours=1))
    assert sb.release() == 1
    response = held.join()
    assert response.status_code == 200
    assert response.json()["result"]["orders"] == accepted_in(sb.state, DAY, DAY + dt.timedelta(days=1))[30:60]
    assert client.get("/api/payments/date", params=date_params(DAY, page=2)).status_code == 200, "disarmed"
    assert sb.release() == 0


def test_stall_holds_every_matching_request_and_release_lets_all_go(sb):
    client = api(sb)
    sb.stall(path="/api/settlement")
    first = InThread(lambda: api(sb, HELD_TIMEOUT).get("/api/settlement"))
    assert sb.wait_stalled() >= 1
    second = InThread(lambda: api(sb, HELD_TIMEOUT).get("/api/settlement"))
    assert sb.wait_stalled(at_least=2) == 2
    assert sb.release() == 2
    assert first.join().status_code == second.join().status_code == 200
    assert client.get("/api/settlement").status_code == 200


def test_wait_stalled_is_bounded(sb):
    sb.stall()
    with pytest.raises(TimeoutError, match="0 request"):
        sb.wait_stalled(timeout=0)


def test_a_held_request_is_answered_503_when_its_bound_runs_out(sb):
    sb.state.stall_gate.hold_seconds = 0  # the bound runs out at once
    sb.stall()
    response = api(sb).get("/api/payments/date", params=date_params(DAY))
    assert response.status_code == 503
    assert response.json() == {"statusCode": 503, "result": None,
                               "message": "held by the sandbox's stall gate for 0 s; released automatically"}
    assert sb.state.stall_gate.held == 0


def test_stopping_the_sandbox_releases_held_requests():
    server = SandboxServer(config()).start()
    try:
        server.stall()
        held = InThread(lambda: api(server, HELD_TIMEOUT).get("/api/payments/date", params=date_params(DAY)))
        server.wait_stalled()
    finally:
        server.stop()
    assert held.join().status_code == 200


def test_stall_over_http(sb):
    admin = httpx.Client(base_url=sb.url + "/_sandbox", timeout=30)
    armed = admin.post("/stall", json={"startDate": "2026-03-17T00:00:00", "page": 1})
    assert armed.json()["result"] == {"held": 0, "armed": {"path": "/api/payments/date",
                                                          "startDate": "2026-03-17T00:00:00", "page": 1}}
    held = InThread(lambda: api(sb, HELD_TIMEOUT).get("/api/payments/date", params=date_params(DAY)))
    assert admin.get("/stall", params={"wait_seconds": 30}).json()["result"]["held"] == 1
    assert held.result is None
    assert admin.post("/stall/release").json()["result"] == {"released": 1}
    assert held.join().status_code == 200
    assert admin.get("/stall").json()["result"] == {"held": 0, "armed": None}
    assert admin.get("/stall", params={"wait_seconds": 0}).json()["result"]["held"] == 0
    for bad in ({"startDate": "yesterday"}, {"page": 0}, {"when": 1}):
        assert admin.post("/stall", json=bad).status_code == 400, bad
    assert admin.get("/stall", params={"wait_seconds": "soon"}).status_code == 400
    assert sb.state.stall_gate.armed is None


# --- raw records injected into date pages -------------------------------------------------

def test_injected_raw_bytes_are_served_verbatim_and_counted_in_the_page(sb):
    client = api(sb)
    end = DAY + dt.timedelta(days=1)
    stored = accepted_in(sb.state, DAY, end)
    truth = sb.state.orders()
    bad_utf8 = b'{"signature":"BAD\xff","totalCharge":1000}'
    sb.inject(DAY.date(), bad_utf8)
    response = client.get("/api/payments/date", params=date_params(DAY, count=30))
    assert response.status_code == 200
    assert response.content.startswith(b'{"statusCode":200,"message":"success","result":{"orders":[' + bad_utf8 + b",")
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")
    page = json.loads(response.content.decode("utf-8", "surrogateescape"))["result"]["orders"]
    assert len(page) == 30 and page[1:] == stored[:29]
    assert date_page(client, DAY, end, page=2, count=30) == stored[29:59], "the next page goes on where it left off"
    assert sb.state.orders() == truth, "not stored"


def test_injected_copies_page_like_records(sb):
    client = api(sb)
    end = DAY + dt.timedelta(days=1)
    cheap = b'{"signature":"SAMESIG","totalCharge":1000}'
    dear = b'{"signature":"SAMESIG","totalCharge":9999999}'
    near_2_63 = b'{"signature":"HUGE","totalCharge":9223372036854775806}'
    sb.inject(DAY.date(), cheap, copies=3)
    sb.inject(DAY.date(), dear)
    sb.inject(DAY.date(), near_2_63)
    injected = [json.loads(r) for r in [cheap] * 3 + [dear, near_2_63]]
    assert all_pages(client, DAY, end, count=2) == injected + accepted_in(sb.state, DAY, end)
    sb.state.set_faults(sort_order="desc")
    assert all_pages(client, DAY, end, count=4) == injected + accepted_in(sb.state, DAY, end)[::-1]
    noon = date_page(client, DAY + dt.timedelta(hours=12), end, count=5)
    assert noon == injected, "any window starting on that KST day"
    assert all(o.get("signature") not in {"SAMESIG", "HUGE"}
               for o in all_pages(client, DAY - dt.timedelta(days=1), DAY, count=100)), "not the day before"
    sb.clear_injected()
    assert all_pages(client, DAY, end, count=30) == accepted_in(sb.state, DAY, end)[::-1]


def test_inject_over_http(sb):
    admin = httpx.Client(base_url=sb.url + "/_sandbox")
    far_future = b'{"signature":"LATE","timeStampOnAccept":"29991231235959"}'
    body = {"day": "2026-03-17", "raw_base64": base64.b64encode(far_future).decode(), "copies": 2}
    assert admin.post("/inject", json=body).json()["result"] == {"day": "2026-03-17", "copies": 2,
                                                                "bytes": len(far_future)}
    page = date_page(api(sb), DAY, DAY + dt.timedelta(days=1), count=3)
    assert page[:2] == [json.loads(far_future)] * 2 and page[2] != page[0]
    assert admin.delete("/inject").status_code == 200
    assert date_page(api(sb), DAY, DAY + dt.timedelta(days=1), count=1)[0]["signature"] != "LATE"
    for bad, reason in [({**body, "day": "17.03.2026"}, "day"), ({**body, "day": "2026-02-30"}, "day"),
                        ({**body, "raw_base64": "not base64!"}, "base64"), ({**body, "raw_base64": ""}, "raw"),
                        ({**body, "copies": 0}, "copies"), ({**body, "copies": "2"}, "copies"),
                        ({**body, "when": 1}, "unknown")]:
        response = admin.post("/inject", json=bad)
        assert response.status_code == 400 and reason in response.json()["message"], (bad, response.text)


# --- hostile paging and bodies ------------------------------------------------------------

def test_endless_pages_are_full_of_fresh_junk_forever(sb):
    client = api(sb)
    end = DAY + dt.timedelta(days=1)
    sb.state.set_faults(endless_pages=True)
    pages = [date_page(client, DAY, end, page, count=10) for page in (1, 2, 3, 4, 5, 1000)]
    assert [len(p) for p in pages] == [10] * 6
    signatures = [o["signature"] for p in pages for o in p]
    assert len(set(signatures)) == 60, "fresh on every page"
    assert not set(signatures) & {o["signature"] for o in sb.state.orders()}, "junk, not the sandbox's payments"
    for order in (parse_order(o) for p in pages for o in p):
        assert DAY <= order.accepted_at <= end
    assert date_page(client, DAY, end, 3, count=10) == pages[2], "a retried page is the same junk"


@pytest.mark.parametrize(("start", "count"), [(DAY, 10), (DAY, 30), (DAY - dt.timedelta(days=300), 5)])
def test_cycle_pages_alternate_the_first_two_full_pages(sb, start, count):
    client = api(sb)
    end = start + dt.timedelta(days=1)
    stored = accepted_in(sb.state, start, end)
    sb.state.set_faults(cycle_pages=True)
    pages = [date_page(client, start, end, page, count) for page in range(1, 8)]
    assert all(len(p) == count for p in pages), "never a short page"
    a, b = pages[0], pages[1]
    assert pages == [a, b, a, b, a, b, a]
    assert len({o["signature"] for o in a + b}) == 2 * count
    assert (a + b)[:len(stored)] == stored[:2 * count], "the window's own records first, then junk"


@pytest.mark.parametrize("path", ["/api/settlement", "/api/payments/nope"])
def test_dripped_body_arrives_whole_at_the_rate(sb, path):
    client = api(sb)
    whole = client.get(path)
    sb.state.set_faults(drip_bytes_per_second=400)  # 40-byte pieces, one every 0.1 s
    started = time.monotonic()
    dripped = client.get(path)
    elapsed = time.monotonic() - started
    assert (dripped.status_code, dripped.content) == (whole.status_code, whole.content)
    assert dripped.headers["content-length"] == str(len(whole.content))
    pieces = -(-len(whole.content) // 40)
    assert pieces >= 2
    # A lower bound on the injected delay only, which a slower machine makes easier to meet.
    assert elapsed >= (pieces - 1) * 0.1 - 0.001


@pytest.mark.parametrize(("size", "rate", "piece"), [(95, 200, 20), (3, 1, 1), (0, 50, 5), (1000, 10_000, 1000)])
def test_dripped_pieces(size, rate, piece):
    body = bytes(range(256)) * 4
    body = body[:size]

    async def collect():
        return [chunk async for chunk in dripped(body, rate)]

    chunks = asyncio.run(collect())
    assert b"".join(chunks) == body
    assert all(len(c) == piece for c in chunks[:-1]) and all(0 < len(c) <= piece for c in chunks)


def test_garbage_body_is_the_size_asked_and_not_json(sb):
    client = api(sb)
    sb.state.set_faults(garbage_body_bytes=100_003)
    response = client.get("/api/payments/date", params=date_params(DAY))
    assert response.status_code == 200 and len(response.content) == 100_003
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content.decode("utf-8"))
    assert client.get("/api/settlement").json()["statusCode"] == 200, "only date pages"
    assert client.get("/api/payments/date", params={"startDate": "bad"}).status_code == 400, "parameters first"


@pytest.mark.parametrize("changes", [{"endless_pages": 1}, {"cycle_pages": "yes"}, {"drip_bytes_per_second": -1},
                                     {"drip_bytes_per_second": 1.5}, {"garbage_body_bytes": True}])
def test_hostile_faults_are_validated(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        Faults().changed(**changes)


def test_hostile_fault_flags():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    faults = config_from_args(parser.parse_args(["--endless-pages", "--cycle-pages", "--drip-bytes-per-second", "3",
                                                 "--garbage-body-bytes", "20000000"])).faults
    assert (faults.endless_pages, faults.cycle_pages, faults.drip_bytes_per_second, faults.garbage_body_bytes) == \
           (True, True, 3, 20_000_000)

"""The point3 client against the sandbox over loopback, endpoint by endpoint."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import httpx
import pytest

from point3_pipeline.client import Point3Client
from point3_pipeline.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    NotFoundError,
    RequestDeadlineError,
    ResponseTooLargeError,
)
from point3_pipeline.limits import Limits
from point3_pipeline.models import KST, PaymentRequest
from point3_pipeline.retry import RetryPolicy
from point3_pipeline.sandbox import SandboxConfig, SandboxServer

NOW = dt.datetime(2026, 3, 18, 12, 1, 0, tzinfo=KST)
DAY = dt.datetime(2026, 3, 17, tzinfo=KST)
NO_WAIT = RetryPolicy(max_attempts=10, base_delay=0.0, max_delay=0.0, jitter=0.0)
REQUEST = PaymentRequest(
    client_generated_user_id="USER-0001", total_charge=12000, order_id_from_client="order-42",
    culture_expense_type="b", cash_receipt_type="a", client_business_num="1428801897",
    client_nickname="바이올렛 캔디 앤 젤리", purchasing_product_name="바이올렛 솜사탕맛 젤리",
    tax_free_amount=10909, vat=1091,
)


@pytest.fixture
def sb():
    with SandboxServer(SandboxConfig(seed=3, days=5, per_day=40, future_days=1, start_at=NOW, speed=0.0)) as server:
        yield server


@pytest.fixture
def client(sb):
    with Point3Client(sb.url, sb.key, retry=NO_WAIT, page_size=30) as c:
        yield c


def widget_signature(sb: SandboxServer, token: str) -> str:
    """What the merchant's page receives: open the widget, press 결제하기."""
    page = httpx.get(f"{sb.url}/?d={quote(token, safe='')}")
    assert page.status_code == 200 and "결제하기" in page.text
    return httpx.post(sb.url + "/widget/approve", json={"token": token}).json()["result"]["signature"]


def day_signatures(sb: SandboxServer) -> set[str]:
    now, end = sb.state.clock.timestamp(), DAY + dt.timedelta(days=1)
    return {e.signature for e in sb.state.store.visible(now) if DAY.timestamp() <= e.epoch <= end.timestamp()}


def test_payment_flow_token_widget_confirm(sb, client):
    signature = widget_signature(sb, client.create_payment_token(REQUEST))
    order = client.confirm_payment(signature)
    assert (order.signature, order.total_charge, order.culture_expense_type) == (signature, 12000, "b")


def test_payment_is_looked_up_after_the_widget(sb, client):
    signature = widget_signature(sb, client.create_payment_token(REQUEST))
    order = client.payment(signature)
    assert (order.total_charge, order.tax_free_amount, order.vat, order.is_canceled) == (12000, 10909, 1091, False)
    assert order.accepted_at == NOW
    assert [o.signature for o in client.payments_by_order_id("order-42")] == [signature]
    assert [o.signature for o in client.payments_by_user_id("USER-0001")] == [signature]
    with pytest.raises(NotFoundError):
        client.payment("Z" * 32)


def test_token_rules_are_bad_requests(client):
    with pytest.raises(BadRequestError, match="vat \\+ taxFreeAmount must equal totalCharge"):
        client.create_payment_token({**REQUEST.to_json(), "vat": 1})


def test_confirm_after_30_seconds_is_a_bad_request_and_cancels(sb, client):
    signature = widget_signature(sb, client.create_payment_token(REQUEST))
    sb.state.clock.advance(31)
    with pytest.raises(BadRequestError, match="expired"):
        client.confirm_payment(signature)
    assert client.payment(signature).is_canceled


def test_cancel_shows_at_the_5_minute_batch(sb, client):
    signature = sb.state.add_payment()["signature"]
    client.cancel_payment(signature)
    sb.state.clock.set_now(NOW.replace(minute=4, second=59))
    assert not client.payment(signature).is_canceled
    sb.state.clock.set_now(NOW.replace(minute=5))
    assert client.payment(signature).is_canceled


def test_settlement_refreshes_every_30_minutes(sb, client):
    sb.state.clock.set_now(NOW.replace(minute=10))
    before = client.settlement_balance()
    history_at_1230 = sb.state.settlement_balance(NOW.replace(minute=30))  # history keeps arriving too
    sb.state.add_payment(totalCharge=55000)
    sb.state.clock.set_now(NOW.replace(minute=29, second=59))
    assert client.settlement_balance() == before
    sb.state.clock.set_now(NOW.replace(minute=30))
    assert client.settlement_balance() == history_at_1230 + 55000


def test_key_rotation(sb, client):
    old = sb.key
    new = client.refresh_merchant_key()
    assert new.reveal() == sb.key != old
    assert isinstance(client.settlement_balance(), int)
    with Point3Client(sb.url, old, retry=NO_WAIT) as stale, pytest.raises(AuthenticationError):
        stale.settlement_balance()


def test_paging_a_day_through_faults_gets_every_order(sb, client):
    end = DAY + dt.timedelta(days=1)
    expected = day_signatures(sb)
    clean = {o.signature for page in client.iter_payment_pages(DAY, end) for o in page.orders}
    assert clean == expected
    sb.state.set_faults(error_rate=0.2, rate_limit_rate=0.2, retry_after_seconds=0, truncate_rate=0.2,
                        max_page_size=100)
    faulty = {o.signature for page in client.iter_payment_pages(DAY, end, page_size=1000) for o in page.orders}
    assert faulty == expected
    assert client.page_size == 62 and client.stats.retries > 0



def test_a_record_that_is_not_utf8_is_quarantined_and_its_day_read(sb, client):
    bad = (b'{"signature": "NOTUTF8", "clientNickname": "caf\xe9", "totalCharge": 1000, '
           b'"taxFreeAmount": 900, "vat": 100, "isCanceled": false}')
    sb.inject(DAY.date(), bad)
    pages = list(client.iter_payment_pages(DAY, DAY + dt.timedelta(days=1)))
    assert {o.signature for page in pages for o in page.orders} == day_signatures(sb)
    [rejected] = [r for page in pages for r in page.rejected]
    assert (rejected.signature, rejected.raw_text) == ("NOTUTF8", bad.decode("utf-8", "backslashreplace"))
    assert rejected.reason.startswith("invalid UTF-8 in the record: byte 0xe9")
    assert client.stats.retries == 0


def test_an_amount_beyond_the_bound_is_quarantined(sb, client):
    sb.state.inject_records([{"signature": "HUGE", "totalCharge": 10**12, "taxFreeAmount": 10**12, "vat": 0,
                              "isCanceled": False}], DAY + dt.timedelta(hours=12))
    pages = list(client.iter_payment_pages(DAY, DAY + dt.timedelta(days=1)))
    [rejected] = [r for page in pages for r in page.rejected]
    assert rejected.signature == "HUGE"
    assert rejected.reason == "totalCharge 1000000000000 is beyond the bound of 10,000,000,000 won (setting max_amount_won)"


def test_a_dripping_answer_stops_at_the_deadline_and_is_retried(sb):
    sb.state.set_faults(drip_bytes_per_second=10)  # a byte every 0.1 s: each read well within the timeout
    retry = RetryPolicy(max_attempts=2, base_delay=0.0, jitter=0.0)
    with Point3Client(sb.url, sb.key, retry=retry, limits=Limits(request_deadline_seconds=0.3)) as client:
        with pytest.raises(RequestDeadlineError, match="within the 0.3s request deadline \\(setting request_deadline_seconds\\)"):
            client.payments_page(DAY, DAY + dt.timedelta(days=1), 1, 30)
        assert client.stats.retries_by_reason == {"deadline": 1}


def test_a_non_json_body_too_big_to_repair_is_not_repaired(sb):
    sb.state.set_faults(garbage_body_bytes=300_000)
    limits = Limits(max_repair_bytes=100_000)
    with Point3Client(sb.url, sb.key, retry=RetryPolicy(max_attempts=1), limits=limits) as client:
        with pytest.raises(MalformedResponseError, match="a body over 100,000 bytes is not repaired \\(setting max_repair_bytes\\)"):
            client.payments_page(DAY, DAY + dt.timedelta(days=1), 1, 30)
        assert client.stats.repaired_bodies == 0


def test_a_body_over_the_size_bound_is_refused_once(sb):
    sb.state.set_faults(garbage_body_bytes=300_000)
    with Point3Client(sb.url, sb.key, retry=NO_WAIT, limits=Limits(max_body_bytes=100_000)) as client:
        with pytest.raises(ResponseTooLargeError, match="300000-byte body, over the 100,000-byte bound \\(setting max_body_bytes\\)"):
            client.payments_page(DAY, DAY + dt.timedelta(days=1), 1, 30)
        assert client.stats.requests == 1

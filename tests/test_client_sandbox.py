"""The point3 client against the sandbox over loopback, endpoint by endpoint."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from urllib.parse import quote

import httpx
import pytest

from point3_pipeline.client import Point3Client
from point3_pipeline.errors import AuthenticationError, BadRequestError, NotFoundError, RequestDeadlineError
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
    now = sb.state.clock.timestamp()
    expected = {e.signature for e in sb.state.store.visible(now) if DAY.timestamp() <= e.epoch <= end.timestamp()}
    clean = {o.signature for page in client.iter_payment_pages(DAY, end) for o in page.orders}
    assert clean == expected
    sb.state.set_faults(error_rate=0.2, rate_limit_rate=0.2, retry_after_seconds=0, truncate_rate=0.2,
                        max_page_size=100)
    faulty = {o.signature for page in client.iter_payment_pages(DAY, end, page_size=1000) for o in page.orders}
    assert faulty == expected
    assert client.page_size == 62 and client.stats.retries > 0


@pytest.fixture
def dripping_server():
    """A loopback server that answers headers, then one byte of body every 20 ms, forever.

    Each byte comes well within the read timeout, so only an overall deadline stops it.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    sent: list[int] = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{")
            try:
                while not stop.wait(0.02):
                    conn.sendall(b" ")
                    sent.append(1)
            except OSError:  # the client gave up and closed the connection
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", sent
    stop.set()
    thread.join(timeout=10)
    listener.close()


def test_a_body_dripping_over_a_real_socket_stops_at_the_deadline(dripping_server):
    url, sent = dripping_server
    limits = Limits(request_deadline_seconds=0.3)
    with Point3Client(url, "sk_test_drip", retry=RetryPolicy(max_attempts=1), limits=limits) as client:
        with pytest.raises(RequestDeadlineError, match="within the 0.3s request deadline"):
            client.settlement_balance()
    assert len(sent) < 1_000_000  # it stopped while the server was still sending

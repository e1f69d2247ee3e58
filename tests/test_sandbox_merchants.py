"""One sandbox, several merchants: each key sees its own payments alone, on every endpoint."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from point3_pipeline.businesses import load_businesses
from point3_pipeline.config import reconciliation_terms
from point3_pipeline.merchants import load_merchants_file
from point3_pipeline.models import KST
from point3_pipeline.sandbox import SandboxConfig, SandboxServer, SandboxState
from point3_pipeline.sandbox.process import spawn
from point3_pipeline.sandbox.profiles import merchant_profiles

NOW = dt.datetime(2026, 3, 18, 12, 1, 0, tzinfo=KST)
REPO = Path(__file__).resolve().parents[1]


def config(**changes) -> SandboxConfig:
    return SandboxConfig(**{"seed": 7, "days": 10, "per_day": 30, "future_days": 0, "start_at": NOW, "speed": 0.0,
                            **changes})


@pytest.fixture(scope="module")
def sb():
    with SandboxServer(config(), merchants=3) as server:
        yield server


def api(server: SandboxServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Basic {key}"}, timeout=10)


def date_listing(client: httpx.Client) -> list[dict]:
    records, page = [], 1
    while True:
        response = client.get("/api/payments/date", params={"startDate": "2026-03-01T00:00:00", "page": page,
                                                           "count": 500})
        assert response.status_code == 200, response.text
        orders = response.json()["result"]["orders"]
        records += orders
        if len(orders) < 500:
            return records
        page += 1


def test_merchant_one_is_the_single_merchant_sandbox():
    single = SandboxState(config())
    with SandboxServer(config(), merchants=2) as server:
        assert server.state.orders() == single.orders()
        assert server.key == single.key == server.keys[0]
        assert server.state.settlement_terms == single.settlement_terms


def test_merchants_differ_and_are_deterministic():
    profiles = merchant_profiles(config(), 6)
    again = merchant_profiles(config(), 6)
    assert profiles == again
    assert len({p.key for p in profiles}) == 6 and len({p.seed for p in profiles}) == 6
    assert len({p.per_day for p in profiles}) > 1, "volumes differ"
    assert len({repr(p.terms) for p in profiles}) > 1, "settlement terms differ"
    assert len({p.cancel_share for p in profiles}) > 1, "cancellation patterns differ"
    nicknames = [{b.nickname for b in p.businesses} for p in profiles]
    for i, mine in enumerate(nicknames):
        assert mine, f"merchant {i + 1} has businesses"
        assert all(not mine & other for j, other in enumerate(nicknames) if j != i), "no business is shared"
    assert merchant_profiles(config(key="sk_other"), 3)[1].key != profiles[1].key, "keys follow the first key"


def test_each_merchants_history_uses_its_own_businesses(sb):
    for state in sb.states:
        declared = {b.nickname for b in state.profile.businesses}
        used = {o["clientNickname"] for o in state.orders()}
        assert used and used <= declared


def test_a_key_sees_only_its_own_payments_on_every_endpoint(sb):
    a, b = sb.states[0], sb.states[1]
    mine, theirs = a.orders(), b.orders()
    mine_sigs, their_sigs = {o["signature"] for o in mine}, {o["signature"] for o in theirs}
    assert mine_sigs and their_sigs and not mine_sigs & their_sigs
    other = theirs[len(theirs) // 2]
    with api(sb, a.key) as client:
        assert {o["signature"] for o in date_listing(client)} == mine_sigs
        assert client.get(f"/api/payments/{other['signature']}").status_code == 404
        by_order = client.get(f"/api/payments/orderid/{quote(other['orderIdFromClient'], safe='')}")
        assert by_order.status_code == 200
        assert {o["signature"] for o in by_order.json()["result"]["orders"]} <= mine_sigs
        assert client.get(f"/api/payments/userId/{quote(other['clientGeneratedUserId'], safe='')}").status_code == 404
        assert client.post(f"/api/payments/{other['signature']}/cancel").status_code == 404
        assert client.get("/api/settlement").json()["result"]["balance"] == a.settlement_balance()
    assert b.payment(other["signature"])["isCanceled"] is other["isCanceled"], "B's payment untouched"
    assert a.settlement_balance() != b.settlement_balance()
    with api(sb, b.key) as client:
        assert {o["signature"] for o in date_listing(client)} == their_sigs
        assert client.get(f"/api/payments/{other['signature']}").json()["result"]["signature"] == other["signature"]


def test_a_widget_payment_belongs_to_the_merchant_that_asked(sb):
    a, b = sb.states[1], sb.states[2]
    body = {"clientGeneratedUserId": "USER-X", "totalCharge": 11000, "orderIdFromClient": "order-x",
            "cultureExpenseType": "b", "cashReceiptType": "a", "clientBusinessNum": "1428801897",
            "clientNickname": "샵", "purchasingProductName": "공연", "taxFreeAmount": 10000, "vat": 1000}
    with api(sb, a.key) as client_a, api(sb, b.key) as client_b:
        token = client_a.post("/purchase/token", json=body).json()["result"]["token"]
        assert httpx.get(sb.url + "/", params={"d": token}).status_code == 200
        signature = httpx.post(sb.url + "/widget/approve", json={"token": token}).json()["result"]["signature"]
        assert client_b.post("/purchase/confirm", json={"signature": signature}).status_code == 400
        assert client_a.post("/purchase/confirm", json={"signature": signature}).status_code == 200
        assert client_b.get(f"/api/payments/{signature}").status_code == 404
        assert client_a.get(f"/api/payments/{signature}").status_code == 200
    assert signature in {o["signature"] for o in a.orders()} and signature not in {o["signature"] for o in b.orders()}


def test_key_rotation_is_one_merchants():
    with SandboxServer(config(days=2), merchants=2) as server:
        old_a, key_b = server.keys
        with api(server, old_a) as client:
            new_a = client.post("/api/token/refresh").json()["result"]["token"]
        assert server.keys == [new_a, key_b]
        for key, status in ((old_a, 401), (new_a, 200), (key_b, 200)):
            with api(server, key) as client:
                assert client.get("/api/settlement").status_code == status


def test_faults_are_scoped_to_a_merchant():
    with SandboxServer(config(days=2), merchants=2) as server:
        admin = httpx.Client(base_url=server.url + "/_sandbox", timeout=10)
        assert admin.post("/faults", params={"merchant": "2"}, json={"error_rate": 1.0}).status_code == 200
        with api(server, server.keys[0]) as a, api(server, server.keys[1]) as b:
            assert a.get("/api/settlement").status_code == 200
            assert b.get("/api/settlement").status_code == 500
        assert admin.post("/faults", json={"error_rate": 0.0}).status_code == 200  # no merchant: every one
        assert admin.get("/faults", params={"merchant": server.keys[1]}).json()["result"]["error_rate"] == 0.0
        assert admin.post("/faults", params={"merchant": "7"}, json={}).status_code == 404


def test_admin_exports_take_the_merchant(sb):
    admin = httpx.Client(base_url=sb.url + "/_sandbox", timeout=10)
    window = {"startDate": "2026-03-09T00:00:00", "endDate": "2026-03-18T12:00:00"}
    refused = admin.get("/balance-history.csv", params=window)
    assert refused.status_code == 400 and "merchant=N" in refused.json()["message"]
    assert admin.get("/deposits.csv", params=window).status_code == 400
    assert admin.get("/orders").status_code == 400
    for number, state in enumerate(sb.states, start=1):
        for reference in (str(number), state.key):
            csv = admin.get("/balance-history.csv", params={**window, "merchant": reference}).text.splitlines()
            start, end = (dt.datetime.fromisoformat(window[k]).replace(tzinfo=KST) for k in ("startDate", "endDate"))
            assert csv[1:] == [f"{slot.isoformat()},{bal}" for slot, bal in state.balance_history(start, end)]
            deposits = admin.get("/deposits.csv", params={**window, "merchant": reference, "encoding": "utf-8"})
            assert deposits.text == state.deposits_csv(start, end)
        assert admin.get("/settlement", params={"merchant": number}).json()["result"] == state.settlement_terms.to_json()
    assert admin.get("/orders", params={"merchant": "4"}).status_code == 404


def test_the_stall_gate_can_hold_one_merchant():
    with SandboxServer(config(days=2), merchants=2) as server:
        server.stall("/api/settlement", merchant=2)
        with api(server, server.keys[0]) as a:
            assert a.get("/api/settlement").status_code == 200, "merchant 1 is not held"
        assert server.state.stall_gate.held == 0
        server.release()


def test_write_merchants_gives_a_merchants_file_the_pipeline_loads(sb, tmp_path):
    path = sb.write_merchants(tmp_path / "demo")
    loaded = load_merchants_file(path, {}, today=NOW.date())
    assert not loaded.errors
    assert [m.id for m in loaded.merchants] == ["merchant-01", "merchant-02", "merchant-03"]
    assert [m.secret_key().reveal() for m in loaded.merchants] == sb.keys
    assert all(m.api_url == sb.url and m.start_date == dt.date(2026, 3, 9) for m in loaded.merchants)
    assert all((m.key_file.stat().st_mode & 0o777) == 0o600 for m in loaded.merchants)
    assert loaded.root == (tmp_path / "demo" / "merchants").absolute()
    for merchant, state in zip(loaded.merchants, sb.states):
        declared = {n for b in load_businesses(merchant.businesses_file) for n in b.client_nicknames}
        assert declared == {b.nickname for b in state.profile.businesses}


def test_write_merchants_declares_each_merchants_own_contract(sb, tmp_path):
    path = sb.write_merchants(tmp_path / "demo")
    for merchant, state in zip(load_merchants_file(path, {}, today=NOW.date()).merchants, sb.states):
        declared = reconciliation_terms(merchant.environment())
        true = state.settlement_terms
        assert (declared.fee_ppm, declared.fee_vat, declared.credit_delay_days) == (
            true.fee_ppm, true.fee_vat, true.credit_delay_days)
    assert len({s.settlement_terms.fee_ppm for s in sb.states}) > 1  # seed 7: the merchants' fees differ


def test_merchant_one_declares_the_demo_businesses(sb, tmp_path):
    path = sb.write_merchants(tmp_path)
    first = load_merchants_file(path, {}, today=NOW.date()).merchants[0]
    assert load_businesses(first.businesses_file) == load_businesses(REPO / "docs" / "demo-businesses.toml")


def test_the_sandbox_process_prints_every_merchant(tmp_path):
    log = tmp_path / "sandbox.log"
    with log.open("w") as out:
        process, ready = spawn(["--merchants", "3", "--days", "2", "--per-day", "5", "--future-days", "0",
                                "--write-merchants", str(tmp_path / "m")], tmp_path / "ready.json",
                               stdout=out, stderr=out)
    try:
        keys = [m["key"] for m in ready["merchants"]]
        assert [m["id"] for m in ready["merchants"]] == ["merchant-01", "merchant-02", "merchant-03"]
        assert ready["key"] == keys[0] and len(set(keys)) == 3
        for key in keys:
            assert httpx.get(ready["url"] + "/api/settlement", headers={"Authorization": f"Basic {key}"}).status_code == 200
        merchants = load_merchants_file(tmp_path / "m" / "merchants.toml", {})
        assert [m.secret_key().reveal() for m in merchants.merchants] == keys
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log.read_text()
    assert all(key in text for key in keys) and text.count(ready["url"]) >= 3


def test_a_bad_merchant_count_is_one_sentence(tmp_path):
    from point3_pipeline.cli import main

    with pytest.raises(ValueError, match="merchants must be a whole number"):
        merchant_profiles(config(), 0)
    assert main(["sandbox", "--merchants", "0", "--port", "0"]) == 2

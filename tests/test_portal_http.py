"""The reports portal over HTTP, the real app against a deployment of real published copies and
workbooks: who sees what, what no URL reaches, CSRF, lockouts, cookies and response headers."""

from __future__ import annotations

import datetime as dt
import os
from urllib.parse import unquote

import pytest
from starlette.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from point3_pipeline import cli
from point3_pipeline.config import ConfigError
from point3_pipeline.portal import accounts, audit
from point3_pipeline.portal.accounts import LoginPolicy
from point3_pipeline.portal.app import create_app
from point3_pipeline.portal.server import uvicorn_options
from point3_pipeline.portal.settings import PortalSettings
from point3_pipeline.portal.store import open_store
from tests.portal_fixtures import FAST_HASHER, NAMES, PASSWORD, PERIOD, build_deployment, csrf_of, log_in, portal_client

pytestmark = pytest.mark.slow  # the deployment renders six real workbooks (about 5 s, once per module)

TAX_V2 = f"{PERIOD}/point3-tax-{PERIOD}-v2.xlsx"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return build_deployment(tmp_path_factory.mktemp("portal") / "firm")


@pytest.fixture
def db_path(tmp_path):
    store = open_store(tmp_path / "portal.db")
    accounts.add_user(store, "alice", PASSWORD, ["arthall", "empty"], hasher=FAST_HASHER)
    accounts.add_user(store, "bob", PASSWORD, ["bookcafe"], hasher=FAST_HASHER)
    return tmp_path / "portal.db"


@pytest.fixture
def client(deployment, db_path):
    return portal_client(deployment, db_path)


@pytest.fixture
def alice(client):
    assert log_in(client, "alice").status_code == 303
    return client


def _bookcafe_file(deployment) -> str:
    return f"/m/bookcafe/files/{TAX_V2}"


@pytest.mark.parametrize("url", [
    "/", "/m/arthall/", "/m/bookcafe/", "/m/no-such/", f"/m/arthall/versions/tax/{PERIOD}",
    f"/m/arthall/files/{TAX_V2}", "/m/arthall/files/nothing.xlsx",
])  # fmt: skip
def test_without_a_session_every_page_and_file_redirects_to_login(client, url):
    response = client.get(url, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert b"PK" not in response.content[:2]


def test_a_person_sees_only_their_merchants_with_names_escaped(alice):
    home = alice.get("/").text
    assert "/m/arthall/" in home and "/m/empty/" in home and "/m/bookcafe/" not in home
    assert "&lt;b&gt;푸른별&lt;/b&gt; &amp; &quot;극장&quot;" in home and "<b>푸른별" not in home


def test_the_merchant_page_shows_each_periods_latest_workbooks_businesses_and_csvs(alice, deployment):
    page = alice.get("/m/arthall/").text
    assert "2025년 11월" in page
    assert f'href="/m/arthall/files/{TAX_V2}"' in page and "point3-tax-2025-11-v1.xlsx" not in page
    assert "v2" in page and "최종본" in page and "2025-12-01 03:00" in page  # version, final, as-of (KST)
    assert "변경 1건 · 결제금액 +22,000" in page  # what changed since v1
    assert f'href="/m/arthall/versions/tax/{PERIOD}"' in page and "정산 대사" in page
    assert f'<tr id="p-{PERIOD}-tax">' in page  # what the browser test looks for
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 극장" in page and "<script>" not in page
    csv = next((deployment.merchant("arthall").reports_dir / PERIOD).glob("filing_*.csv"))
    assert f'href="/m/arthall/files/{PERIOD}/{csv.name}"' in page


def test_the_versions_page_lists_every_version_newest_first(alice):
    page = alice.get(f"/m/arthall/versions/tax/{PERIOD}").text
    v2, v1 = page.index("point3-tax-2025-11-v2.xlsx"), page.index("point3-tax-2025-11-v1.xlsx")
    assert v2 < v1 and "첫 버전" in page and "변경 1건" in page


def test_a_merchant_without_a_published_copy_says_so(alice):
    page = alice.get("/m/empty/")
    assert page.status_code == 200 and "아직 게시된 데이터가 없습니다" in page.text


def test_a_download_is_the_file_on_disk_with_its_headers_and_audited(alice, deployment, db_path):
    path = deployment.merchant("arthall").reports_dir / TAX_V2
    response = alice.get(f"/m/arthall/files/{TAX_V2}")
    assert response.status_code == 200 and response.content == path.read_bytes()
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and "filename*=UTF-8''" in disposition
    shown_name = NAMES["arthall"].replace('"', "").replace("/", "")  # no quote or separator in a file name
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == f"{shown_name}_{path.name}"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    entries = audit.newest(open_store(db_path), 10)
    assert [(e.event, e.user_name, e.detail, e.address) for e in entries[:2]] == [
        ("download", "alice", f"arthall/{TAX_V2}", "testclient"), ("login_ok", "alice", None, "testclient")]


def test_a_filing_csv_downloads(alice, deployment):
    csv = next((deployment.merchant("arthall").reports_dir / PERIOD).glob("filing_*.csv"))
    response = alice.get(f"/m/arthall/files/{PERIOD}/{csv.name}")
    assert response.status_code == 200 and response.content == csv.read_bytes()
    assert response.headers["content-type"].startswith("text/csv")


@pytest.mark.parametrize("url", [
    f"/m/bookcafe/files/{TAX_V2}",                                   # another merchant's file, direct
    "/m/bookcafe/", f"/m/bookcafe/versions/tax/{PERIOD}",            # its pages
    f"/m/arthall/files/%2e%2e/%2e%2e/bookcafe/reports/{TAX_V2}",     # .. encoded
    f"/m/arthall/files/..%2f..%2fbookcafe%2freports%2f{PERIOD}%2fpoint3-tax-{PERIOD}-v2.xlsx",
    f"/m/arthall/files/..%5c..%5cbookcafe%5creports%5c{TAX_V2}",      # encoded backslashes
    f"/m/arthall/files/{PERIOD}%2fpoint3-tax-{PERIOD}-v2.xlsx",      # an encoded separator at all
    "/m/arthall/files/%2fetc%2fpasswd.csv",
    f"/m/arthall/files/{PERIOD}/.point3-tax-{PERIOD}-v2.xlsx.tmp-1",  # hidden (a temp file's name)
    "/m/arthall/files/index.html", f"/m/arthall/files/{PERIOD}",      # not a workbook or CSV
    "/m/arthall/files/../warehouse/point3.published.duckdb",
    "/m/arthall/files/%2e%2e/warehouse/point3.published.duckdb",
    "/m/arthall/files/%2e%2e/%2e%2e/%2e%2e/keys/arthall.key",
    "/m/arthall/files/x.xlsx%00.csv", "/m/no-such/", f"/m/no-such/files/{TAX_V2}",
])  # fmt: skip
def test_anything_else_is_404_like_a_missing_merchant(alice, url):
    missing = alice.get("/m/no-such-merchant/")
    response = alice.get(url, follow_redirects=False)
    assert response.status_code == 404 and response.text == missing.text


@pytest.mark.parametrize("target", ["other merchant's workbook", "key file", "outside folder"])
def test_a_symlink_planted_in_the_reports_folder_leads_nowhere(alice, deployment, tmp_path, target):
    reports = deployment.merchant("arthall").reports_dir
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("secret")
    goal = {
        "other merchant's workbook": deployment.merchant("bookcafe").reports_dir / TAX_V2,
        "key file": deployment.folder / "keys" / "arthall.key",
        "outside folder": outside,
    }[target]
    link = reports / PERIOD / "planted.xlsx" if goal.is_file() else reports / "planted"
    link.symlink_to(goal)
    try:
        url = "/m/arthall/files/" + (f"{PERIOD}/planted.xlsx" if goal.is_file() else "planted/secret.csv")
        assert alice.get(url).status_code == 404
        assert "planted" not in alice.get("/m/arthall/").text
    finally:
        link.unlink()


def test_a_key_file_named_like_a_workbook_inside_the_reports_folder_is_refused(alice, deployment):
    """Even a deployment that put a key among the reports (a mistake) does not serve it."""
    arthall = deployment.merchant("arthall")
    key_copy = arthall.reports_dir / "key.csv"
    key_copy.symlink_to(arthall.key_file)  # inside the folder, a regular file once resolved
    try:
        assert alice.get("/m/arthall/files/key.csv").status_code == 404
    finally:
        key_copy.unlink()


def test_login_and_logout_refuse_a_post_without_its_csrf_token(client):
    form = client.get("/login")
    token = csrf_of(form.text)
    for data in ({"username": "alice", "password": PASSWORD}, {"username": "alice", "password": PASSWORD, "csrf_token": "x" + token}):
        assert client.post("/login", data=data, follow_redirects=False).status_code == 403
    assert log_in(client, "alice").status_code == 303
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    home = client.get("/")
    assert home.status_code == 200  # still logged in
    response = client.post("/logout", data={"csrf_token": csrf_of(home.text)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_failed_login_says_the_same_for_a_wrong_password_and_an_unknown_user(client, db_path):
    wrong = log_in(client, "alice", "not the password 1")
    unknown = log_in(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "아이디 또는 비밀번호가 맞지 않습니다" in wrong.text
    assert wrong.text.replace(csrf_of(wrong.text), "") == unknown.text.replace(csrf_of(unknown.text), "")
    events = [(e.event, e.user_name, e.detail) for e in audit.newest(open_store(db_path), 2)]
    assert events == [("login_failed", None, "unknown name"), ("login_failed", "alice", None)]


def test_n_failed_logins_lock_the_user_until_a_person_unlocks_it(deployment, db_path, monkeypatch, capsys):
    client = portal_client(deployment, db_path, login=LoginPolicy(max_failures=3, max_address_failures=10))
    for _ in range(3):
        assert log_in(client, "alice", "wrong password!").status_code == 401
    locked = log_in(client, "alice")  # the right password, but locked
    assert locked.status_code == 429 and "막혔습니다" in locked.text
    monkeypatch.setenv("POINT3_PORTAL_DB", str(db_path))
    assert cli.main(["users", "unlock", "alice"]) == 0
    assert "lockout lifted" in capsys.readouterr().out
    assert log_in(client, "alice").status_code == 303
    events = [e.event for e in audit.newest(open_store(db_path), 7)]
    assert events == ["login_ok", "unlocked", "login_locked", "locked", "login_failed", "login_failed", "login_failed"]


def test_failed_logins_from_one_address_lock_it_for_every_name(deployment, db_path):
    client = portal_client(deployment, db_path, login=LoginPolicy(max_failures=3, max_address_failures=3))
    for name in ("carol", "dave", "erin"):
        assert log_in(client, name, "wrong password!").status_code == 401
    assert log_in(client, "bob").status_code == 429  # bob's password is right; the address is locked
    assert [s[0] for s in accounts.lockouts(open_store(db_path))] == ["address"]


def test_a_lockout_ends_by_itself_after_its_time(deployment, db_path):
    now = [dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc)]
    policy = LoginPolicy(max_failures=2, lockout=dt.timedelta(minutes=15))
    client = portal_client(deployment, db_path, clock=lambda: now[0], login=policy)
    for _ in range(2):
        log_in(client, "alice", "wrong password!")
    assert log_in(client, "alice").status_code == 429
    now[0] += dt.timedelta(minutes=16)
    assert log_in(client, "alice").status_code == 303


def test_the_session_cookie_is_secure_httponly_and_strict(client):
    every = client.get("/login").headers.get_list("set-cookie")
    assert every and all("Secure" in c for c in every)
    response = log_in(client, "alice")
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith("__Host-point3-session=")]
    assert len(cookies) == 1
    attributes = {a.strip().split("=")[0].lower(): a for a in cookies[0].split(";")[1:]}
    assert {"secure", "httponly", "samesite", "path"} <= set(attributes)
    assert attributes["samesite"].strip().lower() == "samesite=strict" and attributes["path"].strip() == "Path=/"


def test_only_the_loopback_demo_sets_a_cookie_without_secure(deployment, db_path):
    demo = portal_client(deployment, db_path, demo=True)
    cookies = log_in(demo, "alice").headers.get_list("set-cookie")
    assert cookies and not any("secure" in c.lower() for c in cookies)
    for host in ("0.0.0.0", "192.0.2.10", "portal.example.com"):
        with pytest.raises(ConfigError, match="only for a loopback address"):
            PortalSettings(db_path=db_path, env=deployment.env(), host=host, insecure_loopback_demo=True)


def test_no_url_reaches_the_store_a_key_or_a_password_hash(alice, deployment, db_path):
    store_name = db_path.name
    for url in (f"/{store_name}", f"/m/arthall/files/{store_name}", "/static/../portal.db", "/keys/arthall.key",
                "/m/arthall/files/%2e%2e/%2e%2e/%2e%2e/merchants.toml", "/static/portal.css/../../portal.db"):
        response = alice.get(url)
        assert response.status_code == 404, url
    texts = [alice.get(u).text for u in ("/", "/m/arthall/", f"/m/arthall/versions/tax/{PERIOD}")]
    key = (deployment.folder / "keys" / "arthall.key").read_text().strip()
    assert not any("$argon2" in t or key in t or PASSWORD in t for t in texts)


def test_the_store_inside_a_reports_folder_is_refused(deployment):
    inside = deployment.merchant("arthall").reports_dir / "portal.db"
    try:
        with pytest.raises(ConfigError, match="inside merchant 'arthall'"):
            create_app(PortalSettings(db_path=inside, env=deployment.env()))
    finally:
        for leftover in inside.parent.glob("portal.db*"):
            os.remove(leftover)


def test_removing_a_person_ends_their_session(client, db_path):
    log_in(client, "alice")
    assert client.get("/").status_code == 200
    accounts.remove_user(open_store(db_path), "alice")
    assert client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(("trusted", "address"), [((), "testclient"), (("testclient",), "203.0.113.9")])
def test_a_forwarded_address_is_believed_only_from_a_configured_proxy(deployment, db_path, trusted, address):
    """What `point3 serve` asks of uvicorn, applied as uvicorn applies it: the audit log's
    address comes from X-Forwarded-For only when the peer is a configured proxy."""
    portal_settings = PortalSettings(db_path=db_path, env=deployment.env(), forwarded_allow_ips=trusted)
    options = uvicorn_options(portal_settings)
    assert options["proxy_headers"] is bool(trusted) and options["server_header"] is False
    app = create_app(portal_settings, store=open_store(db_path), hasher=FAST_HASHER)
    if options["proxy_headers"]:
        app = ProxyHeadersMiddleware(app, trusted_hosts=options["forwarded_allow_ips"])
    client = TestClient(app, base_url="https://testserver", headers={"X-Forwarded-For": "203.0.113.9"})
    assert log_in(client, "alice").status_code == 303
    assert audit.newest(open_store(db_path), 1)[0].address == address

"""Attacks on the reports portal that its first tests did not try: forms built to crash the
parser, logins raced past the lockout, hard links to a secret planted among the reports."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from point3_pipeline import cli
from point3_pipeline.portal import accounts, audit
from point3_pipeline.portal import app as app_module
from point3_pipeline.portal.accounts import LoginPolicy, Outcome
from point3_pipeline.portal.app import create_app
from point3_pipeline.portal.settings import PortalSettings
from point3_pipeline.portal.store import open_store
from tests.portal_fixtures import FAST_HASHER, PASSWORD, PERIOD, build_deployment, csrf_of, log_in, portal_client

pytestmark = pytest.mark.slow  # the deployment renders real workbooks (a few seconds, once per module)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return build_deployment(tmp_path_factory.mktemp("attacks") / "firm")


@pytest.fixture
def db_path(tmp_path):
    store = open_store(tmp_path / "portal.db")
    accounts.add_user(store, "alice", PASSWORD, ["arthall"], hasher=FAST_HASHER)
    return tmp_path / "portal.db"


@pytest.fixture
def client(deployment, db_path):
    return portal_client(deployment, db_path)


def test_a_login_form_of_many_small_fields_is_refused_not_a_server_error(deployment, db_path):
    client = TestClient(portal_client(deployment, db_path).app, base_url="https://testserver",
                        raise_server_exceptions=False)  # fmt: skip
    token = csrf_of(client.get("/login").text)
    body = "&".join(f"f{i}=x" for i in range(50)) + f"&csrf_token={token}&username=alice&password=x"
    response = client.post("/login", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert response.headers["x-content-type-options"] == "nosniff"


class RacingHasher(PasswordHasher):
    """While the first login's hash is being checked, the next attempt comes in, and so on: the
    attempts of many concurrent requests, each checking its password before any was counted."""

    def __init__(self, store, attempts: int, outcomes: list):
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.store, self.left, self.outcomes = store, attempts, outcomes

    def verify(self, hash, password):
        while self.left > 0:  # a nested attempt whose hash is checked takes the rest itself
            self.left -= 1
            self.outcomes.append(accounts.login(self.store, "alice", f"guess {self.left} wrong", "192.0.2.1",
                                                LoginPolicy(max_failures=5), self)[0])  # fmt: skip
        return super().verify(hash, password)


def test_concurrent_logins_get_no_more_guesses_than_the_lockout_allows(db_path):
    store = open_store(db_path)
    outcomes: list[Outcome] = []
    hasher = RacingHasher(store, 11, outcomes)
    outcomes.append(accounts.login(store, "alice", "first guess wrong", "192.0.2.1", LoginPolicy(max_failures=5), hasher)[0])
    assert len(outcomes) == 12
    assert outcomes.count(Outcome.FAILED) == 5 and outcomes.count(Outcome.LOCKED) == 7
    assert accounts.login(store, "alice", PASSWORD, "192.0.2.1", LoginPolicy(max_failures=5), FAST_HASHER)[0] is Outcome.LOCKED


def test_a_hard_link_to_a_key_file_in_the_reports_folder_is_refused(client, deployment):
    arthall = deployment.merchant("arthall")
    linked = arthall.reports_dir / "key-copy.csv"
    os.link(arthall.key_file, linked)  # same file, another name: resolving it changes nothing
    try:
        assert log_in(client, "alice").status_code == 303
        assert client.get("/m/arthall/files/key-copy.csv").status_code == 404
    finally:
        linked.unlink()


def test_a_hard_link_to_the_store_in_the_reports_folder_is_refused(client, deployment, db_path):
    linked = deployment.merchant("arthall").reports_dir / "store-copy.xlsx"
    os.link(db_path, linked)
    try:
        assert log_in(client, "alice").status_code == 303
        assert client.get("/m/arthall/files/store-copy.xlsx").status_code == 404
    finally:
        linked.unlink()


class BlockingHasher(PasswordHasher):
    """Holds each password check until the test lets it go (argon2's tens of milliseconds, stretched)."""

    def __init__(self):
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.entered, self.go_on = threading.Event(), threading.Event()

    def verify(self, hash, password):
        self.entered.set()
        assert self.go_on.wait(timeout=60), "the test never let the check go on"
        return super().verify(hash, password)


def test_password_checks_at_once_are_bounded_and_the_rest_answered_busy(deployment, db_path, monkeypatch):
    """argon2 takes 64 MiB a check: a flood of logins must not take a check (and its memory) each."""
    monkeypatch.setattr(app_module, "MAX_CONCURRENT_LOGINS", 1)
    hasher = BlockingHasher()
    settings = PortalSettings(db_path=db_path, env=deployment.env())
    app = create_app(settings, store=open_store(db_path), hasher=hasher)
    first, second = (TestClient(app, base_url="https://testserver") for _ in range(2))
    forms = [(c, csrf_of(c.get("/login").text)) for c in (first, second)]
    outcome = {}
    login = threading.Thread(target=lambda: outcome.update(first=first.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": forms[0][1]}, follow_redirects=False)))
    login.start()
    try:
        assert hasher.entered.wait(timeout=60)
        busy = second.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": forms[1][1]})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "잠시 후" in busy.text
    finally:
        hasher.go_on.set()
        login.join(timeout=60)
    assert outcome["first"].status_code == 303
    assert log_in(second, "alice").status_code == 303  # the check's slot was given back


def test_a_server_error_carries_the_security_headers_too(deployment, db_path, monkeypatch):
    """A fault past every handler (here the store stays locked past its wait) is answered outside
    the app's middleware: that answer must not be cached or sniffed either."""
    client = TestClient(portal_client(deployment, db_path).app, base_url="https://testserver",
                        raise_server_exceptions=False)  # fmt: skip
    assert log_in(client, "alice").status_code == 303

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(audit, "write", locked)
    response = client.get(f"/m/arthall/files/{PERIOD}/point3-tax-{PERIOD}-v2.xlsx")
    assert response.status_code == 500 and "database is locked" not in response.text
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_a_password_typed_into_the_name_field_stays_out_of_the_audit_log(db_path):
    """A person who types the password where the name goes, then the name: the audit log,
    which an operator reads, must not hold that password. An unknown name is not recorded."""
    store = open_store(db_path)
    policy = LoginPolicy(max_failures=2)
    for _ in range(3):  # failed, failed and locking the name, then locked
        accounts.login(store, PASSWORD, PASSWORD, "192.0.2.1", policy, FAST_HASHER)
    assert accounts.login(store, "alice", "wrong password", "192.0.2.1", policy, FAST_HASHER)[0] is Outcome.FAILED
    entries = audit.newest(store, 5)
    assert [e.event for e in entries] == ["login_failed", "login_locked", "locked", "login_failed", "login_failed"]
    assert not any(PASSWORD in str(value) for e in entries for value in vars(e).values())
    assert [(e.user_name, e.detail) for e in entries[1:]] == [
        (None, "unknown name"), (None, "user (unknown name)"), (None, "unknown name"), (None, "unknown name")]
    assert (entries[0].user_name, entries[0].detail) == ("alice", None)  # a known name is recorded as ever


def test_failed_logins_from_one_ipv6_network_lock_it_whatever_the_host_part(deployment, db_path):
    """An IPv6 client holds a /64 (2^64 addresses): a new address per guess must not reset the count."""
    policy = LoginPolicy(max_failures=100, max_address_failures=3)
    app = portal_client(deployment, db_path, login=policy).app
    for host in range(1, 4):
        client = TestClient(app, base_url="https://testserver", client=(f"2001:db8:1:2::{host:x}", 50000))
        assert log_in(client, f"guess{host}", "wrong password!").status_code == 401
    other_host = TestClient(app, base_url="https://testserver", client=("2001:db8:1:2:ffff::9", 50000))
    assert log_in(other_host, "alice").status_code == 429  # the right password, from the locked network
    other_network = TestClient(app, base_url="https://testserver", client=("2001:db8:1:3::1", 50000))
    assert log_in(other_network, "alice").status_code == 303
    assert accounts.lockouts(open_store(db_path))[0][:2] == ("address", "2001:db8:1:2::/64")
    assert accounts.unlock(open_store(db_path), address="2001:db8:1:2::77") == 1  # any address of it lifts it


@pytest.mark.parametrize(("address", "subject"), [
    ("203.0.113.7", "203.0.113.7"), ("2001:db8::1", "2001:db8::/64"), ("::ffff:203.0.113.7", "203.0.113.7"),
    ("::1", "::/64"), ("testclient", "testclient"),
])  # fmt: skip
def test_the_address_a_lockout_counts(address, subject):
    assert accounts.address_subject(address) == subject


@pytest.mark.parametrize("planted", ["directory", "file"])
def test_a_symlink_to_another_merchants_reports_leads_nowhere(client, deployment, planted):
    arthall, bookcafe = deployment.merchant("arthall"), deployment.merchant("bookcafe")
    name = f"point3-tax-{PERIOD}-v2.xlsx"
    link = arthall.reports_dir / ("bookcafe" if planted == "directory" else f"bookcafe-{name}")
    link.symlink_to(bookcafe.reports_dir if planted == "directory" else bookcafe.reports_dir / PERIOD / name)
    try:
        assert log_in(client, "alice").status_code == 303
        url = f"/m/arthall/files/bookcafe/{PERIOD}/{name}" if planted == "directory" else f"/m/arthall/files/{link.name}"
        assert client.get(url).status_code == 404
    finally:
        link.unlink()


@pytest.mark.parametrize("url", [
    f"/m/arthall/files/%252e%252e/%252e%252e/bookcafe/reports/{PERIOD}/point3-tax-{PERIOD}-v2.xlsx",  # double-encoded
    f"/m/arthall/files/%c0%ae%c0%ae/{PERIOD}/x.xlsx",        # overlong UTF-8 dots
    f"/m/arthall/files/%ef%bc%8e%ef%bc%8e/{PERIOD}/x.xlsx",  # fullwidth dots (no file system folds them)
    f"/m/arthall/files/{PERIOD}/point3-tax-{PERIOD}-V2.XLSX", "/m/ARTHALL/",  # case variants
    f"/m/arthall/files/{PERIOD}//point3-tax-{PERIOD}-v2.xlsx", "/m/arthall/files/" + "a/" * 300 + "x.xlsx",
    "/m/arthall/files/../../bookcafe/reports/x.xlsx",
])  # fmt: skip
def test_encoding_case_and_length_tricks_are_404(client, url):
    assert log_in(client, "alice").status_code == 303
    assert client.get(url, follow_redirects=False).status_code == 404


def test_a_name_of_terminal_escapes_and_newlines_cannot_forge_an_operators_output(deployment, db_path, monkeypatch, capsys):
    """The name typed at login reaches `point3 users list` (its lockout): a newline there would
    forge a line, an escape sequence would drive the operator's terminal."""
    client = portal_client(deployment, db_path, login=LoginPolicy(max_failures=2))
    evil = "x\x1b[2J\r\n  locked user alice until 2000-01-01 00:00:00 KST"
    for _ in range(2):
        assert log_in(client, evil, "wrong password!").status_code == 401
    monkeypatch.setenv("POINT3_PORTAL_DB", str(db_path))
    assert cli.main(["users", "list"]) == 0 and cli.main(["audit"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert not any(line.startswith("  locked user alice") for line in out.splitlines())
    assert "\\x1b[2J\\r\\n" in out  # shown, escaped, so the operator can unlock it

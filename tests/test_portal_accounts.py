"""The portal's pure parts and its store: password and name rules, file paths a download may
reach, the download's file name, settings, change summaries; people, lockouts and sessions."""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
from pathlib import Path
from urllib.parse import unquote

import pytest

from point3_pipeline.config import ConfigError
from point3_pipeline.periods import Period
from point3_pipeline.portal import accounts, audit, sessions, settings
from point3_pipeline.portal.accounts import AccountError, LoginPolicy, Outcome
from point3_pipeline.portal.files import content_disposition, raw_path_problem, resolve_download
from point3_pipeline.portal.library import FILING_FILE, change_summary
from point3_pipeline.portal.store import open_store
from point3_pipeline.reports.index import Listed
from tests.portal_fixtures import FAST_HASHER, PASSWORD

KST = dt.timezone(dt.timedelta(hours=9))


@pytest.mark.parametrize(("name", "password", "problem"), [
    ("alice", "", "empty"),
    ("alice", "short pw", "too short"),
    ("alice", "x" * 1025, "too long"),
    ("alice1234567", "ALICE1234567", "too easy"),
    ("alice", "aaaaaaaaaaaa", "too easy"),
    ("alice", "abababababab", "too easy"),
    ("alice", PASSWORD, None),
    ("alice", "정산 대사 비밀번호 2026", None),
])  # fmt: skip
def test_password_rules(name, password, problem):
    found = accounts.password_problem(name, password)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize(("name", "ok"), [
    ("alice", True), ("a.kim@firm.kr", True), ("kim-01_b", True),
    ("", False), (".hidden", False), ("a b", False), ("<script>", False), ("김회계", False), ("x" * 65, False),
])  # fmt: skip
def test_user_name_rules(name, ok):
    assert (accounts.name_problem(name) is None) is ok


@pytest.mark.parametrize(("raw", "refused"), [
    (b"/m/a/files/2025-11/point3-tax-2025-11-v1.xlsx", False),
    (b"/m/a/files/%EC%95%84.csv", False),  # Korean, percent-encoded as UTF-8
    (b"/m/a/files/..%2fb.xlsx", True), (b"/m/a/files/..%2Fb.xlsx", True),
    (b"/m/a/files/..%5cb.xlsx", True), (b"/m/a/files/%2e%2e/b.xlsx", True),
    (b"/m/a/files/a%00.xlsx", True), (b"/m/a/files/%252e%252e/b.xlsx", True),
])  # fmt: skip
def test_encoded_separators_and_dots_are_refused_in_the_raw_path(raw, refused):
    assert raw_path_problem(raw) is refused


@pytest.fixture
def reports(tmp_path) -> Path:
    folder = tmp_path / "reports"
    (folder / "2025-11").mkdir(parents=True)
    (folder / "2025-11" / "point3-tax-2025-11-v1.xlsx").write_bytes(b"PK workbook")
    (folder / "2025-11" / "filing_20251101-20251130_123-45-67890.csv").write_text("일자\n")
    (folder / "2025-11" / ".point3-tax-2025-11-v2.xlsx.tmp-77").write_bytes(b"half")
    (folder / "index.html").write_text("<html>")
    (tmp_path / "other.xlsx").write_bytes(b"someone else's")
    (tmp_path / "secret.key").write_text("sk_live_x")
    return folder


@pytest.mark.parametrize(("requested", "served"), [
    ("2025-11/point3-tax-2025-11-v1.xlsx", True),
    ("2025-11/filing_20251101-20251130_123-45-67890.csv", True),
    ("2025-11/POINT3-TAX-2025-11-V1.XLSX", False),  # no such file (a case-sensitive file system)
    ("2025-11/.point3-tax-2025-11-v2.xlsx.tmp-77", False),
    ("index.html", False), ("2025-11", False), ("", False),
    ("../other.xlsx", False), ("2025-11/../../other.xlsx", False), ("./2025-11/point3-tax-2025-11-v1.xlsx", False),
    ("/etc/passwd.csv", False), ("2025-11//point3-tax-2025-11-v1.xlsx", False),
    ("2025-11\\point3-tax-2025-11-v1.xlsx", False), ("C:/x.xlsx", False), ("a\x00.xlsx", False),
    ("2025-11/" + "x" * 600 + ".xlsx", False),
])  # fmt: skip
def test_a_download_reaches_only_workbooks_and_csvs_inside_the_folder(reports, requested, served):
    found = resolve_download(reports, requested)
    assert (found is not None) is served
    if served:
        assert found == (reports / requested).resolve()


@pytest.mark.parametrize("goal", ["../other.xlsx", "../secret.key", "..", "2025-11/point3-tax-2025-11-v1.xlsx"])
def test_a_symlink_is_followed_and_must_stay_inside(reports, goal):
    link = reports / "link.xlsx"
    link.symlink_to((reports / goal).resolve())
    inside = goal.startswith("2025-11")
    assert (resolve_download(reports, "link.xlsx") is not None) is inside


def test_a_refused_file_is_never_served_even_inside(reports):
    key = reports / "2025-11" / "key.csv"  # e.g. a key file put among the reports by mistake
    key.write_text("sk_live_x")
    assert resolve_download(reports, "2025-11/key.csv") is not None  # a CSV inside, as far as paths go
    assert resolve_download(reports, "2025-11/key.csv", refused=[key]) is None


@pytest.mark.parametrize(("name", "ascii_name", "utf8"), [
    ("아트홀_point3-tax-2025-11-v1.xlsx", "point3-tax-2025-11-v1.xlsx", "아트홀_point3-tax-2025-11-v1.xlsx"),
    ('a "quoted"\r\nname.csv', "a_quotedname.csv", "a quotedname.csv"),
    ("../../etc/passwd.csv", "etcpasswd.csv", "etcpasswd.csv"),
    ("한글.xlsx", "download.xlsx", "한글.xlsx"),
    ("아트홀 <b>푸른별</b>_point3-tax-2025-11-v2.xlsx", "b_b_point3-tax-2025-11-v2.xlsx", "아트홀 <b>푸른별<b>_point3-tax-2025-11-v2.xlsx"),
])  # fmt: skip
def test_the_download_name_is_utf8_with_an_ascii_stand_in(name, ascii_name, utf8):
    header = content_disposition(name)
    assert header.startswith(f'attachment; filename="{ascii_name}"; ')
    assert unquote(header.split("filename*=UTF-8''")[1]) == utf8
    assert "\r" not in header and "\n" not in header and header.isascii()


@pytest.mark.parametrize(("name", "who"), [
    ("filing_20251101-20251130_123-45-67890.csv", "123-45-67890"),
    ("filing_20250701-20250930_undeclared-9fb91322d1.csv", "undeclared-9fb91322d1"),
    ("filing_2025-11-01_x.csv", None), ("point3-tax-2025-11-v1.xlsx", None), (".filing_20251101-20251130_1.csv", None),
])  # fmt: skip
def test_filing_files_are_known_by_their_name(name, who):
    match = FILING_FILE.match(name)
    assert (match["who"] if match else None) == who


def _listed(version: int, changes: int, **totals: int) -> Listed:
    return Listed("tax", Period.parse("2025-11"), version, f"v{version}.xlsx", dt.datetime(2025, 12, 1, tzinfo=KST),
                  None, 30, 30, True, changes, totals)  # fmt: skip


@pytest.mark.parametrize(("now", "before", "summary"), [
    (_listed(1, 0, total_charge=10), None, "첫 버전"),
    (_listed(2, 1, total_charge=32_000, net_vat=2_000), _listed(1, 0, total_charge=10_000, net_vat=0),
     "변경 1건 · 결제금액 +22,000 · 부가세 +2,000"),
    (_listed(2, 2, total_charge=5), _listed(1, 0, total_charge=8), "변경 2건 · 결제금액 -3"),
    (_listed(3, 0, total_charge=5), _listed(2, 0, total_charge=5), "합계 변동 없음"),
    (_listed(3, 4, total_charge=5), _listed(2, 0, total_charge=5), "변경 4건"),
])  # fmt: skip
def test_what_changed_since_the_previous_version(now, before, summary):
    assert change_summary(now, before) == summary


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("192.168.0.10", False), ("::", False), ("example.com", False),
])  # fmt: skip
def test_loopback_hosts(host, loopback):
    assert settings.is_loopback(host) is loopback


@pytest.mark.parametrize(("value", "parsed"), [
    (None, ()), ("", ()), ("127.0.0.1", ("127.0.0.1",)), ("10.0.0.0/8, ::1", ("10.0.0.0/8", "::1")),
])  # fmt: skip
def test_forwarded_allow_ips(value, parsed):
    assert settings.forwarded_allow_ips(value) == parsed


@pytest.mark.parametrize("value", ["*", "proxy.local", "10.0.0.0/33", "127.0.0.1,,"])
def test_forwarded_allow_ips_refuses_what_is_no_address(value):
    with pytest.raises(ConfigError, match="POINT3_PORTAL_FORWARDED_ALLOW_IPS"):
        settings.forwarded_allow_ips(value)


@pytest.mark.parametrize(("env", "expected"), [
    ({"POINT3_PORTAL_DB": "/srv/p/portal.db"}, "/srv/p/portal.db"),
    ({"POINT3_MERCHANTS": "/srv/firm/merchants.toml"}, "/srv/firm/portal.db"),
    ({"POINT3_WAREHOUSE": "/srv/one/warehouse/point3.duckdb"}, "/srv/one/portal.db"),
])  # fmt: skip
def test_where_the_store_is_by_default(env, expected):
    assert settings.default_db_path(env) == Path(expected)


@pytest.mark.parametrize(("variable", "value"), [
    ("POINT3_PORTAL_MAX_FAILED_LOGINS", "0"), ("POINT3_PORTAL_MAX_FAILED_LOGINS", "five"),
    ("POINT3_PORTAL_LOCKOUT_MINUTES", "-1"), ("POINT3_PORTAL_SESSION_HOURS", "721"),
])  # fmt: skip
def test_a_malformed_number_setting_is_one_sentence_naming_it(variable, value):
    with pytest.raises(ConfigError, match=variable):
        settings.login_policy({variable: value}) if "SESSION" not in variable else settings.session_policy({variable: value})


# --- the store


@pytest.fixture
def clock():
    return [dt.datetime(2026, 1, 5, 9, tzinfo=KST)]


@pytest.fixture
def store(tmp_path, clock):
    return open_store(tmp_path / "portal.db", clock=lambda: clock[0])


def test_the_store_is_private_to_its_owner_and_holds_no_password(store):
    accounts.add_user(store, "alice", PASSWORD, ["a"], hasher=FAST_HASHER)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    with sqlite3.connect(store.path) as conn:
        dump = "\n".join(conn.iterdump())
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert PASSWORD not in dump and "$argon2id$" in dump


def test_opening_again_keeps_everything(store, tmp_path):
    accounts.add_user(store, "alice", PASSWORD, ["a", "b", "a"], hasher=FAST_HASHER)
    again = open_store(tmp_path / "portal.db")
    assert [(u.name, u.merchant_ids) for u in accounts.list_users(again)] == [("alice", ("a", "b"))]


def test_a_store_that_is_no_sqlite_file_is_one_sentence(tmp_path):
    path = tmp_path / "portal.db"
    path.write_text("not a database, but long enough to be read as a header of sixteen bytes" * 10)
    with pytest.raises(ConfigError, match="not a usable SQLite file"):
        open_store(path)


@pytest.mark.parametrize(("merchants", "every", "problem"), [
    ([], False, "at least one --merchant"), (["a"], True, "not both"),
])  # fmt: skip
def test_a_person_needs_merchants_one_way(store, merchants, every, problem):
    with pytest.raises(AccountError, match=problem):
        accounts.add_user(store, "alice", PASSWORD, merchants, all_merchants=every, hasher=FAST_HASHER)


def test_login_checks_the_password_and_rehashes_with_stronger_parameters(store):
    accounts.add_user(store, "alice", PASSWORD, ["a"], hasher=FAST_HASHER)
    stronger = type(FAST_HASHER)(time_cost=2, memory_cost=2048, parallelism=1)
    assert accounts.login(store, "alice", "wrong password", "1.2.3.4", hasher=stronger)[0] is Outcome.FAILED
    outcome, user = accounts.login(store, "alice", PASSWORD, "1.2.3.4", hasher=stronger)
    assert outcome is Outcome.OK and user.may_see("a") and not user.may_see("b")
    with store.connect() as conn:
        assert "t=2" in conn.execute("SELECT password_hash FROM users").fetchone()[0]


def test_failed_logins_outside_the_window_do_not_count(store, clock):
    accounts.add_user(store, "alice", PASSWORD, ["a"], hasher=FAST_HASHER)
    policy = LoginPolicy(max_failures=3, failure_window=dt.timedelta(minutes=10))
    for _ in range(2):
        accounts.login(store, "alice", "wrong password", "1.2.3.4", policy, FAST_HASHER)
    clock[0] += dt.timedelta(minutes=11)
    accounts.login(store, "alice", "wrong password", "1.2.3.4", policy, FAST_HASHER)
    assert accounts.login(store, "alice", PASSWORD, "1.2.3.4", policy, FAST_HASHER)[0] is Outcome.OK


def test_an_unknown_name_is_locked_like_a_known_one_and_unlock_by_address(store):
    policy = LoginPolicy(max_failures=2, max_address_failures=3)
    for name in ("nobody", "nobody", "someone"):
        accounts.login(store, name, "wrong password", "1.2.3.4", policy, FAST_HASHER)
    assert {(k, s) for k, s, _ in accounts.lockouts(store)} == {("address", "1.2.3.4"), ("user", "nobody")}
    assert accounts.unlock(store, address="1.2.3.4") == 1
    assert accounts.unlock(store, name="nobody") == 1
    assert accounts.lockouts(store) == []
    assert accounts.login(store, "nobody", "wrong password", "1.2.3.4", policy, FAST_HASHER)[0] is Outcome.FAILED
    assert accounts.lockouts(store) == []  # the count started afresh
    with pytest.raises(AccountError, match="no user 'ghost'"):
        accounts.unlock(store, name="ghost")


def test_sessions_end_by_lifetime_idleness_and_password_change(store, clock):
    accounts.add_user(store, "alice", PASSWORD, ["a"], hasher=FAST_HASHER)
    policy = sessions.SessionPolicy(lifetime=dt.timedelta(hours=2), idle=dt.timedelta(minutes=30))
    token = sessions.create(store, "alice", "1.2.3.4", policy)
    with store.connect() as conn:
        assert token not in "\n".join(conn.iterdump())  # only its hash is kept
    for _ in range(5):  # each request within the idle time keeps it alive…
        clock[0] += dt.timedelta(minutes=20)
        assert sessions.find(store, token, policy).user_name == "alice"
    clock[0] += dt.timedelta(minutes=20)  # …until its lifetime is over
    assert sessions.find(store, token, policy) is None
    idle = sessions.create(store, "alice", "1.2.3.4", policy)
    clock[0] += dt.timedelta(minutes=31)
    assert sessions.find(store, idle, policy) is None
    changed = sessions.create(store, "alice", "1.2.3.4", policy)
    accounts.set_password(store, "alice", "another good password", hasher=FAST_HASHER)
    assert sessions.find(store, changed, policy) is None
    assert sessions.find(store, "forged", policy) is None and sessions.find(store, None, policy) is None


def test_the_audit_log_reads_newest_first_per_person(store):
    accounts.add_user(store, "alice", PASSWORD, ["a"], hasher=FAST_HASHER)
    accounts.login(store, "alice", PASSWORD, "1.2.3.4", hasher=FAST_HASHER)
    audit.write(store, "download", "alice", detail="a/2025-11/x.xlsx", address="1.2.3.4")
    accounts.login(store, "bob", "wrong password", "5.6.7.8", hasher=FAST_HASHER)
    assert [e.event for e in audit.newest(store, 10, "alice")] == ["download", "login_ok", "user_added"]
    assert [e.event for e in audit.newest(store, 1)] == ["login_failed"]
    with pytest.raises(ValueError):
        audit.write(store, "password_shown", "alice")


def test_every_portal_setting_is_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert [v for v in settings.ENV_VARS if f"`{v}`" not in readme] == []

"""`point3 users`, `point3 audit` and `point3 serve`: each mistake one sentence naming what to
fix, a password never on the command line or in the output."""

from __future__ import annotations

import io
import socket

import pytest

from point3_pipeline import cli, config
from point3_pipeline.portal import accounts, settings
from point3_pipeline.portal.store import open_store
from tests.portal_fixtures import PASSWORD, write_merchants_file


@pytest.fixture
def firm(tmp_path, monkeypatch):
    for name in (*config.ENV_VARS, *settings.ENV_VARS, "POINT3_MERCHANTS"):
        monkeypatch.delenv(name, raising=False)
    path = write_merchants_file(tmp_path / "firm")
    monkeypatch.setenv("POINT3_MERCHANTS", str(path))
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err and "$argon2" not in out + err
    return code, out, err


def add(capsys, firm, name="alice", *merchants: str) -> tuple[int, str, str]:
    options = [a for m in (merchants or ("arthall",)) for a in ("--merchant", m)]
    return run(capsys, "users", "add", name, *options, "--password-file", str(firm / "pw"))


def test_add_list_and_audit(firm, capsys):
    assert add(capsys, firm, "alice", "arthall", "bookcafe")[0] == 0
    code, out, _ = run(capsys, "users", "list")
    assert code == 0 and "alice: merchants arthall, bookcafe" in out
    assert (firm / "firm" / "portal.db").exists()  # beside the merchants file by default
    code, out, _ = run(capsys, "audit", "--limit", "5")
    assert code == 0 and " KST user_added alice arthall,bookcafe from command line" in out


def test_the_password_comes_from_standard_input_or_a_prompt_asked_twice(firm, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert run(capsys, "users", "add", "alice", "--all-merchants", "--password-file", "-")[0] == 0
    answers = iter([PASSWORD, PASSWORD, "another good password", "a different one!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(capsys, "users", "passwd", "alice")[0] == 0
    code, _, err = run(capsys, "users", "passwd", "alice")
    assert code == 1 and err == "point3: the two passwords differ: nothing was changed.\n"
    user = accounts.list_users(open_store(firm / "firm" / "portal.db"))[0]
    assert user.all_merchants and user.may_see("any-merchant")


@pytest.mark.parametrize(("argv", "password", "message"), [
    (["users", "add", "bob", "--merchant", "nope"], PASSWORD, "has no merchant 'nope' (known: arthall, bookcafe, empty)"),
    (["users", "add", "bob"], PASSWORD, "a user needs at least one --merchant ID (or --all-merchants)."),
    (["users", "add", "bob", "--merchant", "arthall", "--all-merchants"], PASSWORD, "not both"),
    (["users", "add", "bob", "--merchant", "arthall"], "", "the password is empty."),
    (["users", "add", "bob", "--merchant", "arthall"], "short", "too short: use at least 10 characters."),
    (["users", "add", "bob bob", "--merchant", "arthall"], PASSWORD, "the user name 'bob bob' must be"),
    (["users", "add", "alice", "--merchant", "arthall"], PASSWORD, "the user 'alice' exists already"),
    (["users", "remove", "ghost"], None, "there is no user 'ghost'"),
    (["users", "passwd", "ghost"], PASSWORD, "there is no user 'ghost'"),
    (["users", "unlock", "ghost"], None, "there is no user 'ghost' and no lockout of that name"),
    (["users", "unlock"], None, "users unlock takes a user NAME or --address ADDRESS."),
    (["--merchant", "arthall", "users", "list"], None, "is the reports portal's, for every merchant"),
    (["serve", "--host", "0.0.0.0", "--insecure-loopback-demo"], None, "only for a loopback address such as 127.0.0.1, not 0.0.0.0"),
    (["serve", "--forwarded-allow-ips", "*"], None, "POINT3_PORTAL_FORWARDED_ALLOW_IPS (--forwarded-allow-ips) must list"),
])  # fmt: skip
def test_each_mistake_is_one_sentence(firm, capsys, argv, password, message):
    assert add(capsys, firm)[0] == 0
    if password is not None:
        (firm / "pw2").write_text(password)
        argv = [*argv, "--password-file", str(firm / "pw2")]
    code, out, err = run(capsys, *argv)
    assert code in (1, 2) and message in err and err.count("\n") == 1 and err.startswith("point3: ")


def test_a_password_file_that_cannot_be_read_is_one_sentence(firm, capsys):
    code, _, err = run(capsys, "users", "add", "bob", "--merchant", "arthall", "--password-file", str(firm / "missing"))
    assert code == 2 and "--password-file" in err and "cannot be read" in err and err.count("\n") == 1


def test_audit_and_list_without_a_store_say_where_it_was_looked_for(firm, capsys):
    for argv in (["audit"], ["users", "list"], ["users", "remove", "x"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "there is no portal store at" in err and "point3 users add" in err


def test_unlock_lifts_a_lockout_listed_by_users_list(firm, capsys):
    add(capsys, firm)
    store = open_store(firm / "firm" / "portal.db")
    policy = accounts.LoginPolicy(max_failures=2)
    for _ in range(2):
        accounts.login(store, "alice", "wrong password", "10.0.0.7", policy)
    assert "locked user alice until" in run(capsys, "users", "list")[1]
    code, out, _ = run(capsys, "users", "unlock", "alice")
    assert code == 0 and "user alice: lockout lifted" in out
    assert run(capsys, "users", "unlock", "--address", "10.0.0.7")[1].startswith("address 10.0.0.7: was not locked")
    assert "locked" not in run(capsys, "users", "list")[1]


def test_serve_on_a_port_in_use_is_one_sentence(firm, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "serve", "--port", str(port))
    assert code == 2 and err == f"point3: port {port} on 127.0.0.1 is in use: stop what holds it or choose another with --port.\n"

"""The `point3` command: every configuration, file-system or argument mistake is one line on
stderr naming what to fix, never a traceback; SIGTERM and Ctrl-C are recorded as interrupted."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from point3_pipeline import cli, config
from point3_pipeline.client import Point3Client
from point3_pipeline.models import KST
from tests.conftest import FAST_RETRY, make_sandbox
from tests.test_config import read_only

ROOT = Path(__file__).resolve().parent.parent
BOUND = 120  # seconds: an upper bound on a wait that ends by an event, never a race


@pytest.fixture
def sandbox():
    with make_sandbox(days=3, per_day=5, speed=0) as server:  # a frozen clock: the balance stays put
        yield server


@pytest.fixture
def env(sandbox, tmp_path, monkeypatch):
    """A working configuration in the environment; each test breaks one thing."""
    for name in config.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    values = {
        "POINT3_API_URL": sandbox.url,
        "POINT3_SECRET_KEY": sandbox.key,
        "POINT3_WAREHOUSE": str(tmp_path / "warehouse" / "point3.duckdb"),
        "POINT3_REPORTS_DIR": str(tmp_path / "reports"),
        "POINT3_START_DATE": config.kst_today().isoformat(),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's own exits
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, *names: str) -> None:
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    for name in names:
        assert name in err, err


def count_calls(monkeypatch, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(Point3Client, name)

    def recording(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Point3Client, name, recording)
    return calls


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://127.0.0.1:0"])
def test_a_bad_port_is_one_sentence(env, capsys, monkeypatch, url):
    monkeypatch.setenv("POINT3_API_URL", url)
    code, _, err = run(capsys, "settlement")
    assert code == 2
    assert_one_line(err, "POINT3_API_URL", "port")


@pytest.mark.parametrize(("key", "what"), [
    ("sk_a b", "space"),
    ("\ufeffsk_ab", "byte-order mark"),
    ("sk_ab\nsk_cd", "more than one line"),
    ("sk_\udcffab", "not UTF-8"),
])
def test_an_unusable_key_in_the_environment_is_one_sentence(env, capsys, monkeypatch, key, what):
    monkeypatch.setenv("POINT3_SECRET_KEY", key)
    code, _, err = run(capsys, "settlement")
    assert code == 2
    assert_one_line(err, "POINT3_SECRET_KEY", what)
    assert "sk_" not in err


@pytest.mark.parametrize(("data", "what"), [
    (b"sk_a b\n", "space"),
    (b"\xef\xbb\xbfsk_ab\n", "byte-order mark"),
    (b"sk_ab\nsk_cd\n", "more than one line"),
    (b"sk_\xffab\n", "not UTF-8"),
])
def test_an_unusable_key_file_is_one_sentence(env, capsys, monkeypatch, tmp_path, data, what):
    path = tmp_path / "point3.key"
    path.write_bytes(data)
    os.chmod(path, 0o600)
    monkeypatch.delenv("POINT3_SECRET_KEY")
    monkeypatch.setenv("POINT3_SECRET_KEY_FILE", str(path))
    code, _, err = run(capsys, "settlement")
    assert code == 2
    assert_one_line(err, "POINT3_SECRET_KEY_FILE", str(path), what)
    assert "sk_" not in err


@pytest.mark.parametrize(("first_day", "what"), [
    (config.kst_today() + dt.timedelta(days=1), "in the future"),
    (dt.date(1899, 1, 1), "before 2000-01-01"),
])
def test_a_first_day_out_of_bounds_is_one_sentence_and_no_run(env, capsys, monkeypatch, first_day, what):
    monkeypatch.setenv("POINT3_START_DATE", first_day.isoformat())
    pages = count_calls(monkeypatch, "payments_page")
    code, _, err = run(capsys, "sync")
    assert code == 2
    assert_one_line(err, "POINT3_START_DATE", what)
    assert pages == []


def test_a_malformed_limit_is_one_sentence(env, capsys, monkeypatch):
    monkeypatch.setenv("POINT3_MAX_BODY_BYTES", "32MB")
    code, _, err = run(capsys, "settlement")
    assert code == 2
    assert_one_line(err, "POINT3_MAX_BODY_BYTES", "'32MB'")


def test_the_client_gets_the_limits_from_the_environment(env, capsys, monkeypatch):
    monkeypatch.setenv("POINT3_MAX_PAGES_PER_WINDOW", "7")
    monkeypatch.setenv("POINT3_REQUEST_DEADLINE_SECONDS", "45.5")
    seen = []
    real_init = Point3Client.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen.append(self.limits)

    monkeypatch.setattr(Point3Client, "__init__", init)
    code, _, err = run(capsys, "settlement")
    assert (code, err) == (0, "")
    assert [(lim.max_pages_per_window, lim.request_deadline_seconds) for lim in seen] == [(7, 45.5)]


# --- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "what"), [
    (["report", "tax", "--month", "0001-01"], "--month"),
    (["report", "tax", "--month", "1999-12"], "--month"),
    (["report", "reconciliation", "--month", "9999-12"], "--month"),
    (["report", "tax", "--month", "2026-13"], "--month"),
    (["sweep", "--days", "100000000"], "--days"),
    (["sweep", "--days", "9" * 40], "--days"),
    (["sweep", "--days", "0"], "--days"),
    (["sync", "--lookback-days", "100000000"], "--lookback-days"),
    (["sync", "--lookback-days", "-1"], "--lookback-days"),
    (["sync", "--since", "1899-01-01"], "--since"),
    (["sync", "--since", "2026-02-30"], "--since"),
    (["report", "tax"], "--period"),
])
def test_a_bad_argument_is_one_line_naming_it(env, capsys, argv, what):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert_one_line(err, what)


def test_days_back_reach_exactly_to_the_earliest_day(env, capsys):
    most = (config.kst_today() - config.EARLIEST_DAY).days + 1
    parser = cli.build_parser()
    assert parser.parse_args(["sweep", "--days", str(most)]).days == most
    code, _, err = run(capsys, "sweep", "--days", str(most + 1))
    assert code == 2
    assert_one_line(err, "--days", str(most))


# --- folders -------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["sync"], ["sweep", "--days", "1"], ["settlement"], ["publish"], ["report", "index"],
    ["report", "tax", "--month", f"{config.kst_today():%Y-%m}"],
])
def test_a_read_only_warehouse_folder_is_one_sentence_before_any_request(env, capsys, monkeypatch, argv):
    folder = read_only(Path(env["POINT3_WAREHOUSE"]).parent, monkeypatch)
    calls = count_calls(monkeypatch, "_call")
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert_one_line(err, "POINT3_WAREHOUSE", str(folder))
    assert calls == [] and os.listdir(folder) == []


@pytest.mark.parametrize("inside", [False, True])
@pytest.mark.parametrize("kind", ["index", "tax"])
def test_an_unwritable_reports_folder_is_one_sentence(env, capsys, monkeypatch, tmp_path, inside, kind):
    folder = read_only(tmp_path / "locked", monkeypatch)
    monkeypatch.setenv("POINT3_REPORTS_DIR", str(folder / "reports" if inside else folder))
    month = [] if kind == "index" else ["--month", f"{config.kst_today():%Y-%m}"]
    code, _, err = run(capsys, "report", kind, *month)
    assert code == 2
    assert_one_line(err, "POINT3_REPORTS_DIR", str(folder))
    assert os.listdir(folder) == []


def test_a_settlement_balance_that_cannot_be_stored_is_in_the_error(env, capsys, monkeypatch, sandbox):
    # The folder passes the check, then the write fails anyway (a disk filling, a remount).
    warehouse = env["POINT3_WAREHOUSE"]
    real_connect = duckdb.connect

    def connect(database=":memory:", read_only=False, **kwargs):
        if database == warehouse and not read_only:
            raise duckdb.IOException(f'IO Error: Cannot open file "{warehouse}": Read-only file system')
        return real_connect(database, read_only=read_only, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect)
    before = dt.datetime.now(KST).replace(microsecond=0, tzinfo=None)
    code, _, err = run(capsys, "settlement")
    after = dt.datetime.now(KST).replace(tzinfo=None)
    assert code == 1
    assert_one_line(err, "Read-only file system", warehouse)
    assert f"balance {sandbox.state.settlement_balance():,} won observed at " in err
    stamp = re.search(r"observed at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) KST", err)
    assert stamp is not None and before <= dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S") <= after


def test_a_report_folder_blocked_by_a_file_is_one_sentence(env, capsys, tmp_path):
    month = f"{config.kst_today():%Y-%m}"
    reports = Path(env["POINT3_REPORTS_DIR"])
    reports.mkdir()
    (reports / month).write_text("not a folder")
    code, _, err = run(capsys, "report", "tax", "--month", month)
    assert code == 1
    assert_one_line(err, str(reports / month))


def test_a_warehouse_that_fails_to_open_is_one_sentence(env, capsys, monkeypatch):
    def connect(*args, **kwargs):
        raise duckdb.IOException("IO Error: Could not read from file: Input/output error")

    monkeypatch.setattr(duckdb, "connect", connect)
    code, _, err = run(capsys, "publish")
    assert code == 1
    assert_one_line(err, "Input/output error")


# --- key rotation --------------------------------------------------------------------------


def _key_file(tmp_path: Path, key: str) -> Path:
    path = tmp_path / "keys" / "point3.key"
    path.parent.mkdir()
    path.write_text(key + "\n")
    os.chmod(path, 0o600)
    return path


def _assert_key_works(sandbox, key: str) -> None:
    assert sandbox.key == key
    with Point3Client(sandbox.url, key, retry=FAST_RETRY) as client:
        client.settlement_balance()


def test_key_rotate_refuses_while_the_environment_key_is_in_use(env, capsys, monkeypatch, sandbox, tmp_path):
    old = sandbox.key
    path = _key_file(tmp_path, old)
    monkeypatch.setenv("POINT3_SECRET_KEY_FILE", str(path))
    calls = count_calls(monkeypatch, "refresh_merchant_key")
    code, _, err = run(capsys, "key", "rotate")
    assert code == 2
    assert_one_line(err, "unset POINT3_SECRET_KEY")
    assert old not in err and calls == [] and path.read_text() == old + "\n"
    _assert_key_works(sandbox, old)


def test_key_rotate_refuses_a_read_only_key_folder(env, capsys, monkeypatch, sandbox, tmp_path):
    old = sandbox.key
    path = _key_file(tmp_path, old)
    monkeypatch.delenv("POINT3_SECRET_KEY")
    monkeypatch.setenv("POINT3_SECRET_KEY_FILE", str(path))
    read_only(path.parent, monkeypatch)
    code, _, err = run(capsys, "key", "rotate")
    assert code == 2
    assert_one_line(err, str(path), "no key was rotated")
    monkeypatch.undo()
    _assert_key_works(sandbox, old)


def test_key_rotate_then_every_later_run_uses_the_new_key(env, capsys, monkeypatch, sandbox, tmp_path):
    old = sandbox.key
    path = _key_file(tmp_path, old)
    monkeypatch.delenv("POINT3_SECRET_KEY")
    monkeypatch.setenv("POINT3_SECRET_KEY_FILE", str(path))
    code, out, err = run(capsys, "key", "rotate")
    assert (code, err) == (0, "") and str(path) in out
    assert sandbox.key != old and path.read_text() == sandbox.key + "\n" and sandbox.key not in out
    code, out, err = run(capsys, "settlement")
    assert (code, err) == (0, "") and "settlement balance" in out


# --- subprocesses: real stderr and real signals --------------------------------------------


def _sigint_as_at_a_terminal() -> None:
    # A shell starts a background job with SIGINT ignored, and a child inherits that: run so
    # (`.ci/run &`), the CLI never saw the test's Ctrl-C. In the child, before it execs.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli_process(env: dict[str, str], *argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "point3_pipeline.cli", *argv],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_sigint_as_at_a_terminal,
    )


def test_a_key_file_open_to_others_gets_a_warning_naming_the_file(env, sandbox, tmp_path):
    path = _key_file(tmp_path, sandbox.key)
    os.chmod(path, 0o644)
    child_env = {**env, "POINT3_SECRET_KEY": "", "POINT3_SECRET_KEY_FILE": str(path)}
    process = _cli_process(child_env, "settlement")
    out, err = process.communicate(timeout=BOUND)
    assert process.returncode == 0 and "settlement balance" in out
    assert_one_line(err, "WARNING", str(path), "chmod 600")
    assert sandbox.key not in err


class _SilentServer:
    """Accepts HTTP requests and never answers, so a client is inside a request for as long as
    the test likes; `arrived` is set when the first request has been read."""

    def __init__(self):
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.arrived = threading.Event()
        self._closing = threading.Event()
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            connection, _ = self._socket.accept()
            if self._closing.is_set():
                connection.close()
                return
            self._connections.append(connection)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.arrived.set()

    def close(self) -> None:
        self._closing.set()
        socket.create_connection(self._socket.getsockname(), timeout=BOUND).close()  # wakes the accept
        self._thread.join(BOUND)
        self._socket.close()
        for connection in self._connections:
            connection.close()


@pytest.mark.parametrize(("signum", "code", "said"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "interrupted")])
def test_a_signal_mid_sync_is_one_line_and_the_run_is_not_left_running(env, tmp_path, signum, code, said):
    server = _SilentServer()
    try:
        today = config.kst_today().isoformat()
        process = _cli_process({**env, "POINT3_API_URL": server.url}, "sync", "--since", today, "--until", today)
        try:
            assert server.arrived.wait(BOUND), "the sync never sent its first request"
            process.send_signal(signum)
            _, err = process.communicate(timeout=BOUND)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    finally:
        server.close()
    assert process.returncode == code
    assert_one_line(err, said)
    with duckdb.connect(env["POINT3_WAREHOUSE"], read_only=True) as conn:
        runs = conn.execute("SELECT status FROM sync_runs").fetchall()
    assert len(runs) == 1 and runs[0][0] in ("interrupted", "failed")

"""Many merchants at once: each syncs its own sandbox into its own warehouse, in parallel, and
a merchant with a wrong key or a damaged warehouse fails alone with one sentence."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from pathlib import Path

import duckdb
import pytest

from point3_pipeline import fleet, sync
from point3_pipeline.config import ConfigError
from point3_pipeline.merchants import Merchant, load_merchants
from point3_pipeline.sandbox import SandboxConfig, SandboxServer
from point3_pipeline.sandbox.faults import Faults
from point3_pipeline.sandbox.stall import DATE_PATH
from point3_pipeline.warehouse import Warehouse
from tests.conftest import FAST_RETRY, SANDBOX_NOW, sandbox_days

# Three merchants of different sizes and histories, each with its own key.
SHOPS = {"arthall": (11, 9), "violet": (12, 17), "dalbit": (13, 4)}  # id -> (seed, payments a day)
FIRST_DAY = (SANDBOX_NOW - dt.timedelta(days=9)).date()


def _sandbox(seed: int, per_day: int) -> SandboxServer:
    # A frozen clock (speed 0): what the sandbox shows cannot move while the test compares.
    return SandboxServer(SandboxConfig(seed=seed, days=10, per_day=per_day, future_days=0, start_at=SANDBOX_NOW,
                                       speed=0, key=f"sk_sandbox_merchant_{seed:04d}"))


@pytest.fixture(scope="module")
def sandboxes():
    with contextlib.ExitStack() as stack:
        yield {id_: stack.enter_context(_sandbox(*shape)) for id_, shape in SHOPS.items()}


def _merchants_file(tmp_path: Path, entries: dict[str, tuple[str, str]]) -> Path:
    """A merchants file of id -> (API URL, key); each key in its own 0600 file."""
    (tmp_path / "keys").mkdir()
    body = ['root = "merchants"']
    for id_, (url, key) in entries.items():
        key_file = tmp_path / "keys" / f"{id_}.key"
        key_file.write_text(key)
        key_file.chmod(0o600)
        body.append(f'[[merchant]]\nid = "{id_}"\nname = "{id_}"\nkey_file = "keys/{id_}.key"\n'
                    f'start_date = {FIRST_DAY}\napi_url = "{url}"')
    path = tmp_path / "merchants.toml"
    path.write_text("\n\n".join(body))
    return path


def _sync(merchant: Merchant, client, warehouse) -> sync.SyncResult:
    return fleet.sync_and_publish(merchant, client, warehouse, clock=lambda: SANDBOX_NOW)


def _signatures(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return {row[0] for row in conn.execute("SELECT signature FROM payments").fetchall()}


def test_each_merchant_holds_its_own_payments_and_a_bad_one_fails_alone(sandboxes, tmp_path):
    entries = {id_: (server.url, server.key) for id_, server in sandboxes.items()}
    entries = {
        "arthall": entries["arthall"],
        "wrong-key": (sandboxes["arthall"].url, "sk_sandbox_not_this_one"),
        "violet": entries["violet"],
        "damaged": entries["violet"],
        "dalbit": entries["dalbit"],
    }
    merchants = load_merchants({"POINT3_MERCHANTS": str(_merchants_file(tmp_path, entries))}).merchants
    damaged = merchants[3].warehouse_path
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a DuckDB file at all " * 1000)
    expected = {id_: {o["signature"] for _, o in sandbox_days(server)} for id_, server in sandboxes.items()}
    assert all(expected.values()) and len(set.union(*expected.values())) == sum(map(len, expected.values()))

    # Two shops are held at their first page until both are in flight: they run at once.
    for id_ in ("violet", "dalbit"):
        sandboxes[id_].stall(DATE_PATH)
    outcomes: list[fleet.Outcome] = []
    runner = threading.Thread(target=lambda: outcomes.extend(
        fleet.run_each(merchants, fleet.with_client(_sync, retry=FAST_RETRY, page_size=30), max_workers=5)))
    runner.start()
    try:
        for id_ in ("violet", "dalbit"):
            sandboxes[id_].wait_stalled(timeout=60)
    finally:
        for id_ in ("violet", "dalbit"):
            sandboxes[id_].release()
        runner.join(timeout=120)
    assert not runner.is_alive()

    assert [o.merchant_id for o in outcomes] == ["arthall", "wrong-key", "violet", "damaged", "dalbit"]
    assert [o.ok for o in outcomes] == [True, False, True, False, True]
    assert "401" in outcomes[1].error and "\n" not in outcomes[1].error
    assert outcomes[3].error.startswith("the warehouse could not be read or written: ")
    assert str(damaged) in outcomes[3].error and "\n" not in outcomes[3].error
    for merchant, outcome in zip(merchants, outcomes):
        if outcome.ok:
            assert outcome.value.status == "succeeded"
            assert _signatures(merchant.warehouse_path) == expected[merchant.id]
            assert _signatures(merchant.published_path) == expected[merchant.id]
            assert merchant.warehouse_path.parent == tmp_path / "merchants" / merchant.id / "warehouse"
    assert damaged.read_bytes().startswith(b"not a DuckDB file")  # a failure changes nothing
    assert not (tmp_path / "merchants" / "wrong-key" / "warehouse" / "point3.published.duckdb").exists()
    # No warehouse holds a key, its own or another's.
    keys = [key.encode() for _, key in entries.values()]
    for path in (tmp_path / "merchants").rglob("*.duckdb"):
        assert not any(key in path.read_bytes() for key in keys), path


def test_a_run_that_could_not_read_its_windows_publishes_what_it_stored_and_fails_with_its_sentence(tmp_path):
    config = SandboxConfig(seed=14, days=5, per_day=5, future_days=0, start_at=SANDBOX_NOW, speed=0,
                           faults=Faults(garbage_body_bytes=64))
    with SandboxServer(config) as sandbox:
        path = _merchants_file(tmp_path, {"garbled": (sandbox.url, sandbox.key)})
        [merchant] = load_merchants({"POINT3_MERCHANTS": str(path)}).merchants
        [outcome] = fleet.run_each([merchant], fleet.with_client(_sync, retry=FAST_RETRY), max_workers=1)
    assert not outcome.ok and outcome.value is None
    assert outcome.error.startswith("3 windows in a row could not be read; stopped before ") and "\n" not in outcome.error
    with duckdb.connect(str(merchant.published_path), read_only=True) as conn:  # published despite the failure
        assert conn.execute("SELECT status, error FROM sync_runs").fetchall() == [("failed", outcome.error)]


def test_an_interrupt_is_no_merchants_failure_it_stops_the_run():
    def operation(merchant: Merchant) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fleet.run_each([_merchant("a")], operation, max_workers=1)


def _merchant(id_: str) -> Merchant:
    return Merchant(id=id_, name=id_, api_url="http://127.0.0.1:9", start_date=dt.date(2026, 1, 1),
                    warehouse_path=Path("/nonexistent") / id_ / "point3.duckdb", reports_dir=Path("/nonexistent"),
                    key_file=None)


def test_at_most_max_workers_merchants_run_at_once():
    lock = threading.Lock()
    running = [0]
    most = [0]
    pair = threading.Barrier(2, timeout=30)  # only two merchants running at once can pass it

    def operation(merchant: Merchant) -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        pair.wait()
        with lock:
            running[0] -= 1
        return merchant.id.upper()

    ids = [f"shop-{n}" for n in range(6)]
    outcomes = fleet.run_each([_merchant(i) for i in ids], operation, max_workers=2)
    assert [(o.merchant_id, o.value, o.error) for o in outcomes] == [(i, i.upper(), None) for i in ids]
    assert most[0] == 2


def test_an_unexpected_exception_is_that_merchants_failure_with_its_traceback_logged(caplog):
    def operation(merchant: Merchant) -> int:
        if merchant.id == "b":
            raise RuntimeError("boom\nsecond line")
        if merchant.id == "c":
            raise FileNotFoundError(2, "No such file or directory", "/x/y.key")
        return len(merchant.id)

    with caplog.at_level(logging.ERROR):
        outcomes = fleet.run_each([_merchant(i) for i in ("a", "b", "c", "dd")], operation, max_workers=4)
    assert [(o.merchant_id, o.value, o.error) for o in outcomes] == [
        ("a", 1, None),
        ("b", None, "RuntimeError: boom"),
        ("c", None, "cannot use /x/y.key: No such file or directory."),
        ("dd", 2, None),
    ]
    [bug] = [r for r in caplog.records if "merchant b failed" in r.getMessage()]
    assert bug.exc_info is not None
    [known] = [r for r in caplog.records if "merchant c failed" in r.getMessage()]
    assert known.exc_info is None


def test_no_merchants_is_no_outcomes():
    assert fleet.run_each([], lambda m: 1, max_workers=3) == []


@pytest.mark.parametrize(("value", "expected"), [(None, 4), ("", 4), (" 8 ", 8), ("1", 1), ("256", 256)])
def test_max_parallel_from_the_environment(value, expected):
    env = {} if value is None else {fleet.MAX_PARALLEL_VAR: value}
    assert fleet.max_parallel(env) == expected


@pytest.mark.parametrize("value", ["0", "257", "-1", "four", "2.5"])
def test_a_bad_max_parallel_is_one_sentence(value):
    with pytest.raises(ConfigError, match=rf"^POINT3_MAX_PARALLEL_MERCHANTS must be a whole number from 1 to 256, not '{value}' \(unset it for 4\)\.$"):
        fleet.max_parallel({fleet.MAX_PARALLEL_VAR: value})


def test_merchants_at_once_share_the_cores_among_their_databases(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)

    def threads(merchant: Merchant) -> int:
        with Warehouse(tmp_path / merchant.id / "point3.duckdb").connect() as conn:
            return conn.execute("SELECT current_setting('threads')").fetchone()[0]

    merchants = [_merchant(i) for i in ("a", "b", "c", "d")]
    assert [o.value for o in fleet.run_each(merchants, threads, max_workers=4)] == [2] * 4  # 8 cores / 4
    assert [o.value for o in fleet.run_each(merchants, threads, max_workers=16)] == [2] * 4  # 4 merchants only
    many = [_merchant(f"m{n}") for n in range(20)]
    assert {o.value for o in fleet.run_each(many, threads, max_workers=16)} == {1}  # 8 / 16: at least one
    # One merchant at a time: DuckDB's own default, a thread per core of the machine.
    alone = fleet.run_each(merchants[:1], threads, max_workers=1)[0].value
    with duckdb.connect() as conn:
        assert alone == conn.execute("SELECT current_setting('threads')").fetchone()[0]


@pytest.mark.parametrize(("cores", "setting", "expected"), [(2, "16", 3), (2, "2", 2), (8, None, 4), (None, "16", 2)])
def test_merchants_computing_run_no_more_than_the_cores_and_one(monkeypatch, cores, setting, expected):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    env = {} if setting is None else {fleet.MAX_PARALLEL_VAR: setting}
    assert fleet.max_parallel_computing(env) == expected


class _ThreadsReading:
    """A client that notes the thread each window is read on (one empty page a window)."""

    def __init__(self):
        from point3_pipeline.client import ClientStats

        self.stats = ClientStats()
        self.threads: list[str] = []

    def iter_payment_pages(self, start, end):
        from point3_pipeline.client import Page

        self.threads.append(threading.current_thread().name)
        yield Page(page=1, count=30, orders=[], rejected=[], record_count=0)


@pytest.mark.parametrize(("workers", "read_on"), [(1, "point3-reader-"), (2, "point3-merchant")])
def test_syncs_of_merchants_at_once_read_one_window_at_a_time(tmp_path, workers, read_on):
    """Alone, a sync reads its windows on reader threads of its own; among merchants at once,
    one after another on its merchant's thread."""
    clients = [_ThreadsReading(), _ThreadsReading()]
    day = SANDBOX_NOW.date() - dt.timedelta(days=3)

    def sync_one(index: int) -> None:
        sync.sync_range(clients[index], Warehouse(tmp_path / f"{index}.duckdb"), day, day + dt.timedelta(days=1),
                        clock=lambda: SANDBOX_NOW)

    with fleet.MerchantPool(workers, 2) as pool:
        for future in [pool.submit(sync_one, i) for i in range(2)]:
            future.result()
    assert [len(c.threads) for c in clients] == [2, 2]
    assert all(name.startswith(read_on) for c in clients for name in c.threads), [c.threads for c in clients]

"""`point3 --merchant ID` / `--all` against one sandbox serving three merchants: each merchant's
commands, warehouse and reports hold its own payments alone, and one merchant's failure is its
line while the others go on."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from point3_pipeline import catalog, cli, config
from point3_pipeline.merchants import load_merchants_file
from point3_pipeline.sandbox import SandboxConfig, SandboxServer
from point3_pipeline.sync import kst_now

SIGNATURE = re.compile(rb"[A-Za-z0-9]{32}")
IDS = ["merchant-01", "merchant-02", "merchant-03"]
BOUND = 120  # seconds: an upper bound on a wait that ends by an event, never a race


@pytest.fixture(scope="module")
def sandbox():
    # A frozen clock at the real now: the sync's today is the sandbox's today.
    with SandboxServer(SandboxConfig(seed=11, days=3, per_day=6, future_days=0, speed=0), merchants=3) as server:
        yield server


@pytest.fixture
def merchants_file(sandbox, tmp_path, monkeypatch):
    for name in (*config.ENV_VARS, "POINT3_MERCHANTS", "POINT3_MAX_PARALLEL_MERCHANTS"):
        monkeypatch.delenv(name, raising=False)
    path = sandbox.write_merchants(tmp_path / "firm")
    monkeypatch.setenv("POINT3_MERCHANTS", str(path))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def merchant(path: Path, merchant_id: str):
    return load_merchants_file(path).get(merchant_id)


def signatures_of(state) -> set[bytes]:
    return {o["signature"].encode() for o in state.orders()}


def warehouse_signatures(path: Path) -> set[bytes]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return {row[0].encode() for row in conn.execute("SELECT signature FROM payments").fetchall()}


def file_texts(folder: Path):
    """(file, bytes) for every file under `folder`: a workbook's members unzipped, a DuckDB
    file's every table as text (its own pages compress strings), anything else as it is."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as book:
                yield path, b"".join(book.read(name) for name in book.namelist())
        elif path.suffix == ".duckdb":
            with duckdb.connect(str(path), read_only=True) as conn:
                tables = [r[0] for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
                text = "\n".join(str(conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
            yield path, text.encode() + path.read_bytes()
        else:
            yield path, path.read_bytes()


def test_with_several_merchants_a_command_needs_one_named_or_all(merchants_file, capsys):
    code, _, err = run(capsys, "status")
    assert code == 2 and err.count("\n") == 1
    assert "lists 3 merchants" in err and "--merchant ID" in err and "--all" in err
    code, _, err = run(capsys, "status", "--merchant", "nobody")
    assert code == 2 and "no merchant 'nobody'" in err and "merchant-01" in err
    code, _, err = run(capsys, "--merchant", "merchant-01", "status", "--all")
    assert code == 2 and "either --merchant ID or --all" in err


def test_without_a_merchants_file_only_default_is_known(sandbox, tmp_path, monkeypatch, capsys):
    for name in (*config.ENV_VARS, "POINT3_MERCHANTS"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capsys, "status", "--merchant", "merchant-01")
    assert code == 2 and "POINT3_MERCHANTS is not set" in err and "'default'" in err
    monkeypatch.setenv("POINT3_WAREHOUSE", str(tmp_path / "w" / "point3.duckdb"))
    code, out, err = run(capsys, "--merchant", "default", "publish")
    assert code == 0, err
    assert out.strip().endswith("point3.published.duckdb")


def test_a_merchants_file_of_one_merchant_needs_no_option(sandbox, tmp_path, monkeypatch, capsys):
    for name in (*config.ENV_VARS, "POINT3_MERCHANTS"):
        monkeypatch.delenv(name, raising=False)
    path = sandbox.write_merchants(tmp_path / "firm")
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:text.index("[[merchant]]", text.index("[[merchant]]") + 1)], encoding="utf-8")
    monkeypatch.setenv("POINT3_MERCHANTS", str(path))
    code, out, err = run(capsys, "sync")
    assert code == 0, err
    assert warehouse_signatures(merchant(path, "merchant-01").warehouse_path) == signatures_of(sandbox.states[0])


def test_sync_all_keeps_each_merchants_payments_apart_and_builds_the_catalog(sandbox, merchants_file, capsys):
    code, out, err = run(capsys, "sync", "--all")
    assert code == 0, err
    for merchant_id in IDS:
        assert re.search(rf"^{merchant_id}: run \d+ \(incremental\)", out, re.M), out
    assert all(re.match(r"(merchant-0[123]: |point3 sync: 3 of 3 merchants succeeded|combined catalog rebuilt: )", line)
               for line in out.splitlines()), out
    loaded = load_merchants_file(merchants_file)
    for state, m in zip(sandbox.states, loaded.merchants):
        assert warehouse_signatures(m.warehouse_path) == signatures_of(state)
        assert warehouse_signatures(m.published_path) == signatures_of(state)
    with catalog.connect(loaded.root) as conn:
        counts = dict(conn.execute("SELECT merchant_id, count(*) FROM payments GROUP BY 1").fetchall())
    assert counts == {m.id: len(s.orders()) for m, s in zip(loaded.merchants, sandbox.states)}


def test_options_go_before_or_after_the_command(sandbox, merchants_file, capsys):
    for argv in (["--merchant", "merchant-02", "sync"], ["sync", "--merchant", "merchant-02"]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert not out.startswith("merchant-02: ")  # one merchant: today's output
    loaded = load_merchants_file(merchants_file)
    assert warehouse_signatures(loaded.get("merchant-02").warehouse_path) == signatures_of(sandbox.states[1])
    assert not loaded.get("merchant-01").warehouse_path.exists()
    code, out, err = run(capsys, "--all", "publish")
    assert code == 0, err
    assert sorted(line.split(": ")[0] for line in out.splitlines()[:3]) == IDS  # in parallel: any order


@pytest.mark.slow
def test_a_merchants_files_and_reports_never_hold_another_merchants_payments_or_keys(sandbox, merchants_file, capsys):
    month = kst_now().strftime("%Y-%m")
    printed = ""
    for argv in (["sync", "--all"], ["settlement", "--all"], ["report", "tax", "--period", month, "--all"],
                 ["report", "reconciliation", "--period", month, "--all"],
                 ["export", "filing", "--period", month, "--all"], ["status", "--all"]):
        code, out, err = run(capsys, *argv)
        assert code == 0, (argv, err)
        printed += out + err
    loaded = load_merchants_file(merchants_file)
    keys = [state.key.encode() for state in sandbox.states]
    assert not any(key.decode() in printed for key in keys)
    for m, state in zip(loaded.merchants, sandbox.states):
        mine = signatures_of(state)
        others = set().union(*(signatures_of(s) for s in sandbox.states if s is not state))
        seen_mine = set()
        files = list(file_texts(m.folder))
        assert any(p.suffix == ".xlsx" for p, _ in files) and any(p.suffix == ".csv" for p, _ in files)
        for path, data in files:
            found = set(SIGNATURE.findall(data))
            assert not found & others, f"{path} holds another merchant's payments"
            seen_mine |= found & mine
            assert not any(key in data for key in keys), f"{path} holds a merchant key"
        assert seen_mine == mine


def test_a_damaged_warehouse_fails_its_merchant_alone(sandbox, merchants_file, capsys):
    loaded = load_merchants_file(merchants_file)
    damaged = loaded.get("merchant-01").warehouse_path
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a DuckDB file at all " * 1000)
    code, out, err = run(capsys, "sync", "--all")
    assert code == 1
    failures = [line for line in err.splitlines() if ": FAILED: " in line]
    assert len(failures) == 1 and failures[0].startswith("merchant-01: FAILED: ") and str(damaged) in failures[0]
    assert "failed: merchant-01" in err
    for m, state in zip(loaded.merchants[1:], sandbox.states[1:]):
        assert re.search(rf"^{m.id}: run \d+", out, re.M)
        assert warehouse_signatures(m.warehouse_path) == signatures_of(state)
    assert damaged.read_bytes().startswith(b"not a DuckDB file")
    code, out, _ = run(capsys, "status", "--all")
    lines = out.splitlines()
    assert code == 1 and len(lines) == 3
    assert lines[0].startswith(f"merchant-01: FAILING: the warehouse {damaged} ") and "no published copy" in lines[0]
    assert lines[1].startswith("merchant-02: ok |") and lines[2].startswith("merchant-03: ok |")


def test_a_bad_entry_or_a_wrong_key_is_that_merchants_line(sandbox, merchants_file, capsys):
    (merchants_file.parent / "keys" / "merchant-02.key").write_text("sk_wrong_key_0000\n")
    with merchants_file.open("a", encoding="utf-8") as out:
        out.write('[[merchant]]\nid = "lost"\nname = "없는 가맹점"\nkey_file = "keys/lost.key"\nstart_date = 2026-01-01\n')
    code, out, err = run(capsys, "sync", "--all")
    assert code == 1
    failed = dict(line.split(": FAILED: ", 1) for line in err.splitlines() if ": FAILED: " in line)
    assert set(failed) == {"merchant-02", "lost"}
    assert "key" in failed["merchant-02"] and "lost.key" in failed["lost"]
    assert "sk_wrong_key_0000" not in out + err
    loaded = load_merchants_file(merchants_file)
    for merchant_id, state in (("merchant-01", sandbox.states[0]), ("merchant-03", sandbox.states[2])):
        assert warehouse_signatures(loaded.get(merchant_id).warehouse_path) == signatures_of(state)
    code, _, err = run(capsys, "status", "--merchant", "lost")
    assert code == 2 and "lost" in err and "key_file" in err


def test_key_rotation_is_one_merchant_at_a_time(sandbox, merchants_file, capsys):
    code, _, err = run(capsys, "key", "rotate", "--all")
    assert code == 2 and "one merchant's key at a time" in err and "--merchant ID" in err
    for argv in (["settlement", "import", "x.csv", "--all"], ["deposits", "import", "x.csv", "--all"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "--merchant ID" in err
    before = sandbox.keys
    code, out, err = run(capsys, "key", "rotate", "--merchant", "merchant-03")
    assert code == 0, err
    after = sandbox.keys
    assert after[:2] == before[:2] and after[2] != before[2]
    assert (merchants_file.parent / "keys" / "merchant-03.key").read_text().strip() == after[2]
    assert after[2] not in out + err


def test_status_all_is_one_line_per_merchant(sandbox, merchants_file, capsys):
    month = kst_now().strftime("%Y-%m")
    assert run(capsys, "sync", "--merchant", "merchant-01")[0] == 0
    assert run(capsys, "settlement", "--merchant", "merchant-01")[0] == 0
    assert run(capsys, "report", "tax", "--period", month, "--merchant", "merchant-01")[0] == 0
    assert run(capsys, "sync", "--merchant", "merchant-02")[0] == 0
    code, out, err = run(capsys, "status", "--all")
    lines = out.splitlines()
    assert code == 1 and len(lines) == 3, out + err
    first, second, third = lines
    yesterday = sandbox.state.clock.now().date() - dt.timedelta(days=1)  # today is not final yet
    balance = sandbox.states[0].settlement_balance()
    assert first.startswith("merchant-01: ok | ")
    assert f"..{yesterday} (2 complete days, no gaps)" in first
    assert re.search(r"last run #\d+ incremental succeeded", first)
    assert f"balance {balance:,} won at " in first
    assert f"reports: tax {month} v1 not final" in first
    assert "0 rejected" in first and "unclassified" in first
    assert "balance not observed yet" in second and "reports: none yet" in second
    assert third.startswith("merchant-03: FAILING: not synced yet: run `point3 sync --merchant merchant-03`")


def test_status_all_reads_the_published_copy_while_a_warehouse_is_busy(sandbox, merchants_file, capsys):
    assert run(capsys, "sync", "--all")[0] == 0
    busy = load_merchants_file(merchants_file).get("merchant-02").warehouse_path
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                               "sys.stdin.read()", str(busy)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out, err = run(capsys, "status", "--all")
    finally:
        holder.stdin.close()
        holder.wait(timeout=BOUND)
    lines = out.splitlines()
    assert code == 0, out + err
    assert lines[1].startswith("merchant-02: ok [read from the published copy] | ")
    assert "2 complete days" in lines[1]
    assert "[read from the published copy]" not in lines[0] + lines[2]

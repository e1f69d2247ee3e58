"""The warehouse file itself: a damaged file never replaces the analysts' copy and says how to
restore it, a full disk says so, and nothing a killed publish leaves behind outlives the next."""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from point3_pipeline import sync, warehouse as warehouse_module
from point3_pipeline.status import format_status
from point3_pipeline.warehouse import NoSpaceLeft, Warehouse, WarehouseDamaged, WarehouseError, refresh_derived
from tests.conftest import SANDBOX_NOW, sandbox_first_day, warehouse_before

DATABASE_HEADERS = 3 * 4096  # DuckDB's file header and its two database headers, then block 0


def _synced(sandbox, client, warehouse: Warehouse) -> Warehouse:
    sync.sync_range(
        client, warehouse, sandbox_first_day(sandbox), sandbox.state.clock.now().date(), clock=sandbox.state.clock.now
    )
    warehouse.refresh_derived()
    return warehouse


def _damage_payments(warehouse: Warehouse) -> None:
    """Overwrite bytes in the middle of a data block of `payments`, as a failing disk would,
    and check that DuckDB itself now refuses to read the table whole."""
    with duckdb.connect(str(warehouse.path)) as conn:
        conn.execute("CHECKPOINT")
        block_size = conn.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
        # Where the stored records' first segment starts (a small one shares its block).
        block, offset = conn.execute(
            "SELECT block_id, block_offset FROM pragma_storage_info('payments') "
            "WHERE persistent AND block_id >= 0 AND column_name = 'raw_record' ORDER BY block_id, block_offset LIMIT 1"
        ).fetchone() or (None, None)
    assert block is not None, "payments has no data block on disk"
    with open(warehouse.path, "r+b") as handle:
        handle.seek(DATABASE_HEADERS + block * block_size + offset + 16)
        handle.write(b"\xa5" * 64)
    with duckdb.connect(str(warehouse.path), read_only=True) as conn, pytest.raises(duckdb.Error, match="checksum"):
        conn.execute("SELECT * FROM payments").fetchall()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_publish_refuses_a_damaged_warehouse_and_keeps_the_good_copy(sandbox, client, warehouse):
    published = _synced(sandbox, client, warehouse).publish()
    good = published.read_bytes()
    _damage_payments(warehouse)

    with pytest.raises(WarehouseDamaged) as info:
        warehouse.publish()
    message = str(info.value)
    assert str(warehouse.path) in message and "damaged" in message and "checksum" in message
    # the restore steps, from the copy the publish kept
    assert f"copy {published} to {warehouse.path}" in message
    # today's window is never complete: the copy's last complete day is yesterday
    assert f"point3 sync --since {SANDBOX_NOW.date() - dt.timedelta(days=1)}" in message
    assert "stop the pipeline" in message and "aside" in message
    assert "\n" not in message
    assert published.read_bytes() == good
    assert not list(published.parent.glob(f".{published.name}.tmp-*"))


def test_sync_and_status_reads_on_a_damaged_warehouse_say_how_to_restore(sandbox, client, warehouse):
    _synced(sandbox, client, warehouse).publish()
    _damage_payments(warehouse)
    with pytest.raises(WarehouseDamaged, match="is the backup"):
        sync.sync_range(
            client, Warehouse(warehouse.path), sandbox_first_day(sandbox), sandbox.state.clock.now().date(),
            clock=sandbox.state.clock.now,
        )  # fmt: skip
    with pytest.raises(WarehouseDamaged, match="point3 sync --since"):
        format_status(Warehouse(warehouse.path))


def test_a_damaged_warehouse_without_a_copy_says_to_read_point3_again(sandbox, client, warehouse):
    _synced(sandbox, client, warehouse)
    _damage_payments(warehouse)
    with pytest.raises(WarehouseDamaged, match="no readable analysts' copy") as info:
        warehouse.publish()
    assert "POINT3_START_DATE" in str(info.value)
    assert not warehouse.published_path.exists()


def test_a_copy_that_does_not_read_whole_is_not_published(sandbox, client, warehouse, monkeypatch):
    published = _synced(sandbox, client, warehouse).publish()
    good = published.read_bytes()
    real_copy = warehouse_module._copy_synced

    def copy_onto_a_failing_disk(source, target):
        real_copy(source, target)
        _damage_payments(Warehouse(target))

    monkeypatch.setattr(warehouse_module, "_copy_synced", copy_onto_a_failing_disk)
    with pytest.raises(WarehouseDamaged, match="a fresh copy of it does not read whole"):
        warehouse.publish()
    assert published.read_bytes() == good
    assert not list(published.parent.glob(f".{published.name}.tmp-*"))


def test_a_full_disk_during_publish_says_so_and_keeps_the_copy(sandbox, client, warehouse, monkeypatch):
    published = _synced(sandbox, client, warehouse).publish()
    good = published.read_bytes()

    def copy_until_the_disk_is_full(source, target):
        with open(target, "wb") as handle:
            handle.write(b"\0" * 4096)  # a part of the copy lands before the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", copy_until_the_disk_is_full)
    with pytest.raises(NoSpaceLeft) as info:
        warehouse.publish()
    assert str(info.value).startswith(f"no space left on device at {published.parent}: free space there")
    assert published.read_bytes() == good
    assert not list(published.parent.glob(f".{published.name}.tmp-*")), "the partial copy keeps the disk full"


def test_a_killed_publish_leaves_nothing_behind_the_next_one(warehouse):
    with warehouse.connect():
        pass
    target = warehouse.published_path
    dead = target.with_name(f".{target.name}.tmp-{_dead_pid()}")
    # a live process's too: every publish holds the write lock, so no other is half-way
    other = target.with_name(f".{target.name}.tmp-{os.getppid()}")
    for litter in (dead, other):
        litter.write_bytes(b"\0" * 65536)
    unrelated = target.with_name("notes.tmp-1")
    unrelated.write_text("not ours")
    warehouse.publish()
    assert not dead.exists() and not other.exists()
    assert unrelated.exists() and target.exists()


def test_a_full_disk_inside_duckdb_is_named_as_the_cause(warehouse):
    with pytest.raises(NoSpaceLeft, match=f"^no space left on device at {warehouse.path.parent}: free space there"):
        with warehouse.connect():
            raise duckdb.IOException(f'Could not write file "{warehouse.path}.wal": No space left on device')


class _CommitFailsOnAFullDisk:
    """A connection whose COMMIT fails the way DuckDB's does on a full disk: the transaction
    is over (nothing committed) and the error says why."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, *args):
        if sql == "COMMIT":
            self._conn.execute("ROLLBACK")
            raise duckdb.IOException("Could not write file: No space left on device")
        return self._conn.execute(sql, *args)


def test_a_failed_commit_of_the_derived_tables_is_not_hidden_by_the_rollback(warehouse):
    with warehouse.connect() as conn:
        conn.execute("INSERT INTO settlement_observations VALUES (now(), 100)")
        with pytest.raises(duckdb.IOException, match="No space left on device"):
            refresh_derived(_CommitFailsOnAFullDisk(conn), ["settlement_balance_history"])
        assert conn.execute("SELECT count(*) FROM settlement_balance_history").fetchone()[0] == 0


def test_a_failing_derived_refresh_names_the_table_and_keeps_the_old_one(warehouse):
    with warehouse.connect() as conn:
        conn.execute("DROP TABLE culture_expense_types")  # what culture_vat_daily is built from
    with pytest.raises(WarehouseError, match="culture_vat_daily .*left as it was"):
        warehouse.refresh_derived()
    with warehouse.connect(read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM culture_vat_daily").fetchone()[0] == 0


def test_held_opens_the_file_once_and_its_publish_copies_every_write(warehouse):
    """Inside held(): one open database for every connection, the write lock held throughout,
    and a publish after a refresh and an unread result still checkpoints and copies it all."""
    with warehouse.held():
        with warehouse.connect() as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (999, 'held', now())")
        with warehouse.connect(read_only=True) as conn:
            conn.execute("SELECT version FROM schema_migrations")  # left unread
        warehouse.refresh_derived()
        probe = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(warehouse.path)!r})"],
                               capture_output=True, text=True)
        assert probe.returncode != 0 and "lock" in probe.stderr.lower()
        published = warehouse.publish()
    with duckdb.connect(str(published), read_only=True) as conn:
        assert conn.execute("SELECT name FROM schema_migrations WHERE version = 999").fetchall() == [("held",)]


def test_the_warehouse_draws_no_progress_bar(warehouse):
    """DuckDB draws one on stdout for a statement over 2 s (on by default in a process of its
    own, as the CLI is; pytest's is not one)."""
    code = ("import sys\nfrom point3_pipeline.warehouse import Warehouse\n"
            "with Warehouse(sys.argv[1]).connect() as conn:\n"
            "    print(conn.execute(\"SELECT current_setting('enable_progress_bar')\").fetchone()[0])")
    shown = subprocess.run([sys.executable, "-c", code, str(warehouse.path)], capture_output=True, text=True,
                           check=True)
    assert shown.stdout.strip() == "False"


def test_migration_009_stores_keys_uncompressed_and_keeps_every_row_and_key(tmp_path):
    path = tmp_path / "old.duckdb"
    with warehouse_before(path, 9) as conn:
        conn.execute(
            "INSERT INTO payments SELECT 'sig' || i, DATE '2026-11-01', NULL, NULL, 11000, 10000, 1000, 'a', 'CARD', "
            "false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, now(), now(), NULL, 1, 1, md5(i::VARCHAR), "
            "'{\"signature\": \"sig' || i || '\"}' FROM range(3000) t(i)")
        conn.execute("INSERT INTO payment_events SELECT signature, 1, now(), 'first_seen', false, NULL, NULL, NULL "
                     "FROM payments")
        before = conn.execute("SELECT * FROM payments ORDER BY signature").fetchall()
    with Warehouse(path).connect() as conn:
        assert conn.execute("SELECT * FROM payments ORDER BY signature").fetchall() == before
        assert conn.execute("SELECT count(*) FROM payment_events").fetchone()[0] == 3000
        with pytest.raises(duckdb.ConstraintException):
            conn.execute("INSERT INTO payments SELECT * FROM payments LIMIT 1")
        conn.execute("CHECKPOINT")
        stored = [
            (table, *row) for table in ("payments", "payment_events") for row in conn.execute(
                "SELECT DISTINCT column_name, compression FROM pragma_storage_info(?) "
                "WHERE column_name IN ('signature', 'record_hash', 'raw_record') AND segment_type <> 'VALIDITY'",
                [table]).fetchall()
        ]
    assert sorted(stored) == [("payment_events", "signature", "Uncompressed"), ("payments", "raw_record", "ZSTD"),
                              ("payments", "record_hash", "Uncompressed"), ("payments", "signature", "Uncompressed")]

"""`point3 status` over a real warehouse: what is final, what is not and why, and the runs."""

from __future__ import annotations

import subprocess
import sys

from point3_pipeline import sync
from point3_pipeline.status import format_status
from point3_pipeline.warehouse import Warehouse
from tests.conftest import sandbox_days, sandbox_first_day

# Holds the warehouse file read-write, as a running sync does, until its stdin closes.
HOLD_THE_FILE = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('holding', flush=True); sys.stdin.read()"


def test_status_during_a_first_sync_says_there_is_no_published_copy_yet(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect():
        pass
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_FILE, str(warehouse.path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        text = format_status(warehouse)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert "first sync" in text and "no published copy" in text
    assert "locked" not in text


def test_status_tells_cancellations_detected_from_payments_already_cancelled_when_first_seen(
    sandbox, client, warehouse
):
    clock = sandbox.state.clock
    sync.sync_range(client, warehouse, sandbox_first_day(sandbox), clock.now().date(), clock=clock.now)
    already = sum(o["isCanceled"] for _, o in sandbox_days(sandbox))
    assert already > 0
    first = format_status(warehouse)
    assert f"0 cancellations detected, {already:,} already cancelled when first seen" in first
    today = clock.now().date()
    signature = next(o["signature"] for d, o in sandbox_days(sandbox) if d == today and not o["isCanceled"])
    sandbox.state.cancel(signature)
    clock.advance(600)
    result = sync.sync_range(client, warehouse, today, today, clock=clock.now)
    assert (result.total("cancellations_detected"), result.total("first_seen_canceled")) == (1, 0)
    assert result.total("newly_canceled") == 1
    latest = format_status(warehouse).split("last runs:")[1].splitlines()[1]
    assert "1 cancellations detected, 0 already cancelled when first seen" in latest

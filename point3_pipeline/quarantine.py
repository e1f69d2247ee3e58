"""Quarantine: records that break the contract, kept in `rejected_records` with their reason.

Nothing upstream sends is dropped or silently resolved: a record the contract check refused,
one accepted far from the window that listed it, or the differing copies of one signature in
one read are each kept here, byte for byte, with why. One row per distinct record text (keyed
by its hash): `copies` is how many byte-identical copies the latest read of its window
returned, `times_seen` how many batches of reads saw it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from importlib import resources

import duckdb
import pyarrow as pa


def record_hash(raw_text: str) -> str:
    """The key of a quarantined record: the hash of its text as kept."""
    return hashlib.md5(raw_text.encode()).hexdigest()


@dataclass(frozen=True)
class Quarantined:
    """One distinct bad record of a window read, and how many copies the latest walk had."""

    raw_text: str
    reason: str
    signature: str | None
    page: int | None
    copies: int = 1

    @property
    def record_hash(self) -> str:
        return record_hash(self.raw_text)


CONFLICT_PREFIX = "conflicting copies:"


def conflict_reason(signature: str, variants: int) -> str:
    return (
        f"{CONFLICT_PREFIX} signature {signature} came {variants} ways with different content in one read "
        "(walked again, still conflicting); none stored as the payment's content"
    )


def accept_time_reason(accepted_text: str, day: dt.date, tolerance_days: int) -> str:
    return (
        f"timeStampOnAccept {accepted_text} lies outside its window {day} "
        f"± {tolerance_days} day{'s' if tolerance_days != 1 else ''}; not booked to any day"
    )


_COLUMNS = ("record_hash", "signature", "reason", "raw_text", "endpoint", "window_date", "page", "first_run_id",
            "last_run_id", "first_rejected_at", "last_rejected_at", "times_seen", "copies")
_UPSERT = resources.files("point3_pipeline.sql").joinpath("sync", "quarantine_upsert.sql").read_text(encoding="utf-8")


def store(
    conn: duckdb.DuckDBPyConnection,
    run_id: int,
    endpoint: str,
    found: list[tuple[dt.date, dt.datetime, Quarantined]],
) -> None:
    """Upsert the batch's quarantined records: (window day, when seen, record) each, inside
    the caller's transaction. The same record from two windows of a batch counts once."""
    rows = {
        q.record_hash: (q.record_hash, q.signature, q.reason, q.raw_text, endpoint, day, q.page, run_id, run_id,
                        seen_at, seen_at, 1, q.copies)
        for day, seen_at, q in found
    }
    if not rows:
        return
    table = pa.table(list(zip(*rows.values())), names=list(_COLUMNS))
    conn.register("incoming_rejected", table)
    try:
        conn.execute(_UPSERT)
    finally:
        conn.unregister("incoming_rejected")

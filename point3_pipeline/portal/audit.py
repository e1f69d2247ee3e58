"""The portal's audit log: logins (ok, failed, locked), logouts, downloads and changes to people,
with who, when (KST), what and from where. Never a password or a hash."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from point3_pipeline.portal.store import Store, stamp

EVENTS = (
    "login_ok", "login_failed", "login_locked", "locked", "logout", "download",
    "user_added", "user_removed", "password_changed", "unlocked",
)  # fmt: skip


@dataclass(frozen=True)
class Entry:
    audit_id: int
    at: str
    user_name: str | None
    event: str
    detail: str | None
    address: str | None


def record(conn: sqlite3.Connection, store: Store, event: str, user_name: str | None, *,
           detail: str | None = None, address: str | None = None) -> None:  # fmt: skip
    """One row, in the caller's transaction (so a login and its row stand or fall together)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    conn.execute("INSERT INTO audit_log (at, user_name, event, detail, address) VALUES (?, ?, ?, ?, ?)",
                 [stamp(store.now()), user_name, event, detail, address])  # fmt: skip


def write(store: Store, event: str, user_name: str | None, *, detail: str | None = None, address: str | None = None) -> None:
    with store.connect() as conn:
        record(conn, store, event, user_name, detail=detail, address=address)


def newest(store: Store, limit: int = 50, user_name: str | None = None) -> list[Entry]:
    """The newest `limit` rows, newest first (of one person when `user_name` is given)."""
    with store.connect() as conn:
        rows = conn.execute(
            "SELECT audit_id, at, user_name, event, detail, address FROM audit_log "
            "WHERE ? IS NULL OR user_name = ? ORDER BY audit_id DESC LIMIT ?", [user_name, user_name, limit],
        ).fetchall()  # fmt: skip
    return [Entry(*row) for row in rows]

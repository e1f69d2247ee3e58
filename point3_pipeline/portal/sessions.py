"""Server-side sessions: the cookie holds a random token, the store only its SHA-256, so a copy
of the store opens no session. Each session has its own CSRF secret for its forms. A session
ends at logout, after `lifetime`, after `idle` without a request, or when the person's
password changes or the person is removed."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from point3_pipeline.portal.store import Store, stamp

TOKEN_BYTES = 32
TOUCH_EVERY = dt.timedelta(minutes=1)  # last_seen_at is written at most this often, not on every request


@dataclass(frozen=True)
class SessionPolicy:
    lifetime: dt.timedelta = dt.timedelta(hours=12)
    idle: dt.timedelta = dt.timedelta(hours=2)


@dataclass(frozen=True)
class Session:
    user_name: str
    csrf_secret: str
    token_hash: str

    def csrf_ok(self, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.csrf_secret.encode())


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(store: Store, user_name: str, address: str, policy: SessionPolicy) -> str:
    """A new session for the person; returns the token for the cookie (kept nowhere else)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = store.now()
    with store.connect() as conn:
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?", [stamp(now)])  # housekeeping, bounded by logins
        conn.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
            [token_hash(token), user_name, stamp(now), stamp(now), stamp(now + policy.lifetime),
             secrets.token_urlsafe(TOKEN_BYTES), address],
        )  # fmt: skip
    return token


def find(store: Store, token: str | None, policy: SessionPolicy) -> Session | None:
    """The live session of a cookie's token, its last-seen time moved on; None if there is none."""
    if not token or len(token) > 256:
        return None
    key = token_hash(token)
    now = store.now()
    with store.connect() as conn:
        row = conn.execute("SELECT user_name, csrf_secret, last_seen_at, expires_at FROM sessions WHERE token_hash = ?",
                           [key]).fetchone()  # fmt: skip
        if row is None:
            return None
        user_name, csrf_secret, last_seen, expires = row
        if stamp(now) >= expires or stamp(now - policy.idle) >= last_seen:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", [key])
            return None
        if stamp(now - TOUCH_EVERY) >= last_seen:
            conn.execute("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", [stamp(now), key])
    return Session(user_name, csrf_secret, key)


def end(store: Store, session: Session) -> None:
    with store.connect() as conn:
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", [session.token_hash])

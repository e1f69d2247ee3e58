"""The portal's people: who may see which merchants, their passwords, failed logins and lockouts.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory choice) and
never logged or shown; a hash is re-made at login when the parameters were raised. A failed
login is counted for the name typed (known or not, so a lockout says nothing about who exists)
and for the client address (an IPv6 address's /64): `max_failures` of either within
`failure_window` locks that name or that address for `lockout`, or until a person lifts it
(`point3 users unlock`). A name that is no user never reaches the audit log.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import sqlite3
from dataclasses import dataclass
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from point3_pipeline.portal import audit
from point3_pipeline.portal.store import Store, stamp

HASHER = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a bound keeps a login's work bounded
UNKNOWN_NAME = "unknown name"  # the audit log's stand-in for a name typed at login that is no user
ALL_MERCHANTS = "*"  # what `users list` shows for a person who may see every merchant
# A name is typed at the login form and shown in the audit log: letters, digits, . _ @ -.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class AccountError(Exception):
    """A mistake in managing people (unknown user, weak password…), in one sentence."""


@dataclass(frozen=True)
class User:
    name: str
    merchant_ids: tuple[str, ...]
    all_merchants: bool
    created_at: str
    changed_at: str

    def may_see(self, merchant_id: str) -> bool:
        return self.all_merchants or merchant_id in self.merchant_ids


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5  # of one name
    # of one address: higher, since an office's people share one address behind its NAT
    max_address_failures: int = 20
    failure_window: dt.timedelta = dt.timedelta(minutes=15)
    lockout: dt.timedelta = dt.timedelta(minutes=15)


class Outcome(Enum):
    OK = "ok"
    FAILED = "failed"
    LOCKED = "locked"


def name_problem(name: str) -> str | None:
    if not _NAME.match(name):
        return f"the user name {name!r} must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit."
    return None


def password_problem(name: str, password: str) -> str | None:
    """Why `password` is too weak for `name`, in one sentence; None when it will do."""
    if not password:
        return "the password is empty."
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters."
    if password.strip().lower() == name.lower() or len(set(password)) < 4:
        return "the password is too easy to guess: do not use the user name or a few repeated characters."
    return None


def add_user(store: Store, name: str, password: str, merchant_ids: list[str], *, all_merchants: bool = False,
             by: str | None = None, hasher: PasswordHasher = HASHER) -> None:  # fmt: skip
    """A new person who may see `merchant_ids` (or every merchant). `by`: where the change came
    from, for the audit log (e.g. "command line, OS user alice")."""
    _check_new(name, password, merchant_ids, all_merchants)
    password_hash = hasher.hash(password)
    now = stamp(store.now())
    with store.connect() as conn:
        try:
            conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?)", [name, password_hash, int(all_merchants), now, now])
        except sqlite3.IntegrityError:
            raise AccountError(f"the user {name!r} exists already: remove it first, or change its password with `point3 users passwd`.") from None
        conn.executemany("INSERT INTO user_merchants VALUES (?, ?)", [(name, m) for m in sorted(set(merchant_ids))])
        audit.record(conn, store, "user_added", name, detail=_merchants_text(merchant_ids, all_merchants), address=by)


def _check_new(name: str, password: str, merchant_ids: list[str], all_merchants: bool) -> None:
    problem = name_problem(name) or password_problem(name, password)
    if problem is None and not merchant_ids and not all_merchants:
        problem = "a user needs at least one --merchant ID (or --all-merchants)."
    if problem is None and merchant_ids and all_merchants:
        problem = "give either --merchant ID or --all-merchants, not both."
    if problem:
        raise AccountError(problem)


def _merchants_text(merchant_ids: list[str], all_merchants: bool) -> str:
    return ALL_MERCHANTS if all_merchants else ",".join(sorted(set(merchant_ids)))


def remove_user(store: Store, name: str, *, by: str | None = None) -> None:
    with store.connect() as conn:
        if conn.execute("DELETE FROM users WHERE user_name = ?", [name]).rowcount == 0:
            raise AccountError(f"there is no user {name!r} (see `point3 users list`).")
        audit.record(conn, store, "user_removed", name, address=by)


def set_password(store: Store, name: str, password: str, *, by: str | None = None,
                 hasher: PasswordHasher = HASHER) -> None:  # fmt: skip
    """A new password; the person's sessions end (whoever knew the old one is logged out)."""
    problem = password_problem(name, password)
    if problem:
        raise AccountError(problem)
    password_hash = hasher.hash(password)
    with store.connect() as conn:
        changed = conn.execute("UPDATE users SET password_hash = ?, changed_at = ? WHERE user_name = ?",
                               [password_hash, stamp(store.now()), name]).rowcount  # fmt: skip
        if changed == 0:
            raise AccountError(f"there is no user {name!r} (see `point3 users list`).")
        conn.execute("DELETE FROM sessions WHERE user_name = ?", [name])
        audit.record(conn, store, "password_changed", name, address=by)


def get_user(conn: sqlite3.Connection, name: str) -> User | None:
    row = conn.execute("SELECT user_name, all_merchants, created_at, changed_at FROM users WHERE user_name = ?", [name]).fetchone()
    if row is None:
        return None
    ids = tuple(r[0] for r in conn.execute("SELECT merchant_id FROM user_merchants WHERE user_name = ? ORDER BY 1", [name]))
    return User(row[0], ids, bool(row[1]), row[2], row[3])


def list_users(store: Store) -> list[User]:
    with store.connect() as conn:
        names = [r[0] for r in conn.execute("SELECT user_name FROM users ORDER BY user_name")]
        return [get_user(conn, name) for name in names]


def lockouts(store: Store) -> list[tuple[str, str, str]]:
    """The lockouts in force: (kind, name or address, until)."""
    with store.connect() as conn:
        return conn.execute("SELECT subject_kind, subject, locked_until FROM lockouts WHERE locked_until > ? "
                            "ORDER BY 1, 2", [stamp(store.now())]).fetchall()  # fmt: skip


def unlock(store: Store, *, name: str | None = None, address: str | None = None, by: str | None = None) -> int:
    """Lift the lockout of a name or an address, and start its count of failed logins afresh;
    how many lockouts in force were lifted (0 or 1)."""
    kind, subject = ("user", name) if name is not None else ("address", address_subject(address))
    now = stamp(store.now())
    with store.connect() as conn:
        row = conn.execute("SELECT locked_until FROM lockouts WHERE subject_kind = ? AND subject = ?", [kind, subject]).fetchone()
        if kind == "user" and row is None and get_user(conn, subject) is None:
            raise AccountError(f"there is no user {subject!r} and no lockout of that name (see `point3 users list`).")
        # Kept as a lockout that ended now: failures before it no longer count.
        conn.execute("INSERT OR REPLACE INTO lockouts VALUES (?, ?, ?, ?)", [kind, subject, now, now])
        audit.record(conn, store, "unlocked", name, detail=None if name else f"address {address}", address=by)
    return int(row is not None and row[0] > now)


def address_subject(address: str) -> str:
    """What failed logins of an address are counted against: the address, or for IPv6 its /64,
    which one client holds whole (a new address per guess must not start a new count)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def login(store: Store, name: str, password: str, address: str, policy: LoginPolicy = LoginPolicy(),
          hasher: PasswordHasher = HASHER) -> tuple[Outcome, User | None]:  # fmt: skip
    """Check a login: LOCKED (the name or the address is locked, or has as many attempts failed
    or still being checked as its limit; the password is not even tried), FAILED (counted, and
    maybe locking), or OK with the person. Audited either way.

    The attempt is counted as a failure before its hash is checked and forgiven if it matches:
    concurrent requests each see the others, so they get no more guesses than the limit."""
    now, counted = store.now(), address_subject(address)
    with store.connect() as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE user_name = ?", [name]).fetchone()
        # An unknown name is not written to the audit log: it is often a password typed in the wrong field.
        audited, detail = (name, None) if row else (None, UNKNOWN_NAME)
        if _locked(conn, now, name, counted) or _attempts_reached(conn, policy, now, name, counted):
            audit.record(conn, store, "login_locked", audited, detail=detail, address=address)
            return Outcome.LOCKED, None
        attempt = _record_attempt(conn, policy, now, name, counted)
    # The hash is checked outside the transaction: argon2 takes tens of milliseconds on purpose.
    ok, new_hash = _verify(hasher, row[0] if row else None, password)
    with store.connect() as conn:
        if not ok:
            audit.record(conn, store, "login_failed", audited, detail=detail, address=address)
            _lock_if_reached(conn, store, policy, now, (name, audited), (counted, address))
            return Outcome.FAILED, None
        if new_hash:
            conn.execute("UPDATE users SET password_hash = ? WHERE user_name = ?", [new_hash, name])
        conn.execute("DELETE FROM login_failures WHERE user_name = ? OR failure_id = ?", [name, attempt])
        audit.record(conn, store, "login_ok", name, address=address)
        return Outcome.OK, get_user(conn, name)


# Checked when the name is unknown, so an unknown name takes as long as a wrong password.
_DUMMY_HASH = HASHER.hash("point3 portal: no such user")


def _verify(hasher: PasswordHasher, password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(the password matches, a re-made hash when the parameters changed)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False, None
    try:
        hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if password_hash is None:
        return False, None
    return True, hasher.hash(password) if hasher.check_needs_rehash(password_hash) else None


def _locked(conn: sqlite3.Connection, now: dt.datetime, name: str, address: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM lockouts WHERE locked_until > ? AND ((subject_kind = 'user' AND subject = ?) "
        "OR (subject_kind = 'address' AND subject = ?))", [stamp(now), name, address],
    ).fetchone()  # fmt: skip
    return row is not None


def _record_attempt(conn: sqlite3.Connection, policy: LoginPolicy, now: dt.datetime, name: str, address: str) -> int:
    """Count an attempt as failed until its password is found right; its row's id."""
    conn.execute("DELETE FROM login_failures WHERE failed_at <= ?", [stamp(now - policy.failure_window)])  # stays small
    return conn.execute("INSERT INTO login_failures (user_name, address, failed_at) VALUES (?, ?, ?) RETURNING failure_id",
                        [name, address, stamp(now)]).fetchone()[0]  # fmt: skip


def _counts(conn: sqlite3.Connection, policy: LoginPolicy, now: dt.datetime, name: str, address: str):
    """(kind, subject, failures counted, limit) of the name and of the address. Failures count
    within the window and after the subject's last lockout began (or was lifted)."""
    since = stamp(now - policy.failure_window)
    for kind, column, subject, most in (("user", "user_name", name, policy.max_failures),
                                        ("address", "address", address, policy.max_address_failures)):  # fmt: skip
        count = conn.execute(
            f"SELECT count(*) FROM login_failures WHERE {column} = ? AND failed_at > max(?, coalesce("
            "(SELECT locked_at FROM lockouts WHERE subject_kind = ? AND subject = ?), ''))", [subject, since, kind, subject],
        ).fetchone()[0]  # fmt: skip
        yield kind, subject, count, most


def _attempts_reached(conn: sqlite3.Connection, policy: LoginPolicy, now: dt.datetime, name: str, address: str) -> bool:
    return any(count >= most for _, _, count, most in _counts(conn, policy, now, name, address))


def _lock_if_reached(conn: sqlite3.Connection, store: Store, policy: LoginPolicy, now: dt.datetime,
                     names: tuple[str, str | None], addresses: tuple[str, str]) -> None:  # fmt: skip
    """Lock the name or the address whose failures reached its limit. `names`: the name typed
    and the name for the audit log (None for an unknown name); `addresses`: the address's
    subject (address_subject) and the address itself, for the audit log."""
    (name, audited), (address, audited_address) = names, addresses
    for kind, subject, count, most in list(_counts(conn, policy, now, name, address)):
        if count >= most:
            conn.execute("INSERT OR REPLACE INTO lockouts VALUES (?, ?, ?, ?)", [kind, subject, stamp(now), stamp(now + policy.lockout)])
            shown = subject if kind == "address" or audited is not None else f"({UNKNOWN_NAME})"
            audit.record(conn, store, "locked", audited, detail=f"{kind} {shown}", address=audited_address)

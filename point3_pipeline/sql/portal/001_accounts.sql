-- The portal's own store (SQLite): people, their merchants, failed logins, lockouts, sessions
-- and the audit log. Never in a warehouse: analysts open those. Times are ISO 8601 text with
-- the +09:00 offset (KST), so text order is time order.
CREATE TABLE users (
    user_name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,        -- argon2id, with its own salt and parameters
    all_merchants INTEGER NOT NULL DEFAULT 0 CHECK (all_merchants IN (0, 1)),
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
) STRICT;

CREATE TABLE user_merchants (
    user_name TEXT NOT NULL REFERENCES users (user_name) ON DELETE CASCADE,
    merchant_id TEXT NOT NULL,
    PRIMARY KEY (user_name, merchant_id)
) STRICT;

-- One row per failed login, counted per name typed (known or not) and per client address.
CREATE TABLE login_failures (
    failure_id INTEGER PRIMARY KEY,
    user_name TEXT NOT NULL,
    address TEXT NOT NULL,
    failed_at TEXT NOT NULL
) STRICT;
CREATE INDEX login_failures_by_user ON login_failures (user_name, failed_at);
CREATE INDEX login_failures_by_address ON login_failures (address, failed_at);

-- A lockout of a name ('user') or a client address ('address') until locked_until, or until a
-- person lifts it (`point3 users unlock`).
CREATE TABLE lockouts (
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'address')),
    subject TEXT NOT NULL,
    locked_at TEXT NOT NULL,
    locked_until TEXT NOT NULL,
    PRIMARY KEY (subject_kind, subject)
) STRICT;

-- A session: the cookie's random token is kept only as its SHA-256.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (user_name) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    csrf_secret TEXT NOT NULL,
    address TEXT NOT NULL
) STRICT;
CREATE INDEX sessions_by_user ON sessions (user_name);

-- What happened, for an operator (`point3 audit`): never a password or a hash.
CREATE TABLE audit_log (
    audit_id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_name TEXT,
    event TEXT NOT NULL,
    detail TEXT,
    address TEXT
) STRICT;

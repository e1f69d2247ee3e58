-- The reconciliation's inputs that point3's API does not give: balance observations made
-- before the pipeline ran (imported from a CSV) and the merchant's bank deposits (imported
-- from the bank's 거래내역 export), each import recorded once with its counts.

CREATE SEQUENCE reconciliation_import_ids START 1;

CREATE TABLE reconciliation_imports (
    import_id BIGINT PRIMARY KEY DEFAULT nextval('reconciliation_import_ids'),
    kind VARCHAR NOT NULL CHECK (kind IN ('settlement', 'deposits')),
    file_name VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    encoding VARCHAR NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL,
    data_lines INTEGER NOT NULL,
    added INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    conflicts INTEGER NOT NULL,
    skipped INTEGER NOT NULL
);

-- Never overwritten: an imported line that duplicates a stored observation is skipped, one
-- that conflicts with it (same instant, another balance) is reported and not stored.
CREATE TABLE imported_settlement_observations (
    observed_at TIMESTAMPTZ PRIMARY KEY,
    balance BIGINT NOT NULL,
    import_id BIGINT NOT NULL,
    line_number INTEGER NOT NULL
);

-- One row per bank deposit (입금). deposit_key identifies it by content, not by its place in a
-- file: re-importing the same or an overlapping export adds nothing twice.
CREATE TABLE bank_deposits (
    deposit_key VARCHAR PRIMARY KEY,
    deposited_at TIMESTAMPTZ NOT NULL,
    deposit_date DATE NOT NULL,
    time_known BOOLEAN NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    summary VARCHAR,
    memo VARCHAR,
    branch VARCHAR,
    account_balance BIGINT,
    import_id BIGINT NOT NULL,
    line_number INTEGER NOT NULL
);

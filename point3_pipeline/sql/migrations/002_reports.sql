-- Rendered report workbooks. A month's report gets a new version only when the data it rests
-- on changed (fingerprint); earlier files are kept, so an accountant's copy stays citable.
CREATE TABLE report_versions (
    kind VARCHAR NOT NULL,              -- 'tax' | 'reconciliation'
    month DATE NOT NULL,                -- first day of the KST month
    version INTEGER NOT NULL,
    fingerprint VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,         -- relative to the reports directory
    created_at TIMESTAMPTZ NOT NULL,
    as_of TIMESTAMPTZ,                  -- oldest last complete sync among the month's days
    newest_sync_at TIMESTAMPTZ,
    days_synced INTEGER NOT NULL,
    days_in_month INTEGER NOT NULL,
    is_final BOOLEAN NOT NULL,
    changes INTEGER NOT NULL,
    totals JSON NOT NULL,               -- {name: won or count}, integers only
    PRIMARY KEY (kind, month, version)
);

-- The month's payments as a version showed them, so the next version can list what changed.
CREATE TABLE report_payment_snapshots (
    kind VARCHAR NOT NULL,
    month DATE NOT NULL,
    version INTEGER NOT NULL,
    signature VARCHAR NOT NULL,
    payment_date DATE NOT NULL,
    total_charge BIGINT NOT NULL,
    tax_free_amount BIGINT NOT NULL,
    vat BIGINT NOT NULL,
    culture_expense_type VARCHAR,
    is_canceled BOOLEAN NOT NULL,
    PRIMARY KEY (kind, month, version, signature)
);

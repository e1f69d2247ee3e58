-- Report versions keyed by period (month, quarter, half-year, year), so a quarter's VAT
-- workbook and a month's never collide. Existing rows were months: their period is the month's
-- label (YYYY-MM). DuckDB cannot change a key column in place: the tables are rebuilt.
CREATE TABLE report_versions_006 (
    kind VARCHAR NOT NULL,              -- 'tax' (month) | 'vat' (quarter, half-year, year) | 'reconciliation'
    period VARCHAR NOT NULL,            -- the period's label: 2026-11, 2026-Q3, 2026-H2, 2026
    period_first DATE NOT NULL,         -- its first KST day
    period_last DATE NOT NULL,          -- its last KST day (inclusive)
    version INTEGER NOT NULL,
    fingerprint VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,         -- relative to the reports directory
    created_at TIMESTAMPTZ NOT NULL,
    as_of TIMESTAMPTZ,                  -- oldest last complete sync among the period's days
    newest_sync_at TIMESTAMPTZ,
    days_synced INTEGER NOT NULL,
    days_in_period INTEGER NOT NULL,
    is_final BOOLEAN NOT NULL,
    changes INTEGER NOT NULL,
    totals JSON NOT NULL,               -- {name: won or count}, integers only
    PRIMARY KEY (kind, period, version)
);

INSERT INTO report_versions_006
SELECT kind, strftime(month, '%Y-%m'), month, CAST(month + INTERVAL 1 MONTH - INTERVAL 1 DAY AS DATE), version,
       fingerprint, file_name, created_at, as_of, newest_sync_at, days_synced, days_in_month, is_final, changes, totals
FROM report_versions;

CREATE TABLE report_payment_snapshots_006 (
    kind VARCHAR NOT NULL,
    period VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    signature VARCHAR NOT NULL,
    payment_date DATE NOT NULL,
    total_charge BIGINT NOT NULL,
    tax_free_amount BIGINT NOT NULL,
    vat BIGINT NOT NULL,
    culture_expense_type VARCHAR,
    is_canceled BOOLEAN NOT NULL,
    PRIMARY KEY (kind, period, version, signature)
);

INSERT INTO report_payment_snapshots_006
SELECT kind, strftime(month, '%Y-%m'), version, signature, payment_date, total_charge, tax_free_amount, vat,
       culture_expense_type, is_canceled
FROM report_payment_snapshots;

DROP TABLE report_payment_snapshots;
DROP TABLE report_versions;
ALTER TABLE report_versions_006 RENAME TO report_versions;
ALTER TABLE report_payment_snapshots_006 RENAME TO report_payment_snapshots;

-- The filing movements a tax or VAT workbook version showed (a sale on its payment day, a
-- cancellation on the day it belongs to), so the next version can say what changed and why.
CREATE TABLE report_filing_snapshots (
    kind VARCHAR NOT NULL,
    period VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    signature VARCHAR NOT NULL,
    movement VARCHAR NOT NULL CHECK (movement IN ('sale', 'cancellation')),
    filing_date DATE NOT NULL,
    business_key VARCHAR NOT NULL,      -- business_id, or 'undeclared:' || business_name
    tax_class VARCHAR NOT NULL,
    class_source VARCHAR NOT NULL,
    payment_method_type VARCHAR,
    total_charge BIGINT NOT NULL,       -- signed: a cancellation is negative
    taxable_supply BIGINT NOT NULL,
    vat BIGINT NOT NULL,
    exempt_amount BIGINT NOT NULL,
    unclassified_amount BIGINT NOT NULL,
    cancel_date_unknown BOOLEAN NOT NULL,
    PRIMARY KEY (kind, period, version, signature, movement)
);

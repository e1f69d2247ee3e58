-- Core tables: what the sync writes. Money is BIGINT won; times are TIMESTAMPTZ (instants,
-- shown in Asia/Seoul by our connections); days are KST calendar days.

CREATE TABLE culture_expense_types (
    culture_expense_type VARCHAR PRIMARY KEY,
    name_ko VARCHAR NOT NULL,
    name_en VARCHAR NOT NULL,
    deduction_group VARCHAR NOT NULL,
    deduction_group_en VARCHAR NOT NULL,
    sort_order INTEGER NOT NULL
);

INSERT INTO culture_expense_types VALUES
    ('a', '소득공제용 일반', 'income deduction: general', '소득공제', 'income deduction', 1),
    ('b', '소득공제용 공연', 'income deduction: performances', '소득공제', 'income deduction', 2),
    ('c', '소득공제용 대중교통', 'income deduction: public transport', '소득공제', 'income deduction', 3),
    ('d', '지출증빙용 일반', 'expense proof: general', '지출증빙', 'expense proof', 4),
    ('f', '지출증빙용 공연', 'expense proof: performances', '지출증빙', 'expense proof', 5),
    ('g', '지출증빙용 대중교통', 'expense proof: public transport', '지출증빙', 'expense proof', 6),
    ('unknown', '유형 미상', 'type unknown', '미상', 'unknown', 7);

CREATE SEQUENCE sync_run_ids START 1;

CREATE TABLE sync_runs (
    run_id BIGINT PRIMARY KEY,
    mode VARCHAR NOT NULL,
    first_day DATE NOT NULL,
    last_day DATE NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status VARCHAR NOT NULL,
    windows_planned INTEGER NOT NULL,
    windows_done INTEGER NOT NULL DEFAULT 0,
    pages INTEGER NOT NULL DEFAULT 0,
    records_read INTEGER NOT NULL DEFAULT 0,
    payments_new INTEGER NOT NULL DEFAULT 0,
    payments_changed INTEGER NOT NULL DEFAULT 0,
    newly_canceled INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    error VARCHAR
);

CREATE TABLE sync_windows (
    run_id BIGINT NOT NULL,
    window_date DATE NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    walks INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    records_read INTEGER NOT NULL,
    distinct_payments INTEGER NOT NULL,
    payments_new INTEGER NOT NULL,
    payments_changed INTEGER NOT NULL,
    newly_canceled INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    is_complete BOOLEAN NOT NULL,
    incomplete_reason VARCHAR,
    PRIMARY KEY (run_id, window_date)
);

CREATE TABLE payments (
    signature VARCHAR PRIMARY KEY,
    payment_date DATE NOT NULL,
    accepted_at TIMESTAMPTZ,
    requested_at TIMESTAMPTZ,
    total_charge BIGINT NOT NULL,
    tax_free_amount BIGINT NOT NULL,
    vat BIGINT NOT NULL,
    culture_expense_type VARCHAR,
    payment_method_type VARCHAR,
    is_canceled BOOLEAN NOT NULL,
    canceled_detected_at TIMESTAMPTZ,
    order_id_from_client VARCHAR,
    purchasing_product_name VARCHAR,
    user_id VARCHAR,
    client_generated_user_id VARCHAR,
    client_nickname VARCHAR,
    client_identification VARCHAR,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_active_at TIMESTAMPTZ,
    first_seen_run_id BIGINT NOT NULL,
    last_seen_run_id BIGINT NOT NULL,
    record_hash VARCHAR NOT NULL,
    raw_record JSON NOT NULL
);

-- Append-only: one row each time a sync first sees a payment or sees it differ.
CREATE TABLE payment_events (
    signature VARCHAR NOT NULL,
    run_id BIGINT NOT NULL,
    observed_at TIMESTAMPTZ NOT NULL,
    event VARCHAR NOT NULL,
    is_canceled BOOLEAN NOT NULL,
    previous_seen_at TIMESTAMPTZ,
    previous_active_at TIMESTAMPTZ,
    previous_record JSON
);

CREATE TABLE rejected_records (
    record_hash VARCHAR PRIMARY KEY,
    signature VARCHAR,
    reason VARCHAR NOT NULL,
    raw_text VARCHAR NOT NULL,
    endpoint VARCHAR NOT NULL,
    window_date DATE,
    page INTEGER,
    first_run_id BIGINT NOT NULL,
    last_run_id BIGINT NOT NULL,
    first_rejected_at TIMESTAMPTZ NOT NULL,
    last_rejected_at TIMESTAMPTZ NOT NULL,
    times_seen INTEGER NOT NULL
);

CREATE TABLE settlement_observations (
    observed_at TIMESTAMPTZ PRIMARY KEY,
    balance BIGINT NOT NULL
);

CREATE VIEW sync_coverage AS
WITH windows AS (
    SELECT window_date, finished_at, is_complete, run_id FROM sync_windows
),
final AS (
    SELECT
        window_date,
        max(finished_at) FILTER (WHERE is_complete) AS last_complete_sync_at,
        max(finished_at) AS last_sync_at,
        arg_max(run_id, finished_at) AS last_run_id,
        count(*) AS syncs,
        bool_or(is_complete) AS is_complete
    FROM windows
    GROUP BY window_date
)
SELECT * FROM final ORDER BY window_date;

CREATE VIEW vat_rule_violations AS
SELECT signature, payment_date, total_charge, tax_free_amount, vat,
       total_charge - tax_free_amount - vat AS difference
FROM payments
WHERE tax_free_amount + vat <> total_charge;

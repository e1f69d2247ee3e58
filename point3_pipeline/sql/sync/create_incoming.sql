-- The batch's typed payments, filled one window at a time by stage_incoming.sql: each
-- payments column the record fills, with the payments table's own types, and the window's
-- keys. Created outside the batch's transaction, so a redo of the transaction finds it.
CREATE OR REPLACE TEMP TABLE incoming AS
SELECT
    p.* EXCLUDE (canceled_detected_at, first_seen_at, last_seen_at, last_seen_active_at, first_seen_run_id,
                 last_seen_run_id),
    CAST(NULL AS DATE) AS source_day,
    CAST(NULL AS TIMESTAMPTZ) AS observed_at,
    CAST(NULL AS TIMESTAMPTZ) AS active_seen_at
FROM payments AS p
LIMIT 0;

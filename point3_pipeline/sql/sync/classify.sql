-- What each incoming payment is to the warehouse: new, changed (and how) or seen again, with
-- the stored values the later statements keep. Narrow on purpose: the wide columns stay in
-- `incoming`. $restrict looks stored payments up only near the batch's days ($low..$high):
-- DuckDB prunes row groups by payment_date, so the cost follows the batch, not the history.
CREATE OR REPLACE TEMP TABLE batch_changes AS
WITH incoming_keys AS (
    SELECT signature, source_day, observed_at, active_seen_at, is_canceled, accepted_at IS NULL AS lacks_accept_time,
           record_hash, payment_date
    FROM incoming
),
stored AS (
    SELECT signature, is_canceled, record_hash, payment_date, canceled_detected_at, last_seen_at, last_seen_active_at
    FROM payments AS p
    WHERE ($restrict AND p.payment_date BETWEEN $low AND $high) OR NOT $restrict
),
final AS (
    SELECT
        i.*,
        s.signature IS NULL AS is_new,
        s.signature IS NOT NULL AND i.record_hash <> s.record_hash AS is_changed,
        s.is_canceled AS was_canceled,
        s.payment_date AS previous_date,
        s.canceled_detected_at AS previous_canceled_detected_at,
        s.last_seen_at AS previous_seen_at,
        s.last_seen_active_at AS previous_active_at
    FROM incoming_keys AS i
    LEFT JOIN stored AS s USING (signature)
)
SELECT * FROM final;

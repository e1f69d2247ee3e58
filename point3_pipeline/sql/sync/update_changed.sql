-- Stored payments whose record changed: their new content (every field BY NAME from
-- `incoming`) and last-seen marks; the columns not listed (first seen) stay as stored.
MERGE INTO payments AS p
USING (
    SELECT
        i.* EXCLUDE (source_day, observed_at, active_seen_at, payment_date),
        -- a record without an accept time returned by two windows (exactly at midnight)
        -- belongs to the later day, whichever batch brought it
        CASE WHEN i.accepted_at IS NULL THEN greatest(c.previous_date, i.payment_date) ELSE i.payment_date END
            AS payment_date,
        CASE WHEN i.is_canceled THEN coalesce(c.previous_canceled_detected_at, i.observed_at) END
            AS canceled_detected_at,
        i.observed_at AS last_seen_at,
        $run_id AS last_seen_run_id,
        CASE WHEN i.is_canceled THEN c.previous_active_at ELSE i.active_seen_at END AS last_seen_active_at
    FROM incoming AS i
    JOIN batch_changes AS c USING (signature)
    WHERE c.is_changed
) AS changed
ON p.signature = changed.signature AND (($restrict AND p.payment_date BETWEEN $low AND $high) OR NOT $restrict)
WHEN MATCHED THEN UPDATE BY NAME;

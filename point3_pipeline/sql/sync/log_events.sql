-- One event per payment first seen or seen different, with the content it had before.
INSERT INTO payment_events
WITH previous AS (
    SELECT signature, raw_record
    FROM payments AS p
    WHERE (($restrict AND p.payment_date BETWEEN $low AND $high) OR NOT $restrict)
      AND signature IN (SELECT signature FROM batch_changes WHERE is_changed)
)
SELECT
    c.signature,
    $run_id,
    c.observed_at,
    CASE
        WHEN c.is_new THEN 'first_seen'
        WHEN c.is_canceled AND NOT c.was_canceled THEN 'canceled'
        WHEN c.was_canceled AND NOT c.is_canceled THEN 'uncanceled'
        ELSE 'changed'
    END,
    c.is_canceled,
    c.previous_seen_at,
    c.previous_active_at,
    previous.raw_record
FROM batch_changes AS c
LEFT JOIN previous USING (signature)
WHERE c.is_new OR c.is_changed;

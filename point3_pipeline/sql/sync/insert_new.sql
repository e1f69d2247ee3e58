-- New payments, every field BY NAME from `incoming`. A stored payment the classification
-- missed (stored far from its window's day) makes this hit the primary key: the caller then
-- redoes the batch with the exact lookup.
INSERT INTO payments BY NAME
SELECT
    i.* EXCLUDE (source_day, observed_at, active_seen_at),
    i.observed_at AS first_seen_at,
    i.observed_at AS last_seen_at,
    CASE WHEN NOT i.is_canceled THEN i.active_seen_at END AS last_seen_active_at,
    CASE WHEN i.is_canceled THEN i.observed_at END AS canceled_detected_at,
    $run_id AS first_seen_run_id,
    $run_id AS last_seen_run_id
FROM incoming AS i
JOIN batch_changes AS c USING (signature)
WHERE c.is_new;

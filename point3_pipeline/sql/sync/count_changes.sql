-- Per window day: payments new, changed, cancellations detected (a stored payment now seen
-- cancelled) and payments already cancelled the first time they were seen.
SELECT
    source_day,
    count(*) FILTER (WHERE is_new),
    count(*) FILTER (WHERE is_changed),
    count(*) FILTER (WHERE NOT is_new AND is_canceled AND NOT was_canceled),
    count(*) FILTER (WHERE is_new AND is_canceled)
FROM batch_changes
GROUP BY source_day;

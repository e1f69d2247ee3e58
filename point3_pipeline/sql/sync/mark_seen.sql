-- Stored payments seen again unchanged: their last-seen marks.
UPDATE payments AS p SET
    last_seen_at = c.observed_at,
    last_seen_run_id = $run_id,
    last_seen_active_at = CASE WHEN c.is_canceled THEN p.last_seen_active_at ELSE c.active_seen_at END,
    -- see update_changed.sql: without an accept time, the later of two midnight windows
    payment_date = CASE WHEN c.lacks_accept_time THEN greatest(p.payment_date, c.source_day) ELSE p.payment_date END
FROM batch_changes AS c
WHERE p.signature = c.signature AND NOT c.is_new AND NOT c.is_changed
  AND (($restrict AND p.payment_date BETWEEN $low AND $high) OR NOT $restrict);

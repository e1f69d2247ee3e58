-- The batch's quarantined records (registered as incoming_rejected), one row per record text.
-- Seen again: the latest read's reason, place and copies, one more time seen.
INSERT INTO rejected_records BY NAME
SELECT * FROM incoming_rejected
ON CONFLICT (record_hash) DO UPDATE SET
    reason = excluded.reason,
    window_date = excluded.window_date,
    page = excluded.page,
    last_run_id = excluded.last_run_id,
    last_rejected_at = excluded.last_rejected_at,
    times_seen = rejected_records.times_seen + 1,
    copies = excluded.copies;

-- Add a batch's windows to its run's totals.
UPDATE sync_runs SET
    windows_done = windows_done + $windows,
    pages = pages + $pages,
    records_read = records_read + $records_read,
    payments_new = payments_new + $payments_new,
    payments_changed = payments_changed + $payments_changed,
    newly_canceled = newly_canceled + $newly_canceled,
    rejected = rejected + $rejected,
    retries = retries + $retries
WHERE run_id = $run_id;

INSERT INTO sync_runs (run_id, mode, first_day, last_day, started_at, status, windows_planned)
VALUES (nextval('sync_run_ids'), $mode, $first_day, $last_day, $started_at, 'running', $planned)
RETURNING run_id;

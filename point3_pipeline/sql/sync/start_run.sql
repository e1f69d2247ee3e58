-- A new run. One writer at a time is the deployment's rule (and DuckDB's lock), so a run
-- still 'running' when another starts died mid-way.
UPDATE sync_runs SET status = 'interrupted', error = 'the process ended before the run finished'
WHERE status = 'running';

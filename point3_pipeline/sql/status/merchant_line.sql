-- One merchant's line of `point3 status --all`: its last run, quarantined and unclassified
-- records and its latest settlement balance (one row, whatever the warehouse holds).
WITH last_run AS (
    SELECT run_id, mode, status, started_at, finished_at, error
    FROM sync_runs
    ORDER BY run_id DESC
    LIMIT 1
),
rejected AS (
    SELECT CAST(coalesce(sum(copies), 0) AS BIGINT) AS records FROM rejected_records
),
unclassified AS (
    SELECT count(*) AS payments FROM payment_tax_split WHERE tax_class = 'unclassified'
),
balance AS (
    SELECT observed_at, balance
    FROM settlement_observations
    ORDER BY observed_at DESC
    LIMIT 1
),
final AS (
    SELECT r.run_id, r.mode, r.status, r.started_at, r.finished_at, r.error,
           q.records AS rejected, u.payments AS unclassified, b.observed_at, b.balance
    FROM rejected AS q
    CROSS JOIN unclassified AS u
    LEFT JOIN last_run AS r ON true
    LEFT JOIN balance AS b ON true
)
SELECT * FROM final

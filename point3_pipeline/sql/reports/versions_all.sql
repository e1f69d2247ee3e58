-- Every recorded version, newest period first (a year after its halves, quarters and months).
SELECT kind, period_first, version, file_name, created_at, as_of, newest_sync_at, days_synced, days_in_period,
       is_final, changes, CAST(totals AS VARCHAR) AS totals
FROM report_versions
ORDER BY period_last DESC, period_first, kind DESC, version DESC;

-- The newest version of a workbook ($kind, $period).
SELECT version, fingerprint, file_name, created_at, as_of, days_synced, days_in_period, is_final, changes,
       CAST(totals AS VARCHAR) AS totals
FROM report_versions WHERE kind = $kind AND period = $period
ORDER BY version DESC LIMIT 1;

-- Record a written workbook version.
INSERT INTO report_versions (kind, period, period_first, period_last, version, fingerprint, file_name, created_at,
                             as_of, newest_sync_at, days_synced, days_in_period, is_final, changes, totals)
VALUES ($kind, $period, $first, $last, $version, $fingerprint, $file_name, $created_at, $as_of, $newest_sync_at,
        $days_synced, $days_in_period, $is_final, $changes, $totals);

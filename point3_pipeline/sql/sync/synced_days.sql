-- The synced days between $first and $last: the one definition, the sync_coverage view.
SELECT window_date FROM sync_coverage
WHERE is_complete AND window_date BETWEEN $first AND $last
ORDER BY window_date;

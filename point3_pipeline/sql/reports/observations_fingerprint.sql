-- The settlement observations a reconciliation workbook rests on: the period's and the last before it.
SELECT coalesce(md5(string_agg(concat_ws('|', observed_at, balance), chr(10) ORDER BY observed_at)), '')
FROM settlement_observations
WHERE observed_at < $end AND observed_at >= coalesce(
    (SELECT max(observed_at) FROM settlement_observations WHERE observed_at < $start), $start);

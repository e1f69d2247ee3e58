-- The totals a (reconciliation) workbook version's payments add up to ($kind, $period, $version).
SELECT
    CAST(count(*) AS BIGINT) AS payment_count,
    coalesce(sum(total_charge), 0) AS total_charge,
    coalesce(sum(vat), 0) AS vat,
    CAST(count(*) FILTER (WHERE is_canceled) AS BIGINT) AS canceled_count,
    coalesce(sum(total_charge) FILTER (WHERE is_canceled), 0) AS canceled_total
FROM report_payment_snapshots
WHERE kind = $kind AND period = $period AND version = $version;

-- A month's payments by payment day ($first .. $last): gross, cancelled now and net counts and
-- sums (the reconciliation workbook's payment figures), and the earlier months' payments whose
-- cancellation was seen happening in this month (still cancelled). Sums HUGEINT, counts BIGINT.
WITH month_payments AS (
    SELECT total_charge, vat, is_canceled FROM payments WHERE payment_date BETWEEN $first AND $last
),

earlier AS (
    SELECT total_charge FROM cancellations
    WHERE detected_date BETWEEN $first AND $last AND payment_date < $first AND is_canceled_now
      AND NOT first_seen_canceled
),

sums AS (
    SELECT
        CAST(count(*) AS BIGINT) AS payment_count,
        coalesce(sum(total_charge), 0) AS total_charge,
        coalesce(sum(vat), 0) AS vat,
        CAST(count(*) FILTER (WHERE is_canceled) AS BIGINT) AS canceled_count,
        coalesce(sum(total_charge) FILTER (WHERE is_canceled), 0) AS canceled_total,
        CAST(count(*) FILTER (WHERE NOT is_canceled) AS BIGINT) AS net_count,
        coalesce(sum(total_charge) FILTER (WHERE NOT is_canceled), 0) AS net_total
    FROM month_payments
),

earlier_sums AS (
    SELECT CAST(count(*) AS BIGINT) AS earlier_canceled_count, coalesce(sum(total_charge), 0) AS earlier_canceled_total
    FROM earlier
),

final AS (
    SELECT * FROM sums, earlier_sums
)

SELECT * FROM final;

-- The inputs of a tax or VAT workbook's 검증 that are not its movements: rejected records of
-- its days, repeated orderIds (checked against all payments, so earlier periods matter too)
-- and reverted cancellations touching it.
WITH rejected AS (
    SELECT coalesce(md5(string_agg(concat_ws('|', record_hash, reason, copies), chr(10) ORDER BY record_hash)), '') AS digest
    FROM rejected_records WHERE window_date BETWEEN $first AND $last
),

order_ids AS (
    SELECT coalesce(md5(string_agg(concat_ws('|', order_id_from_client, n), chr(10) ORDER BY order_id_from_client)), '')
        AS digest
    FROM (SELECT order_id_from_client, count(*) AS n FROM payments
          WHERE order_id_from_client IN (SELECT order_id_from_client FROM filing_movements)
          GROUP BY ALL)
),

anomalies AS (
    SELECT coalesce(md5(string_agg(concat_ws('|', signature, detected_at, reverted_at), chr(10) ORDER BY signature)), '')
        AS digest
    FROM cancellations
    WHERE is_anomaly AND (payment_date BETWEEN $first AND $last OR detected_date BETWEEN $first AND $last)
),

final AS (
    SELECT rejected.digest || '/' || order_ids.digest || '/' || anomalies.digest AS digest
    FROM rejected, order_ids, anomalies
)

SELECT digest FROM final;

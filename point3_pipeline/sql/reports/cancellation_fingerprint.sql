-- The cancellations of a period's payments or detected in it (the reconciliation workbook).
SELECT coalesce(md5(string_agg(
    concat_ws('|', signature, payment_date, detected_at, canceled_after, is_canceled_now, is_anomaly,
              total_charge, tax_free_amount, vat),
    chr(10) ORDER BY signature)), '')
FROM cancellations
WHERE payment_date BETWEEN $first AND $last OR detected_date BETWEEN $first AND $last;

-- What a period's payment rows look like, in a stable order (the reconciliation workbook).
SELECT coalesce(md5(string_agg(
    concat_ws('|', signature, payment_date, accepted_at, total_charge, tax_free_amount, vat,
              culture_expense_type, payment_method_type, is_canceled, canceled_detected_at,
              order_id_from_client, purchasing_product_name, client_nickname, client_identification),
    chr(10) ORDER BY signature)), '')
FROM payments WHERE payment_date BETWEEN $first AND $last;

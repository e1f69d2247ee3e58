-- What a tax or VAT workbook shows of its period's movements, hashed in a stable order: a new
-- version is written only when this (or another fingerprint part) changes. A later period's
-- cancellation of this period's payment is not here: it belongs to that period.
WITH movements AS (
    SELECT * FROM filing_movements
),

businesses AS (
    SELECT coalesce(md5(string_agg(
        concat_ws('|', sheet_key, business_key, business_name, registration_number, taxpayer_type, sales_taxation),
        chr(10) ORDER BY sheet_key)), '') AS digest
    FROM filing_businesses
),

-- one md5 per row, then one over them: a year of rows never becomes one string in memory
rows AS (
    SELECT coalesce(md5(string_agg(md5(
        concat_ws('|', signature, movement, filing_date, business_key, business_name, payment_date, accepted_at,
                  order_id_from_client, purchasing_product_name, payment_method_type, tax_class, class_source,
                  classification_note, classified_by, culture_key, total_charge, taxable_supply, vat, exempt_amount,
                  unclassified_amount, cancel_date_unknown, straddles_period, canceled_after, canceled_detected_at)),
        '' ORDER BY signature, movement)), '') AS digest
    FROM movements
),

final AS (
    SELECT md5(businesses.digest || '/' || rows.digest) AS fingerprint FROM businesses, rows
)

SELECT fingerprint FROM final;

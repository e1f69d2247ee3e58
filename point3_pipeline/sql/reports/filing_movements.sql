-- The filing movements of one period ($first .. $last, KST days), into a temp table the tax and
-- VAT workbooks read (detail sheet, figures, fingerprint, snapshot): every sale accepted in the
-- period, and every cancellation that belongs to it (korean-vat.md, "Where a cancellation
-- belongs": the day of its detection, or its payment's day when it was already cancelled when
-- first seen, 취소일 미상). A cancellation's amounts are negative, so a period's figure is the
-- plain sum of its movements. Built from payment_tax_split only, the one source.
-- Keys used by the workbook's formulas (business_key, method_key, culture_key, tax_class) are
-- never API text: a SUMIFS criterion reads * ? ~ and a leading = < > as operators.
CREATE OR REPLACE TEMP TABLE filing_movements AS
WITH split AS (
    SELECT signature, payment_date, accepted_at, business_id, business_name, registration_number, taxpayer_type,
           payment_method_type, payment_method_name, is_unknown_method, payment_method_sort_order,
           culture_expense_type, tax_class, tax_class_name, tax_class_sort_order, class_source, classification_note,
           classified_by, total_charge, taxable_supply, vat, exempt_amount, unclassified_amount, is_canceled,
           cancel_date, cancel_date_unknown, canceled_after, canceled_detected_at
    FROM payment_tax_split
),

cultures AS (
    SELECT culture_expense_type FROM culture_expense_types WHERE culture_expense_type <> 'unknown'
),

payments AS (
    SELECT signature, order_id_from_client, purchasing_product_name, first_seen_at FROM payments
),

sales AS (
    SELECT 'sale' AS movement, payment_date AS filing_date, 1 AS sign, *
    FROM split
    WHERE payment_date BETWEEN $first AND $last
),

cancellations AS (
    SELECT 'cancellation' AS movement, cancel_date AS filing_date, -1 AS sign, *
    FROM split
    WHERE is_canceled AND cancel_date BETWEEN $first AND $last
),

movements AS (
    SELECT * FROM sales
    UNION ALL
    SELECT * FROM cancellations
),

final AS (
    SELECT
        m.movement,
        m.filing_date,
        coalesce(m.business_id, 'undeclared:' || coalesce(m.business_name, '')) AS business_key,
        m.business_id,
        m.business_name,
        m.registration_number,
        m.taxpayer_type,
        m.signature,
        m.payment_date,
        m.accepted_at,
        p.order_id_from_client,
        p.purchasing_product_name,
        p.first_seen_at,
        m.payment_method_type,
        m.payment_method_name,
        m.is_unknown_method,
        m.payment_method_sort_order,
        CASE WHEN NOT m.is_unknown_method THEN m.payment_method_type
             WHEN m.payment_method_type IS NULL THEN 'NONE'
             ELSE 'OTHER-' || left(md5(m.payment_method_type), 10) END AS method_key,
        m.tax_class,
        m.tax_class_name,
        m.tax_class_sort_order,
        m.class_source,
        m.classification_note,
        m.classified_by,
        CASE WHEN c.culture_expense_type IS NULL THEN 'unknown' ELSE c.culture_expense_type END AS culture_key,
        CAST(m.sign * m.total_charge AS BIGINT) AS total_charge,
        CAST(m.sign * m.taxable_supply AS BIGINT) AS taxable_supply,
        CAST(m.sign * m.vat AS BIGINT) AS vat,
        CAST(m.sign * m.exempt_amount AS BIGINT) AS exempt_amount,
        CAST(m.sign * m.unclassified_amount AS BIGINT) AS unclassified_amount,
        m.movement = 'cancellation' AND m.cancel_date_unknown AS cancel_date_unknown,
        -- seen happening, but its lower bound lies before the period: it may belong to the one before
        m.movement = 'cancellation' AND NOT m.cancel_date_unknown
            AND CAST(m.canceled_after AS DATE) < $first AS straddles_period,
        CASE WHEN m.movement = 'cancellation' THEN m.canceled_after END AS canceled_after,
        CASE WHEN m.movement = 'cancellation' THEN m.canceled_detected_at END AS canceled_detected_at
    FROM movements AS m
    LEFT JOIN payments AS p USING (signature)
    LEFT JOIN cultures AS c ON c.culture_expense_type = m.culture_expense_type
)

SELECT * FROM final;

-- Filing figures per business, KST day, tax class and payment method (korean-vat.md, "Where a
-- cancellation belongs"): the payments accepted that day, and the cancellations that belong to
-- that day. A cancellation seen happening belongs to the day of its detection; one already
-- cancelled when first seen belongs to its payment's own day (취소일 미상). net = sales −
-- cancellations, so a closed day's figures do not change when a later cancellation arrives.
-- Built from payment_tax_split only. Sums are HUGEINT, counts BIGINT.
CREATE OR REPLACE TABLE tax_filing_daily AS
WITH split AS (
    SELECT business_id, business_name, registration_number, taxpayer_type, payment_date, tax_class,
           tax_class_name, tax_class_sort_order, payment_method_type, payment_method_name, is_unknown_method,
           payment_method_sort_order, total_charge, taxable_supply, vat, exempt_amount, unclassified_amount,
           is_canceled, cancel_date, cancel_date_unknown, cancel_straddles_month
    FROM payment_tax_split
),

-- One row per sale on its payment day, one per cancellation on the day it belongs to.
movements AS (
    SELECT * EXCLUDE (payment_date, cancel_date), payment_date AS filing_date, false AS is_cancellation
    FROM split
    UNION ALL BY NAME
    SELECT * EXCLUDE (payment_date, cancel_date), cancel_date AS filing_date, true AS is_cancellation
    FROM split
    WHERE is_canceled
),

sums AS (
    SELECT
        business_id,
        business_name,
        registration_number,
        taxpayer_type,
        filing_date,
        CAST(date_trunc('month', filing_date) AS DATE) AS filing_month,
        tax_class,
        tax_class_name,
        tax_class_sort_order,
        payment_method_type,
        payment_method_name,
        is_unknown_method,
        payment_method_sort_order,
        count(*) FILTER (WHERE NOT is_cancellation) AS payment_count,
        CAST(coalesce(sum(taxable_supply) FILTER (WHERE NOT is_cancellation), 0) AS HUGEINT) AS taxable_supply,
        CAST(coalesce(sum(vat) FILTER (WHERE NOT is_cancellation), 0) AS HUGEINT) AS vat,
        CAST(coalesce(sum(exempt_amount) FILTER (WHERE NOT is_cancellation), 0) AS HUGEINT) AS exempt_amount,
        CAST(coalesce(sum(unclassified_amount) FILTER (WHERE NOT is_cancellation), 0) AS HUGEINT) AS unclassified_amount,
        CAST(coalesce(sum(total_charge) FILTER (WHERE NOT is_cancellation), 0) AS HUGEINT) AS total_charge,
        count(*) FILTER (WHERE is_cancellation) AS canceled_count,
        CAST(coalesce(sum(taxable_supply) FILTER (WHERE is_cancellation), 0) AS HUGEINT) AS canceled_taxable_supply,
        CAST(coalesce(sum(vat) FILTER (WHERE is_cancellation), 0) AS HUGEINT) AS canceled_vat,
        CAST(coalesce(sum(exempt_amount) FILTER (WHERE is_cancellation), 0) AS HUGEINT) AS canceled_exempt_amount,
        CAST(coalesce(sum(unclassified_amount) FILTER (WHERE is_cancellation), 0) AS HUGEINT) AS canceled_unclassified_amount,
        CAST(coalesce(sum(total_charge) FILTER (WHERE is_cancellation), 0) AS HUGEINT) AS canceled_total,
        count(*) FILTER (WHERE is_cancellation AND cancel_date_unknown) AS canceled_date_unknown_count,
        count(*) FILTER (WHERE is_cancellation AND cancel_straddles_month) AS canceled_straddling_count
    FROM movements
    GROUP BY ALL
),

final AS (
    SELECT
        *,
        CAST(taxable_supply - canceled_taxable_supply AS HUGEINT) AS net_taxable_supply,
        CAST(vat - canceled_vat AS HUGEINT) AS net_vat,
        CAST(exempt_amount - canceled_exempt_amount AS HUGEINT) AS net_exempt_amount,
        CAST(unclassified_amount - canceled_unclassified_amount AS HUGEINT) AS net_unclassified_amount,
        CAST(total_charge - canceled_total AS HUGEINT) AS net_total
    FROM sums
)

SELECT * FROM final
ORDER BY business_id NULLS LAST, business_name NULLS LAST, filing_date, tax_class_sort_order,
         payment_method_sort_order, payment_method_type;

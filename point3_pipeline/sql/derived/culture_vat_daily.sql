-- Culture-expense type x the tax split per KST payment day: how much of each culture-expense
-- code (the buyer's deduction, not a VAT class) is taxable supply, VAT, exempt or unclassified.
-- Built from payment_tax_split, the one source of the split, so it is rebuilt after it. Gross
-- figures count every payment of the day; cancelled ones are also summed apart (on the
-- payment's day: this is the payment-day view, not the filing view of tax_filing_daily), and
-- net = gross − cancelled. Payments without a type land in the 'unknown' bucket. Sums of won
-- are HUGEINT; counts BIGINT.
CREATE OR REPLACE TABLE culture_vat_daily AS
WITH split AS (
    SELECT
        payment_date,
        coalesce(culture_expense_type, 'unknown') AS culture_expense_type,
        total_charge,
        taxable_supply,
        vat,
        exempt_amount,
        unclassified_amount,
        is_canceled
    FROM payment_tax_split
),

culture_expense_types AS (
    SELECT culture_expense_type, name_ko, deduction_group, sort_order
    FROM culture_expense_types
),

final AS (
    SELECT
        s.payment_date,
        CAST(date_trunc('month', s.payment_date) AS DATE) AS payment_month,
        s.culture_expense_type,
        t.name_ko AS culture_expense_name,
        t.deduction_group,
        t.sort_order,
        CAST(count(*) AS BIGINT) AS payment_count,
        sum(s.total_charge) AS total_charge,
        sum(s.taxable_supply) AS taxable_supply,
        sum(s.vat) AS vat,
        sum(s.exempt_amount) AS exempt_amount,
        sum(s.unclassified_amount) AS unclassified_amount,
        CAST(count(*) FILTER (WHERE s.is_canceled) AS BIGINT) AS canceled_count,
        coalesce(sum(s.total_charge) FILTER (WHERE s.is_canceled), 0) AS canceled_total,
        coalesce(sum(s.taxable_supply) FILTER (WHERE s.is_canceled), 0) AS canceled_taxable_supply,
        coalesce(sum(s.vat) FILTER (WHERE s.is_canceled), 0) AS canceled_vat,
        coalesce(sum(s.exempt_amount) FILTER (WHERE s.is_canceled), 0) AS canceled_exempt_amount,
        coalesce(sum(s.unclassified_amount) FILTER (WHERE s.is_canceled), 0) AS canceled_unclassified_amount,
        CAST(count(*) FILTER (WHERE NOT s.is_canceled) AS BIGINT) AS net_count,
        coalesce(sum(s.total_charge) FILTER (WHERE NOT s.is_canceled), 0) AS net_total,
        coalesce(sum(s.taxable_supply) FILTER (WHERE NOT s.is_canceled), 0) AS net_taxable_supply,
        coalesce(sum(s.vat) FILTER (WHERE NOT s.is_canceled), 0) AS net_vat,
        coalesce(sum(s.exempt_amount) FILTER (WHERE NOT s.is_canceled), 0) AS net_exempt_amount,
        coalesce(sum(s.unclassified_amount) FILTER (WHERE NOT s.is_canceled), 0) AS net_unclassified_amount
    FROM split AS s
    JOIN culture_expense_types AS t USING (culture_expense_type)
    GROUP BY ALL
)

SELECT * FROM final ORDER BY payment_date, sort_order;

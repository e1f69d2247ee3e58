-- Culture-expense type x VAT per KST payment day. Gross figures count every payment of the
-- day; cancelled ones are also summed apart (on the payment's day, not the detection day),
-- and net = gross - cancelled. Payments without a type land in the 'unknown' bucket.
-- Amounts are summed as HUGEINT (DuckDB's sum of a BIGINT), so no sum of won overflows;
-- counts stay BIGINT.
CREATE OR REPLACE TABLE culture_vat_daily AS
WITH payments AS (
    SELECT
        payment_date,
        coalesce(culture_expense_type, 'unknown') AS culture_expense_type,
        total_charge,
        tax_free_amount,
        vat,
        is_canceled
    FROM payments
),

culture_expense_types AS (
    SELECT culture_expense_type, name_ko, deduction_group, sort_order
    FROM culture_expense_types
),

final AS (
    SELECT
        p.payment_date,
        CAST(date_trunc('month', p.payment_date) AS DATE) AS payment_month,
        p.culture_expense_type,
        t.name_ko AS culture_expense_name,
        t.deduction_group,
        t.sort_order,
        CAST(count(*) AS BIGINT) AS payment_count,
        sum(p.total_charge) AS total_charge,
        sum(p.tax_free_amount) AS supply_value,
        sum(p.vat) AS vat,
        CAST(count(*) FILTER (WHERE p.is_canceled) AS BIGINT) AS canceled_count,
        coalesce(sum(p.total_charge) FILTER (WHERE p.is_canceled), 0) AS canceled_total,
        coalesce(sum(p.tax_free_amount) FILTER (WHERE p.is_canceled), 0) AS canceled_supply_value,
        coalesce(sum(p.vat) FILTER (WHERE p.is_canceled), 0) AS canceled_vat,
        CAST(count(*) FILTER (WHERE NOT p.is_canceled) AS BIGINT) AS net_count,
        coalesce(sum(p.total_charge) FILTER (WHERE NOT p.is_canceled), 0) AS net_total,
        coalesce(sum(p.tax_free_amount) FILTER (WHERE NOT p.is_canceled), 0) AS net_supply_value,
        coalesce(sum(p.vat) FILTER (WHERE NOT p.is_canceled), 0) AS net_vat
    FROM payments AS p
    JOIN culture_expense_types AS t USING (culture_expense_type)
    GROUP BY ALL
)

SELECT * FROM final ORDER BY payment_date, sort_order;

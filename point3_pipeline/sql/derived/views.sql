-- Views over the derived tables: recreated with them, so they never point at a stale shape.
-- Sums of won are HUGEINT, as in culture_vat_daily; sums of counts are BIGINT.
CREATE OR REPLACE VIEW culture_vat_monthly AS
WITH daily AS (
    SELECT * FROM culture_vat_daily
),

final AS (
    SELECT
        payment_month,
        culture_expense_type,
        culture_expense_name,
        deduction_group,
        sort_order,
        CAST(sum(payment_count) AS BIGINT) AS payment_count,
        sum(total_charge) AS total_charge,
        sum(taxable_supply) AS taxable_supply,
        sum(vat) AS vat,
        sum(exempt_amount) AS exempt_amount,
        sum(unclassified_amount) AS unclassified_amount,
        CAST(sum(canceled_count) AS BIGINT) AS canceled_count,
        sum(canceled_total) AS canceled_total,
        sum(canceled_taxable_supply) AS canceled_taxable_supply,
        sum(canceled_vat) AS canceled_vat,
        sum(canceled_exempt_amount) AS canceled_exempt_amount,
        sum(canceled_unclassified_amount) AS canceled_unclassified_amount,
        CAST(sum(net_count) AS BIGINT) AS net_count,
        sum(net_total) AS net_total,
        sum(net_taxable_supply) AS net_taxable_supply,
        sum(net_vat) AS net_vat,
        sum(net_exempt_amount) AS net_exempt_amount,
        sum(net_unclassified_amount) AS net_unclassified_amount
    FROM daily
    GROUP BY ALL
)

SELECT * FROM final ORDER BY payment_month, sort_order;

CREATE OR REPLACE VIEW deduction_group_monthly AS
WITH monthly AS (
    SELECT * FROM culture_vat_monthly
),

final AS (
    SELECT
        payment_month,
        deduction_group,
        CAST(sum(payment_count) AS BIGINT) AS payment_count,
        sum(total_charge) AS total_charge,
        sum(taxable_supply) AS taxable_supply,
        sum(vat) AS vat,
        sum(exempt_amount) AS exempt_amount,
        sum(unclassified_amount) AS unclassified_amount,
        CAST(sum(canceled_count) AS BIGINT) AS canceled_count,
        sum(canceled_total) AS canceled_total,
        CAST(sum(net_count) AS BIGINT) AS net_count,
        sum(net_total) AS net_total,
        sum(net_taxable_supply) AS net_taxable_supply,
        sum(net_vat) AS net_vat,
        sum(net_exempt_amount) AS net_exempt_amount,
        sum(net_unclassified_amount) AS net_unclassified_amount
    FROM monthly
    GROUP BY ALL
)

SELECT * FROM final ORDER BY payment_month, deduction_group;

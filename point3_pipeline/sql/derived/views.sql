-- Views over the derived tables: recreated with them, so they never point at a stale shape.
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
        CAST(sum(total_charge) AS BIGINT) AS total_charge,
        CAST(sum(supply_value) AS BIGINT) AS supply_value,
        CAST(sum(vat) AS BIGINT) AS vat,
        CAST(sum(canceled_count) AS BIGINT) AS canceled_count,
        CAST(sum(canceled_total) AS BIGINT) AS canceled_total,
        CAST(sum(canceled_supply_value) AS BIGINT) AS canceled_supply_value,
        CAST(sum(canceled_vat) AS BIGINT) AS canceled_vat,
        CAST(sum(net_count) AS BIGINT) AS net_count,
        CAST(sum(net_total) AS BIGINT) AS net_total,
        CAST(sum(net_supply_value) AS BIGINT) AS net_supply_value,
        CAST(sum(net_vat) AS BIGINT) AS net_vat
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
        CAST(sum(total_charge) AS BIGINT) AS total_charge,
        CAST(sum(supply_value) AS BIGINT) AS supply_value,
        CAST(sum(vat) AS BIGINT) AS vat,
        CAST(sum(canceled_count) AS BIGINT) AS canceled_count,
        CAST(sum(canceled_total) AS BIGINT) AS canceled_total,
        CAST(sum(net_count) AS BIGINT) AS net_count,
        CAST(sum(net_total) AS BIGINT) AS net_total
    FROM monthly
    GROUP BY ALL
)

SELECT * FROM final ORDER BY payment_month, deduction_group;

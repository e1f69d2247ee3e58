-- The payment-month view of one month ($first .. $last) for management, per business: the
-- month's sales, how many of them are cancelled since (as the warehouse knows now), split into
-- cancellations that belong to the month and those that belong to a later period, and the
-- cancellations of earlier payments that belong to this month. With them the filing view
-- (sales − cancellations belonging to the month) is reconciled on one line.
WITH split AS (
    SELECT * FROM payment_tax_split WHERE payment_date BETWEEN $first AND $last
),

earlier AS (
    SELECT * FROM filing_movements WHERE movement = 'cancellation' AND payment_date < $first
),

businesses AS (
    SELECT business_key, sheet_key FROM filing_businesses
),

month_sales AS (
    SELECT
        coalesce(business_id, 'undeclared:' || coalesce(business_name, '')) AS business_key,
        CAST(count(*) AS BIGINT) AS sale_count,
        sum(CAST(total_charge AS HUGEINT)) AS total_charge,
        sum(CAST(taxable_supply AS HUGEINT)) AS taxable_supply,
        sum(CAST(vat AS HUGEINT)) AS vat,
        sum(CAST(exempt_amount AS HUGEINT)) AS exempt_amount,
        sum(CAST(unclassified_amount AS HUGEINT)) AS unclassified_amount,
        CAST(count(*) FILTER (WHERE is_canceled AND cancel_date <= $last) AS BIGINT) AS canceled_here_count,
        coalesce(sum(CAST(total_charge AS HUGEINT)) FILTER (WHERE is_canceled AND cancel_date <= $last), 0)
            AS canceled_here_total,
        CAST(count(*) FILTER (WHERE is_canceled AND cancel_date > $last) AS BIGINT) AS canceled_later_count,
        coalesce(sum(CAST(total_charge AS HUGEINT)) FILTER (WHERE is_canceled AND cancel_date > $last), 0)
            AS canceled_later_total
    FROM split
    GROUP BY ALL
),

earlier_cancellations AS (
    SELECT business_key, CAST(count(*) AS BIGINT) AS earlier_count,
           -sum(CAST(total_charge AS HUGEINT)) AS earlier_total
    FROM earlier
    GROUP BY ALL
),

final AS (
    SELECT
        b.sheet_key,
        coalesce(s.sale_count, 0) AS sale_count,
        coalesce(s.total_charge, 0) AS total_charge,
        coalesce(s.taxable_supply, 0) AS taxable_supply,
        coalesce(s.vat, 0) AS vat,
        coalesce(s.exempt_amount, 0) AS exempt_amount,
        coalesce(s.unclassified_amount, 0) AS unclassified_amount,
        coalesce(s.canceled_here_count, 0) AS canceled_here_count,
        coalesce(s.canceled_here_total, 0) AS canceled_here_total,
        coalesce(s.canceled_later_count, 0) AS canceled_later_count,
        coalesce(s.canceled_later_total, 0) AS canceled_later_total,
        coalesce(e.earlier_count, 0) AS earlier_count,
        coalesce(e.earlier_total, 0) AS earlier_total
    FROM businesses AS b
    LEFT JOIN month_sales AS s USING (business_key)
    LEFT JOIN earlier_cancellations AS e USING (business_key)
)

SELECT * FROM final ORDER BY sheet_key;

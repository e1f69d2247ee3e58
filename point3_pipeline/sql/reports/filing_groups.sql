-- The period's movements summed by everything a workbook figure selects on (business, movement,
-- class, method, culture code): the cached values of the figures' SUMIFS are sums of these
-- groups, so they add up what the formulas add up. Sums HUGEINT, counts BIGINT.
WITH movements AS (
    SELECT * FROM filing_movements
),

businesses AS (
    SELECT business_key, sheet_key FROM filing_businesses
),

final AS (
    SELECT
        b.sheet_key,
        m.movement,
        m.tax_class,
        m.method_key,
        m.payment_method_name,
        m.payment_method_type,
        m.is_unknown_method,
        m.payment_method_sort_order,
        m.culture_key,
        CAST(count(*) AS BIGINT) AS movement_count,
        sum(CAST(m.total_charge AS HUGEINT)) AS total_charge,
        sum(CAST(m.taxable_supply AS HUGEINT)) AS taxable_supply,
        sum(CAST(m.vat AS HUGEINT)) AS vat,
        sum(CAST(m.exempt_amount AS HUGEINT)) AS exempt_amount,
        sum(CAST(m.unclassified_amount AS HUGEINT)) AS unclassified_amount,
        CAST(count(*) FILTER (WHERE m.cancel_date_unknown) AS BIGINT) AS date_unknown_count,
        CAST(count(*) FILTER (WHERE m.straddles_period) AS BIGINT) AS straddling_count
    FROM movements AS m
    JOIN businesses AS b USING (business_key)
    GROUP BY ALL
)

SELECT * FROM final
ORDER BY sheet_key, movement, tax_class, payment_method_sort_order, method_key, culture_key;

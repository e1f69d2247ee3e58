-- The period's movements summed per filing day and movement (the daily sheet's cached values).
WITH movements AS (
    SELECT * FROM filing_movements
),

final AS (
    SELECT
        filing_date,
        movement,
        CAST(count(*) AS BIGINT) AS movement_count,
        sum(CAST(total_charge AS HUGEINT)) AS total_charge,
        sum(CAST(taxable_supply AS HUGEINT)) AS taxable_supply,
        sum(CAST(vat AS HUGEINT)) AS vat,
        sum(CAST(exempt_amount AS HUGEINT)) AS exempt_amount,
        sum(CAST(unclassified_amount AS HUGEINT)) AS unclassified_amount
    FROM movements
    GROUP BY ALL
)

SELECT * FROM final ORDER BY filing_date, movement;

-- The totals a tax or VAT workbook version's movements add up to ($kind, $period, $version).
SELECT
    coalesce(sum(CAST(total_charge AS HUGEINT)), 0) AS total_charge,
    coalesce(sum(CAST(taxable_supply AS HUGEINT)), 0) AS taxable_supply,
    coalesce(sum(CAST(vat AS HUGEINT)), 0) AS vat,
    coalesce(sum(CAST(exempt_amount AS HUGEINT)), 0) AS exempt_amount,
    coalesce(sum(CAST(unclassified_amount AS HUGEINT)), 0) AS unclassified_amount,
    CAST(count(*) FILTER (WHERE movement = 'sale') AS BIGINT) AS sale_count,
    CAST(count(*) FILTER (WHERE movement = 'cancellation') AS BIGINT) AS canceled_count
FROM report_filing_snapshots
WHERE kind = $kind AND period = $period AND version = $version;

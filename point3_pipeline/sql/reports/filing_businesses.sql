-- The businesses of a tax or VAT workbook, into a temp table after filing_movements: every
-- declared business (a filing of zero is still a filing) and every undeclared name that has a
-- movement in the period, in the order of their sheets. sheet_key (B01, B02, ...) is what the
-- workbook's formulas select a business by.
CREATE OR REPLACE TEMP TABLE filing_businesses AS
WITH declared AS (
    SELECT DISTINCT business_id, business_name, registration_number, taxpayer_type, sales_taxation
    FROM business_declarations
),

undeclared AS (
    SELECT DISTINCT business_key, business_name
    FROM filing_movements
    WHERE business_id IS NULL
),

businesses AS (
    SELECT business_id AS business_key, business_id, business_name, registration_number, taxpayer_type,
           sales_taxation, true AS is_declared, 0 AS part
    FROM declared
    UNION ALL
    SELECT business_key, NULL, business_name, NULL, NULL, NULL, false, 1
    FROM undeclared
),

final AS (
    SELECT
        'B' || lpad(CAST(row_number() OVER (ORDER BY part, business_key) AS VARCHAR), 2, '0') AS sheet_key,
        *
    FROM businesses
)

SELECT * EXCLUDE (part) FROM final;

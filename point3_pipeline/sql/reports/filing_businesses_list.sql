-- The businesses of a tax or VAT workbook, in sheet order.
SELECT sheet_key, business_key, business_id, business_name, registration_number, taxpayer_type, sales_taxation,
       is_declared
FROM filing_businesses
ORDER BY sheet_key;

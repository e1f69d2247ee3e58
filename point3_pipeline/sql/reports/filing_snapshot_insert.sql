-- Keep the movements a tax or VAT workbook version showed, for the next version's 변경내역.
INSERT INTO report_filing_snapshots
SELECT $kind, $period, $version, signature, movement, filing_date, business_key, tax_class, class_source,
       payment_method_type, total_charge, taxable_supply, vat, exempt_amount, unclassified_amount,
       cancel_date_unknown
FROM filing_movements;

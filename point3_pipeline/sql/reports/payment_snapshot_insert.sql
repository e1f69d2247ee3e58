-- Keep the payments a (reconciliation) workbook version showed, for the next version's changes.
INSERT INTO report_payment_snapshots
SELECT $kind, $period, $version, signature, payment_date, total_charge, tax_free_amount, vat, culture_expense_type,
       is_canceled
FROM payments WHERE payment_date BETWEEN $first AND $last;

-- Amounts are BIGINT, but the sum of two of them need not be: one record with amounts near
-- 2^63 made every query of this view fail ("Overflow in addition"). Compare and subtract in
-- HUGEINT, which holds any sum or difference of BIGINTs.
CREATE OR REPLACE VIEW vat_rule_violations AS
SELECT signature, payment_date, total_charge, tax_free_amount, vat,
       CAST(total_charge AS HUGEINT) - tax_free_amount - vat AS difference
FROM payments
WHERE CAST(tax_free_amount AS HUGEINT) + vat <> total_charge;

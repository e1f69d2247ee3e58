-- Every payment's tax class and its three filing amounts (korean-vat.md, "The split rule"):
-- the rule from the figures alone, overridden by the business's declaration, overridden by a
-- person's classification. For every classified payment
--     taxable_supply + vat + exempt_amount = total_charge
-- exactly; an unclassified one has all three 0 and its total in unclassified_amount.
-- Also: the business it belongs to and the day its cancellation (if any) belongs to.
-- Reads `cancellations`, so it is rebuilt after it. Arithmetic on amounts is HUGEINT, so a
-- huge (still contract-valid) amount cannot overflow; every result fits BIGINT.
CREATE OR REPLACE TABLE payment_tax_split AS
WITH payments AS (
    SELECT signature, payment_date, accepted_at, client_nickname, client_identification, payment_method_type,
           culture_expense_type, total_charge, tax_free_amount, vat, is_canceled
    FROM payments
),

declarations AS (
    SELECT business_id, business_name, registration_number, taxpayer_type, sales_taxation, client_nickname,
           client_identification
    FROM business_declarations
),

newest_actions AS (
    SELECT signature, classification_id, action, tax_class, note, classified_by, classified_at
    FROM payment_classifications
    QUALIFY row_number() OVER (PARTITION BY signature ORDER BY classification_id DESC) = 1
),

-- The person's classification is the newest action on the signature; an undo ends it.
classifications AS (
    SELECT signature, classification_id, tax_class, note, classified_by, classified_at
    FROM newest_actions
    WHERE action = 'classify'
),

cancellations AS (
    SELECT signature, detected_at, detected_date, canceled_after FROM cancellations
),

tax_classes AS (
    SELECT tax_class, name_ko, sort_order FROM tax_classes
),

payment_method_types AS (
    SELECT payment_method_type, name_ko, sort_order FROM payment_method_types
),

-- A declaration naming the clientIdentification is more specific than one that does not.
matched AS (
    SELECT p.signature, d.*
    FROM payments AS p
    JOIN declarations AS d
      ON d.client_nickname = p.client_nickname
     AND (d.client_identification IS NULL OR d.client_identification = p.client_identification)
    QUALIFY row_number() OVER (PARTITION BY p.signature ORDER BY d.client_identification IS NULL) = 1
),

ruled AS (
    SELECT
        p.*,
        CAST(p.total_charge AS HUGEINT) - 11 * CAST(p.vat AS HUGEINT) AS vat_remainder,
        CASE
            WHEN CAST(p.tax_free_amount AS HUGEINT) + p.vat <> p.total_charge THEN 'unclassified'
            WHEN p.vat = 0 AND p.tax_free_amount = p.total_charge THEN 'exempt'
            WHEN CAST(p.total_charge AS HUGEINT) - 11 * CAST(p.vat AS HUGEINT) BETWEEN -5 AND 5 THEN 'taxable'
            WHEN CAST(p.total_charge AS HUGEINT) - 11 * CAST(p.vat AS HUGEINT) > 5 THEN 'mixed'
            ELSE 'impossible_vat'
        END AS rule_class
    FROM payments AS p
),

-- A declaration speaks for payments whose figures hold; broken ones (unclassified,
-- impossible_vat) keep their class until a person looks at them.
declared AS (
    SELECT
        r.*,
        m.business_id, m.business_name AS declared_name, m.registration_number, m.taxpayer_type, m.sales_taxation,
        CASE
            WHEN r.rule_class IN ('unclassified', 'impossible_vat') THEN NULL
            WHEN m.sales_taxation = 'all_taxable' THEN 'taxable'
            WHEN m.sales_taxation = 'all_exempt' THEN 'exempt'
        END AS declared_class
    FROM ruled AS r
    LEFT JOIN matched AS m USING (signature)
),

-- A person's class applies where its amounts can be non-negative.
personal AS (
    SELECT
        d.*,
        c.classification_id, c.tax_class AS person_class, c.note AS classification_note, c.classified_by,
        c.classified_at,
        CASE WHEN c.tax_class IS NOT NULL THEN tax_class_fits(c.tax_class, d.total_charge, d.vat) END
            AS person_class_fits
    FROM declared AS d
    LEFT JOIN classifications AS c USING (signature)
),

classed AS (
    SELECT
        p.*,
        CASE WHEN p.person_class_fits THEN p.person_class
             ELSE coalesce(p.declared_class, p.rule_class) END AS tax_class,
        CASE WHEN p.person_class_fits THEN 'person'
             WHEN p.declared_class IS NOT NULL THEN 'declaration'
             ELSE 'rule' END AS class_source
    FROM personal AS p
),

final AS (
    SELECT
        c.signature,
        c.payment_date,
        c.accepted_at,
        c.client_nickname,
        c.client_identification,
        c.business_id,
        coalesce(c.declared_name, c.client_nickname) AS business_name,
        c.registration_number,
        c.taxpayer_type,
        c.sales_taxation,
        c.payment_method_type,
        coalesce(m.name_ko, c.payment_method_type, '결제수단 없음') AS payment_method_name,
        m.payment_method_type IS NULL AS is_unknown_method,
        coalesce(m.sort_order, 1000) AS payment_method_sort_order,
        c.culture_expense_type,
        c.total_charge,
        c.tax_free_amount,
        c.vat AS recorded_vat,
        c.vat_remainder,
        c.rule_class,
        c.tax_class,
        t.name_ko AS tax_class_name,
        t.sort_order AS tax_class_sort_order,
        c.class_source,
        CAST(CASE c.tax_class
            WHEN 'taxable' THEN CAST(c.total_charge AS HUGEINT) - c.vat
            WHEN 'impossible_vat' THEN CAST(c.total_charge AS HUGEINT) - c.vat
            WHEN 'mixed' THEN 10 * CAST(c.vat AS HUGEINT)
            ELSE 0
        END AS BIGINT) AS taxable_supply,
        CAST(CASE WHEN c.tax_class IN ('taxable', 'impossible_vat', 'mixed') THEN c.vat ELSE 0 END AS BIGINT) AS vat,
        CAST(CASE c.tax_class
            WHEN 'exempt' THEN c.total_charge
            WHEN 'mixed' THEN c.vat_remainder
            ELSE 0
        END AS BIGINT) AS exempt_amount,
        CAST(CASE WHEN c.tax_class = 'unclassified' THEN c.total_charge ELSE 0 END AS BIGINT) AS unclassified_amount,
        CASE
            WHEN c.class_source <> 'declaration' THEN NULL
            WHEN c.sales_taxation = 'all_taxable' AND c.vat_remainder > 5 THEN 'declared_taxable_has_exempt_part'
            WHEN c.sales_taxation = 'all_exempt' AND c.vat > 0 THEN 'declared_exempt_has_vat'
        END AS declaration_conflict,
        coalesce(NOT c.person_class_fits, false) AS classification_does_not_fit,
        c.classification_id,
        c.person_class,
        c.classification_note,
        c.classified_by,
        c.classified_at,
        c.is_canceled,
        CASE WHEN NOT c.is_canceled THEN NULL
             WHEN x.canceled_after IS NULL THEN c.payment_date
             ELSE x.detected_date END AS cancel_date,
        c.is_canceled AND x.canceled_after IS NULL AS cancel_date_unknown,
        c.is_canceled AND x.canceled_after IS NOT NULL
            AND date_trunc('month', timezone('Asia/Seoul', x.canceled_after))
                <> date_trunc('month', timezone('Asia/Seoul', x.detected_at)) AS cancel_straddles_month,
        CASE WHEN c.is_canceled THEN x.canceled_after END AS canceled_after,
        CASE WHEN c.is_canceled THEN x.detected_at END AS canceled_detected_at
    FROM classed AS c
    JOIN tax_classes AS t USING (tax_class)
    LEFT JOIN payment_method_types AS m USING (payment_method_type)
    LEFT JOIN cancellations AS x USING (signature)
)

SELECT * FROM final ORDER BY payment_date, signature;

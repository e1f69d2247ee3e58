-- The detail sheet's rows: one per filing movement of the period (filing_movements), amounts
-- signed, in filing-day order.
WITH movements AS (
    SELECT * FROM filing_movements
),

businesses AS (
    SELECT business_key, sheet_key FROM filing_businesses
),

final AS (
    SELECT
        CASE m.movement WHEN 'sale' THEN '매출' ELSE '취소' END AS movement_ko,
        m.filing_date,
        b.sheet_key,
        m.business_name,
        m.payment_date,
        m.accepted_at,
        m.signature,
        m.order_id_from_client,
        m.purchasing_product_name,
        m.payment_method_name,
        m.method_key,
        m.tax_class_name,
        m.tax_class,
        CASE m.class_source WHEN 'person' THEN '사람 분류' WHEN 'declaration' THEN '사업자 신고' ELSE '금액 규칙' END
            AS class_source_ko,
        m.culture_key,
        m.total_charge,
        m.taxable_supply,
        m.vat,
        m.exempt_amount,
        m.unclassified_amount,
        m.canceled_detected_at,
        m.canceled_after,
        nullif(concat_ws('; ',
            CASE WHEN m.cancel_date_unknown THEN '취소일 미상: 처음 볼 때 이미 취소됨, 결제일에 귀속' END,
            CASE WHEN m.straddles_period THEN '경계 불확실: 취소 하한이 이전 기간' END,
            CASE WHEN m.is_unknown_method THEN '알 수 없는 결제수단 코드' END,
            CASE WHEN m.class_source = 'person' THEN '분류: ' || m.classified_by || ' — ' || m.classification_note END
        ), '') AS note,
        m.movement
    FROM movements AS m
    JOIN businesses AS b USING (business_key)
)

SELECT * EXCLUDE (movement) FROM final
ORDER BY filing_date, movement DESC, accepted_at NULLS LAST, signature;

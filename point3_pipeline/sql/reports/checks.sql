-- The 검증 findings of a tax or VAT workbook's period ($first .. $last), each with its row: the
-- split's classes a person should look at, every declared-vs-figures conflict, and the checks
-- of the records themselves. A payment is in the period when its sale or its cancellation is.
WITH split AS (
    SELECT s.*, p.order_id_from_client, p.purchasing_product_name
    FROM payment_tax_split AS s
    JOIN payments AS p USING (signature)
    WHERE s.payment_date BETWEEN $first AND $last OR (s.is_canceled AND s.cancel_date BETWEEN $first AND $last)
),

cultures AS (
    SELECT culture_expense_type FROM culture_expense_types WHERE culture_expense_type <> 'unknown'
),

repeated AS (
    SELECT order_id_from_client, count(*) AS n FROM payments
    WHERE order_id_from_client IN (SELECT order_id_from_client FROM split)
    GROUP BY ALL HAVING count(*) > 1
),

rejected AS (
    SELECT record_hash, reason, copies, raw_text, window_date FROM rejected_records
    WHERE window_date BETWEEN $first AND $last
),

anomalies AS (
    SELECT signature, detected_at, reverted_at FROM cancellations
    WHERE is_anomaly AND (payment_date BETWEEN $first AND $last OR detected_date BETWEEN $first AND $last)
),

findings AS (
    SELECT 1 AS k, signature,
           '부가세 + taxFreeAmount ≠ 결제금액: 차이 '
           || CAST(CAST(total_charge AS HUGEINT) - tax_free_amount - recorded_vat AS VARCHAR) || '원' AS detail
    FROM split WHERE tax_class = 'unclassified'
    UNION ALL
    SELECT 2, signature, '부가세가 결제금액의 1/11을 넘음: 결제금액 − 11 × 부가세 = ' || CAST(vat_remainder AS VARCHAR)
           || '원 (과세로 신고, 확인 필요)'
    FROM split WHERE tax_class = 'impossible_vat'
    UNION ALL
    SELECT 3, signature, '과세분 ' || CAST(taxable_supply + vat AS VARCHAR) || '원 (공급가액 ' || CAST(taxable_supply AS VARCHAR)
           || ') + 면세분 ' || CAST(exempt_amount AS VARCHAR) || '원'
    FROM split WHERE tax_class = 'mixed'
    UNION ALL
    SELECT 4, signature,
           CASE declaration_conflict
               WHEN 'declared_taxable_has_exempt_part' THEN '전부 과세로 신고된 사업자인데 부가세로 설명되지 않는 금액 '
                    || CAST(vat_remainder AS VARCHAR) || '원'
               ELSE '전부 면세로 신고된 사업자인데 부가세 ' || CAST(recorded_vat AS VARCHAR) || '원이 있음'
           END
    FROM split WHERE declaration_conflict IS NOT NULL
    UNION ALL
    SELECT 5, signature, '사람 분류 ' || person_class || '가 지금 금액과 맞지 않아 ' || tax_class || '로 계산함'
    FROM split WHERE classification_does_not_fit
    UNION ALL
    SELECT 6, signature, coalesce('알 수 없는 코드: ' || payment_method_type, '결제수단 없음')
    FROM split WHERE is_unknown_method
    UNION ALL
    -- vat 0 is an exempt sale and taxFreeAmount 0 a docs-shaped record (their classes say so):
    -- what is left is a total of 0 or less, or a negative amount
    SELECT 7, signature, concat_ws(', ', CASE WHEN total_charge <= 0 THEN '결제금액 ≤ 0' END,
                                   CASE WHEN tax_free_amount < 0 THEN 'taxFreeAmount < 0' END,
                                   CASE WHEN recorded_vat < 0 THEN '부가세 < 0' END)
    FROM split WHERE total_charge <= 0 OR tax_free_amount < 0 OR recorded_vat < 0
    UNION ALL
    SELECT 8, signature, CASE WHEN culture_expense_type IS NULL THEN '유형 없음' ELSE '알 수 없는 유형: ' || culture_expense_type END
    FROM split WHERE culture_expense_type IS NULL OR culture_expense_type NOT IN (SELECT culture_expense_type FROM cultures)
    UNION ALL
    SELECT 9, s.signature, '같은 주문번호의 결제 ' || CAST(r.n AS VARCHAR) || '건 (전체 기간)'
    FROM split AS s JOIN repeated AS r USING (order_id_from_client)
    UNION ALL
    SELECT 11, a.signature, '취소 감지 ' || strftime(a.detected_at, '%Y-%m-%d %H:%M') || ', 다시 정상 '
           || strftime(a.reverted_at, '%Y-%m-%d %H:%M')
    FROM anomalies AS a
    UNION ALL
    SELECT 12, signature, '처음 볼 때 이미 취소됨: 결제일 ' || strftime(payment_date, '%Y-%m-%d') || '에 귀속'
    FROM split WHERE is_canceled AND cancel_date_unknown AND cancel_date BETWEEN $first AND $last
    UNION ALL
    SELECT 13, signature, '취소 하한 ' || strftime(canceled_after, '%Y-%m-%d %H:%M') || ' ~ 감지 '
           || strftime(canceled_detected_at, '%Y-%m-%d %H:%M') || ': 이전 기간에 취소됐을 수 있음'
    FROM split
    WHERE is_canceled AND NOT cancel_date_unknown AND cancel_date BETWEEN $first AND $last
      AND CAST(canceled_after AS DATE) < $first
),

final AS (
    SELECT f.k, s.signature, s.business_name, s.payment_date, s.order_id_from_client, s.purchasing_product_name,
           s.total_charge, s.tax_free_amount, s.recorded_vat, s.tax_class_name, f.detail
    FROM findings AS f
    JOIN split AS s USING (signature)
    UNION ALL
    SELECT 10, record_hash, NULL, window_date, NULL, NULL, NULL, NULL, NULL, NULL,
           reason || CASE WHEN copies > 1 THEN ' (' || CAST(copies AS VARCHAR) || '건 동일)' ELSE '' END
           || ' — ' || left(raw_text, 300)
    FROM rejected
)

SELECT * FROM final ORDER BY k, payment_date, signature;

-- The movements that changed since a tax or VAT workbook version ($kind, $period, $version),
-- each with what changed and why, for the 변경내역 sheet. Once a period's days are all synced
-- its movements change only by late-appearing records: a payment first seen after the period
-- was synced (a gap filled, a backfill), a record first seen already cancelled, or a person's
-- or the businesses file's word on a class or business.
WITH cur AS (
    SELECT * FROM filing_movements
),

prev AS (
    SELECT * FROM report_filing_snapshots WHERE kind = $kind AND period = $period AND version = $version
),

joined AS (
    SELECT
        CASE
            WHEN prev.signature IS NULL AND cur.movement = 'sale' THEN '신규 매출 new sale'
            WHEN prev.signature IS NULL AND cur.cancel_date_unknown THEN '신규 취소 (취소일 미상) new, first seen cancelled'
            WHEN prev.signature IS NULL THEN '신규 취소 new cancellation'
            WHEN cur.signature IS NULL THEN '빠짐 removed'
            WHEN cur.tax_class IS DISTINCT FROM prev.tax_class THEN '과세 구분 변경 class changed'
            WHEN cur.business_key IS DISTINCT FROM prev.business_key THEN '사업자 변경 business changed'
            WHEN cur.filing_date IS DISTINCT FROM prev.filing_date THEN '귀속일 변경 filing day changed'
            ELSE '금액 변경 amounts changed'
        END AS change,
        coalesce(cur.signature, prev.signature) AS signature,
        CASE coalesce(cur.movement, prev.movement) WHEN 'sale' THEN '매출' ELSE '취소' END AS movement_ko,
        coalesce(cur.filing_date, prev.filing_date) AS filing_date,
        CASE
            WHEN prev.signature IS NULL AND cur.movement = 'sale'
                THEN '처음 본 시각 ' || strftime(cur.first_seen_at, '%Y-%m-%d %H:%M') || ' KST (늦게 나타난 결제)'
            WHEN prev.signature IS NULL AND cur.cancel_date_unknown
                THEN '처음 본 시각 ' || strftime(cur.first_seen_at, '%Y-%m-%d %H:%M') || ' KST, 이미 취소 상태'
            WHEN prev.signature IS NULL
                THEN '취소 감지 ' || strftime(cur.canceled_detected_at, '%Y-%m-%d %H:%M') || ' KST'
            WHEN cur.signature IS NULL THEN '이 기간의 신고 자료에서 빠짐 (취소 철회, 결제일 변경 등)'
            WHEN cur.tax_class IS DISTINCT FROM prev.tax_class
                THEN prev.tax_class || ' → ' || cur.tax_class || ' ('
                     || CASE cur.class_source WHEN 'person' THEN '사람 분류: ' || cur.classification_note
                                              WHEN 'declaration' THEN '사업자 정보 파일' ELSE '금액 규칙' END || ')'
            WHEN cur.business_key IS DISTINCT FROM prev.business_key
                THEN prev.business_key || ' → ' || cur.business_key || ' (사업자 정보 파일)'
            ELSE '레코드 금액이 바뀜'
        END AS reason,
        prev.total_charge AS before_total, cur.total_charge AS after_total,
        prev.taxable_supply AS before_supply, cur.taxable_supply AS after_supply,
        prev.vat AS before_vat, cur.vat AS after_vat,
        prev.exempt_amount AS before_exempt, cur.exempt_amount AS after_exempt,
        prev.unclassified_amount AS before_unclassified, cur.unclassified_amount AS after_unclassified
    FROM cur
    FULL OUTER JOIN prev ON cur.signature = prev.signature AND cur.movement = prev.movement
    WHERE prev.signature IS NULL OR cur.signature IS NULL
       OR (cur.filing_date, cur.business_key, cur.tax_class, cur.total_charge, cur.taxable_supply, cur.vat,
           cur.exempt_amount, cur.unclassified_amount)
          IS DISTINCT FROM
          (prev.filing_date, prev.business_key, prev.tax_class, prev.total_charge, prev.taxable_supply, prev.vat,
           prev.exempt_amount, prev.unclassified_amount)
)

SELECT * FROM joined
ORDER BY change, filing_date, signature, movement_ko;

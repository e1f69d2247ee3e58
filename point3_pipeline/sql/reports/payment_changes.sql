-- The payments of a period changed since a workbook version ($kind, $period, $version).
WITH cur AS (
    SELECT signature, payment_date, total_charge, tax_free_amount, vat, culture_expense_type, is_canceled,
           order_id_from_client, purchasing_product_name
    FROM payments WHERE payment_date BETWEEN $first AND $last
),

prev AS (
    SELECT * FROM report_payment_snapshots WHERE kind = $kind AND period = $period AND version = $version
),

final AS (
    SELECT
        CASE
            WHEN prev.signature IS NULL THEN '신규 new'
            WHEN cur.signature IS NULL THEN '이 기간에서 빠짐 removed'
            WHEN cur.is_canceled AND NOT prev.is_canceled THEN '취소 canceled'
            WHEN prev.is_canceled AND NOT cur.is_canceled THEN '취소 철회 uncanceled'
            WHEN (cur.total_charge, cur.tax_free_amount, cur.vat)
                 IS DISTINCT FROM (prev.total_charge, prev.tax_free_amount, prev.vat) THEN '금액 변경 amount changed'
            ELSE '문화비 유형 변경 culture type changed'
        END AS change,
        coalesce(cur.signature, prev.signature) AS signature,
        coalesce(cur.payment_date, prev.payment_date) AS payment_date,
        cur.order_id_from_client, cur.purchasing_product_name,
        prev.total_charge AS before_total, cur.total_charge AS after_total,
        prev.vat AS before_vat, cur.vat AS after_vat,
        CASE WHEN prev.signature IS NULL THEN NULL WHEN prev.is_canceled THEN '취소' ELSE '정상' END AS before_status,
        CASE WHEN cur.signature IS NULL THEN NULL WHEN cur.is_canceled THEN '취소' ELSE '정상' END AS after_status
    FROM cur FULL OUTER JOIN prev ON cur.signature = prev.signature
    WHERE prev.signature IS NULL OR cur.signature IS NULL
       OR cur.is_canceled IS DISTINCT FROM prev.is_canceled
       OR (cur.total_charge, cur.tax_free_amount, cur.vat)
          IS DISTINCT FROM (prev.total_charge, prev.tax_free_amount, prev.vat)
       OR cur.culture_expense_type IS DISTINCT FROM prev.culture_expense_type
)

SELECT * FROM final ORDER BY change, payment_date, signature;

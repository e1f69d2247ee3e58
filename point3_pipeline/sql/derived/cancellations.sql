-- One row per cancelled payment. point3 gives no cancel time: detected_at is the first sync
-- that saw isCanceled = true, canceled_after the last sync before it that saw the payment
-- active (NULL when the payment was cancelled the first time we saw it). A payment seen
-- cancelled and later active again is kept and flagged is_anomaly.
CREATE OR REPLACE TABLE cancellations AS
WITH events AS (
    SELECT signature, run_id, observed_at, event, is_canceled, previous_active_at
    FROM payment_events
    WHERE event IN ('first_seen', 'canceled', 'uncanceled')
),

first_cancellation AS (
    SELECT
        signature,
        min(observed_at) AS detected_at,
        arg_min(run_id, observed_at) AS detected_run_id,
        arg_min(previous_active_at, observed_at) AS canceled_after,
        arg_min(event, observed_at) = 'first_seen' AS first_seen_canceled
    FROM events
    WHERE is_canceled
    GROUP BY signature
),

reversals AS (
    SELECT e.signature, min(e.observed_at) AS reverted_at
    FROM events AS e
    JOIN first_cancellation AS f USING (signature)
    WHERE e.event = 'uncanceled' AND e.observed_at > f.detected_at
    GROUP BY e.signature
),

payments AS (
    SELECT signature, payment_date, accepted_at, total_charge, tax_free_amount, vat,
           culture_expense_type, is_canceled, order_id_from_client, purchasing_product_name
    FROM payments
),

final AS (
    SELECT
        f.signature,
        p.payment_date,
        p.accepted_at,
        f.detected_at,
        CAST(timezone('Asia/Seoul', f.detected_at) AS DATE) AS detected_date,
        f.canceled_after,
        f.detected_run_id,
        f.first_seen_canceled,
        p.total_charge,
        p.tax_free_amount,
        p.vat,
        coalesce(p.culture_expense_type, 'unknown') AS culture_expense_type,
        p.order_id_from_client,
        p.purchasing_product_name,
        p.is_canceled AS is_canceled_now,
        r.reverted_at,
        r.reverted_at IS NOT NULL AS is_anomaly
    FROM first_cancellation AS f
    JOIN payments AS p USING (signature)
    LEFT JOIN reversals AS r USING (signature)
)

SELECT * FROM final ORDER BY detected_at, signature;

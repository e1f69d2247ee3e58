-- Windows' payments (registered as incoming_arrow: each payment's window keys and the checked
-- record as JSON; one row per signature and window), typed once into `incoming` as soon as
-- the windows are read.
-- This is the one list of a payment's fields: the record's JSON key and type (for from_json;
-- parse_order checked every one is absent/null or of that type, so extraction cannot fail or
-- differ from the Order) and the payments column it fills. The statements after this one
-- take the fields BY NAME from here. '' counts as absent for the code and the timestamps,
-- as in parse_order. $zone: the zone point3's zone-less timestamps are read in.
INSERT INTO incoming BY NAME
WITH parsed AS (
    SELECT
        signature, source_day, observed_at, active_seen_at,
        md5(raw_record) AS record_hash,
        raw_record,
        from_json(raw_record, '{
            "totalCharge": "BIGINT", "taxFreeAmount": "BIGINT", "vat": "BIGINT", "isCanceled": "BOOLEAN",
            "userId": "VARCHAR", "clientNickname": "VARCHAR", "purchasingProductName": "VARCHAR",
            "orderIdFromClient": "VARCHAR", "clientIdentification": "VARCHAR", "clientGeneratedUserId": "VARCHAR",
            "paymentMethodType": "VARCHAR", "cultureExpenseType": "VARCHAR",
            "timeStampOnRequest": "VARCHAR", "timeStampOnAccept": "VARCHAR"
        }') AS r
    FROM incoming_arrow
),
timed AS (
    SELECT
        *,
        strptime(nullif(r.timeStampOnAccept, ''), '%Y%m%d%H%M%S') AS accepted_local,
        strptime(nullif(r.timeStampOnRequest, ''), '%Y%m%d%H%M%S') AS requested_local
    FROM parsed
)
SELECT
    signature, source_day, observed_at, active_seen_at, record_hash, raw_record,
    -- without an accept time a payment belongs to the day of the window that returned it
    coalesce(CAST(accepted_local AS DATE), source_day) AS payment_date,
    timezone($zone, accepted_local) AS accepted_at,
    timezone($zone, requested_local) AS requested_at,
    r.totalCharge AS total_charge,
    r.taxFreeAmount AS tax_free_amount,
    r.vat AS vat,
    nullif(r.cultureExpenseType, '') AS culture_expense_type,
    r.paymentMethodType AS payment_method_type,
    r.isCanceled AS is_canceled,
    r.orderIdFromClient AS order_id_from_client,
    r.purchasingProductName AS purchasing_product_name,
    r.userId AS user_id,
    r.clientGeneratedUserId AS client_generated_user_id,
    r.clientNickname AS client_nickname,
    r.clientIdentification AS client_identification
FROM timed;

-- One row per observation of /api/settlement (or imported from before the pipeline ran), with
-- the change since the previous one and the 30-minute refresh slot (upstream refreshes the
-- balance every 30 minutes) it belongs to.
CREATE OR REPLACE TABLE settlement_balance_history AS
WITH observations AS (
    SELECT observed_at, balance, 'api' AS source FROM settlement_observations
),

imported AS (
    SELECT observed_at, balance, 'imported' AS source FROM imported_settlement_observations
),

final AS (
    SELECT
        observed_at,
        time_bucket(INTERVAL 30 MINUTES, observed_at, 'Asia/Seoul') AS refresh_slot,
        balance,
        source,
        lag(observed_at) OVER (ORDER BY observed_at) AS previous_observed_at,
        -- HUGEINT: the difference of two BIGINT balances can lie outside BIGINT
        CAST(balance AS HUGEINT) - lag(balance) OVER (ORDER BY observed_at) AS change_since_previous
    FROM (SELECT * FROM observations UNION ALL SELECT * FROM imported)
)

SELECT * FROM final ORDER BY observed_at;

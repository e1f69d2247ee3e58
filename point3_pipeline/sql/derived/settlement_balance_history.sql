-- One row per observation of /api/settlement, with the change since the previous one and
-- the 30-minute refresh slot (upstream refreshes the balance every 30 minutes) it belongs to.
CREATE OR REPLACE TABLE settlement_balance_history AS
WITH observations AS (
    SELECT observed_at, balance FROM settlement_observations
),

final AS (
    SELECT
        observed_at,
        time_bucket(INTERVAL 30 MINUTES, observed_at, 'Asia/Seoul') AS refresh_slot,
        balance,
        lag(observed_at) OVER (ORDER BY observed_at) AS previous_observed_at,
        -- HUGEINT: the difference of two BIGINT balances can lie outside BIGINT
        CAST(balance AS HUGEINT) - lag(balance) OVER (ORDER BY observed_at) AS change_since_previous
    FROM observations
)

SELECT * FROM final ORDER BY observed_at;

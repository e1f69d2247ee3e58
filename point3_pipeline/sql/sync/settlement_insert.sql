INSERT INTO settlement_observations VALUES ($observed_at, $balance)
ON CONFLICT (observed_at) DO UPDATE SET balance = excluded.balance;

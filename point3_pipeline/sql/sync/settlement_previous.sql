SELECT balance FROM settlement_observations WHERE observed_at < $observed_at ORDER BY observed_at DESC LIMIT 1;

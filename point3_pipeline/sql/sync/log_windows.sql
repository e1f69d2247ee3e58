-- The batch's window log rows (registered as incoming_windows).
INSERT INTO sync_windows BY NAME SELECT * FROM incoming_windows;

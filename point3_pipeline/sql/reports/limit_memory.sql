-- A render's DuckDB memory (this connection's instance only): enough for a year's movements,
-- small enough for a shared machine. Beyond it DuckDB evicts cached blocks and spills sorts to
-- its temp directory instead of growing.
SET memory_limit = '256MB';

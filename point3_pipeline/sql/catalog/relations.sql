-- The tables and views of one merchant's published copy (schema main) and their columns, in
-- order: what the catalog's union views are made of, and its fingerprint.
WITH relations AS (
    SELECT table_name, table_type
    FROM information_schema.tables
    WHERE table_catalog = current_database() AND table_schema = 'main'
),
columns AS (
    SELECT table_name, column_name, data_type, ordinal_position
    FROM information_schema.columns
    WHERE table_catalog = current_database() AND table_schema = 'main'
),
final AS (
    SELECT r.table_name, r.table_type, c.column_name, c.data_type, c.ordinal_position
    FROM relations AS r
    JOIN columns AS c USING (table_name)
)
SELECT table_name, table_type, column_name, data_type
FROM final
ORDER BY table_name, ordinal_position

-- What the catalog was built from: one row per merchant (included or why not) and the build.
CREATE SCHEMA meta;
CREATE TABLE meta.merchants (
    merchant_id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    published_path VARCHAR NOT NULL,
    included BOOLEAN NOT NULL,
    reason VARCHAR
);
CREATE TABLE meta.build (
    fingerprint VARCHAR NOT NULL,
    built_at TIMESTAMPTZ NOT NULL,
    views INTEGER NOT NULL
);

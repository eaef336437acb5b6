-- The state of every key: its latest value or a tombstone, with the version
-- of the write that put it there. Keys and values are BYTEA so that every
-- string a client sends, NUL included, is stored byte for byte, and versions
-- are 16-byte big-endian BYTEA so that both PostgreSQL and CockroachDB order
-- them correctly with a plain comparison.
CREATE TABLE IF NOT EXISTS kv_items (
    key     BYTEA   NOT NULL PRIMARY KEY,
    value   BYTEA   NOT NULL,
    version BYTEA   NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT false
);

-- Lets the tombstone purge find old tombstones without scanning live keys.
CREATE INDEX IF NOT EXISTS kv_items_tombstones ON kv_items (version) WHERE deleted;

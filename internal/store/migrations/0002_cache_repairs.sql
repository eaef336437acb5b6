-- Keys whose cache entry may be stale: a consumer committed a write but
-- could not update Redis. The consumer records the key here, at the
-- version it committed, before it acknowledges the message, and a repairer
-- copies the key's current row into the cache once Redis answers again.
CREATE TABLE IF NOT EXISTS kv_cache_repairs (
    key     BYTEA NOT NULL PRIMARY KEY,
    version BYTEA NOT NULL
);

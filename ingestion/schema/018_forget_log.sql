-- The audit of erasure requests (docs/privacy.md, "Forgetting a shopper"): one row per `forget`,
-- naming the person only by a salted hash of what was asked (ingestion/lifecycle.py, key_hash),
-- with the rows removed per table and the days whose daily tables were rebuilt without them.
CREATE TABLE IF NOT EXISTS forget_log
(
    site_id      LowCardinality(String),
    at           DateTime64(3, 'UTC'),
    what         LowCardinality(String),
    key_hash     String,
    rows_removed Map(String, UInt64),
    days_rebuilt UInt32
)
ENGINE = MergeTree
ORDER BY (site_id, at);

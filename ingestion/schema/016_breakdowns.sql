-- Who the shoppers are and where they came from (docs/metrics.md, "Breakdowns"). Each session
-- keeps its browser and OS, the page that referred it (host and path, never the query) and the
-- shop's own custom events and the form fields it found invalid (names only, never a value).
ALTER TABLE chain_sessions
    ADD COLUMN IF NOT EXISTS browser LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS os LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS referrer_page String DEFAULT '',
    ADD COLUMN IF NOT EXISTS tracks Array(LowCardinality(String)),
    ADD COLUMN IF NOT EXISTS invalid_fields Array(Tuple(step LowCardinality(String), field String));
-- `breakdown_daily`: per day, a dimension of the session (browser, os, referrer, landing_source,
-- custom_event, invalid_field) and its value, by device and segment ('all' too): the sessions,
-- the carts among them, the carts left and the orders.
CREATE TABLE IF NOT EXISTS breakdown_daily
(
    site_id         LowCardinality(String),
    day             Date,
    dimension       LowCardinality(String),
    value           String,
    device          LowCardinality(String),
    segment         LowCardinality(String),
    sessions        UInt64,
    carts           UInt64,
    carts_abandoned UInt64,
    orders          UInt64
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, dimension, device, segment, value);

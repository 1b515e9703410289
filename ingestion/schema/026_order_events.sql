-- The events that name an order, kept again in the order's sort: chain_orders finds an order's
-- purchase, the back office's reports and the shopper's answers by order id (docs/metrics.md,
-- "After the purchase"), which `events` (sorted by session) could only answer by reading every
-- granule of the table. A materialized view copies each inserted event with an order id; the
-- events already stored are copied once here. A batch loaded again with its token is skipped
-- here as in `events` (ingestion/store.py, insert_json); an event copied twice otherwise (by
-- this copy and by the view, on a store loading while it migrates) is one row once merged, and
-- the order's figures are the same either way (first and latest values, and whether a kind of
-- report exists). `forget` and the retention remove rows here as in `events`
-- (docs/privacy.md).
CREATE TABLE IF NOT EXISTS order_events
(
    `site_id` LowCardinality(String),
    `order_id` String,
    `session_id` String,
    `event_id` UUID,
    `anon_id` String,
    `type` LowCardinality(String),
    `step` LowCardinality(String),
    `name` LowCardinality(String),
    `ts` DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `received_at` DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `props` Map(LowCardinality(String), String),
    `value` Nullable(Float64),
    `currency` LowCardinality(String),
    `device` LowCardinality(String),
    `is_bot` Bool
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site_id, order_id, session_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000;
CREATE MATERIALIZED VIEW IF NOT EXISTS order_events_mv TO order_events AS
SELECT site_id, order_id, session_id, event_id, anon_id, type, step, name, ts, received_at, props, value, currency,
    device, is_bot
FROM events
WHERE order_id != '';
INSERT INTO order_events
SELECT site_id, order_id, session_id, event_id, anon_id, type, step, name, ts, received_at, props, value, currency,
    device, is_bot
FROM events
WHERE order_id != '';

-- Raw events, one row per accepted event (docs/metrics.md, "Raw events").
--
-- ReplacingMergeTree keyed on (site_id, session_id, event_id): a retried beacon
-- carries the same client event id, so background merges fold its copies into
-- one row, and rollups read with `LIMIT 1 BY event_id` so a copy not yet merged
-- is still counted once. `ts` is deliberately not in the key: skew correction
-- can shift a retried copy by a few milliseconds, and the copies must collide.
-- Sorting by session keeps each session's events together on disk, which is
-- what the session-level rollup pass reads.
--
-- Monthly partitions on `ts` keep parts few (daily ones would multiply parts for
-- small sites) while letting time-bounded queries prune; the minmax indexes on
-- `ts` and `received_at` serve day ranges and the incremental rollup watermark.
--
-- non_replicated_deduplication_window makes `insert_deduplication_token`
-- effective on a non-replicated MergeTree: a loader that re-sends a batch after
-- a crash with the same token inserts nothing the second time.
CREATE TABLE IF NOT EXISTS events
(
    site_id        LowCardinality(String),
    event_id       UUID,
    session_id     String,
    anon_id        String,
    user_id        String,
    session_number UInt32,
    type           LowCardinality(String),
    step           LowCardinality(String),
    name           LowCardinality(String),
    ts             DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),  -- skew-corrected
    client_ts      DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),  -- as the client sent it
    received_at    DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    url            String CODEC(ZSTD(1)),
    referrer       String CODEC(ZSTD(1)),
    props          Map(LowCardinality(String), String),
    value          Nullable(Float64),
    currency       LowCardinality(String),
    order_id       String,
    device         LowCardinality(String),  -- desktop | mobile | tablet
    browser        LowCardinality(String),
    os             LowCardinality(String),
    is_bot         Bool,
    INDEX ts_minmax ts TYPE minmax GRANULARITY 1,
    INDEX received_minmax received_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site_id, session_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Every event or request the collector could not accept, with the reason naming
-- the field: nothing that arrives is silently dropped. Plain MergeTree: rejected
-- payloads are kept as they came, duplicates included.
CREATE TABLE IF NOT EXISTS events_rejected
(
    received_at DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    site_id     LowCardinality(String),
    source      LowCardinality(String),  -- e | s2s | import
    reason      String,
    payload     String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (site_id, received_at)
SETTINGS non_replicated_deduplication_window = 10000;

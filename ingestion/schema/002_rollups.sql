-- Rollup tables (docs/metrics.md), rebuilt per (site, day)
-- by ingestion/rollup.py: a run fills the matching *_staging table, then swaps each
-- recomputed day in with REPLACE PARTITION (atomic per partition), so a query never
-- sees half a day and running a rollup twice gives identical tables.
--
-- Partitions are (site_id, day): a day is the unit of recomputation, and a late
-- event re-reads one day, not a month. `day` is the session's start day in the
-- site's time zone. Segment columns hold 'all' in the GROUPING SETS total rows.

-- One row per closed session: the base for ad-hoc questions.
CREATE TABLE IF NOT EXISTS chain_sessions
(
    site_id          LowCardinality(String),
    day              Date,
    session_id       String,
    anon_id          String,
    started_at       DateTime64(3, 'UTC'),
    ended_at         DateTime64(3, 'UTC'),  -- the session's last event
    device           LowCardinality(String),
    visitor          LowCardinality(String),  -- new | returning (session number 1 or more)
    steps            Array(LowCardinality(String)),  -- chain steps reached, by first entry
    entered          Array(DateTime64(3, 'UTC')),  -- entered(s, k), aligned with steps
    furthest         LowCardinality(String),
    furthest_index   UInt8,  -- 1-based chain index of `furthest`; 0: no chain step reached
    purchased        Bool,
    abandoned_at     LowCardinality(String),  -- `furthest` when not purchased, else ''
    obstacle_steps   Array(LowCardinality(String)),  -- (step, kind) pairs met, distinct,
    obstacle_kinds   Array(LowCardinality(String)),  -- as two aligned arrays
    detail_views     UInt32,  -- `select` step events
    fast_track_views UInt32,  -- of those: in_stock = true and ship_days <= 2
    events           UInt32
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, session_id);

CREATE TABLE IF NOT EXISTS chain_daily
(
    site_id            LowCardinality(String),
    day                Date,
    step               LowCardinality(String),
    step_index         UInt8,
    device             LowCardinality(String),
    visitor            LowCardinality(String),
    sessions_reached   UInt64,
    sessions_purchased UInt64
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, device, visitor, step_index);

CREATE TABLE IF NOT EXISTS checkout_abandonment_daily
(
    site_id                  LowCardinality(String),
    day                      Date,
    step                     LowCardinality(String),
    step_index               UInt8,
    device                   LowCardinality(String),
    visitor                  LowCardinality(String),
    reached                  UInt64,
    continued                UInt64,
    abandoned                UInt64,
    abandonment_rate         Float64,
    median_ms_before_abandon Nullable(Float64)  -- NULL when nobody abandoned there
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, device, visitor, step_index);

-- Quantiles are exact, interpolated linearly between closest ranks
-- (quantilesExactInclusive; numpy's default method): p50 is a true median.
CREATE TABLE IF NOT EXISTS step_timing_daily
(
    site_id     LowCardinality(String),
    day         Date,
    step        LowCardinality(String),
    next_step   LowCardinality(String),
    device      LowCardinality(String),
    visitor     LowCardinality(String),
    transitions UInt64,
    p50_ms      Float64,
    p75_ms      Float64,
    p90_ms      Float64,
    p99_ms      Float64
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, device, visitor, step, next_step);

CREATE TABLE IF NOT EXISTS obstacle_impact_daily
(
    site_id           LowCardinality(String),
    day               Date,
    step              LowCardinality(String),
    kind              LowCardinality(String),
    sessions_with     UInt64,
    abandoned_with    UInt64,
    rate_with         Float64,
    rate_without      Nullable(Float64),  -- NULL when every session reaching the step met it
    lift              Nullable(Float64),  -- NULL when rate_without is NULL or 0
    sessions_without  UInt64,
    abandoned_without UInt64
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, step, kind);

CREATE TABLE IF NOT EXISTS fast_track_daily
(
    site_id          LowCardinality(String),
    day              Date,
    detail_views     UInt64,
    fast_track_views UInt64,
    rate             Float64
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day);

CREATE TABLE IF NOT EXISTS alerts
(
    site_id       LowCardinality(String),
    detected_at   DateTime64(3, 'UTC'),
    step          LowCardinality(String),
    window_start  Date,
    window_end    Date,
    baseline_rate Float64,
    current_rate  Float64,
    reached       UInt64,
    z             Float64,
    message       String
)
ENGINE = ReplacingMergeTree(detected_at)
ORDER BY (site_id, step, window_start, window_end);

-- The incremental rollup's memory: events received up to `watermark` are in the
-- tables; days from `pending_from` on had sessions still open at the last run.
CREATE TABLE IF NOT EXISTS rollup_state
(
    site_id      LowCardinality(String),
    watermark    DateTime64(3, 'UTC'),
    pending_from Nullable(Date),
    run_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(run_at)
ORDER BY site_id;

CREATE TABLE IF NOT EXISTS chain_sessions_staging AS chain_sessions;
CREATE TABLE IF NOT EXISTS chain_daily_staging AS chain_daily;
CREATE TABLE IF NOT EXISTS checkout_abandonment_daily_staging AS checkout_abandonment_daily;
CREATE TABLE IF NOT EXISTS step_timing_daily_staging AS step_timing_daily;
CREATE TABLE IF NOT EXISTS obstacle_impact_daily_staging AS obstacle_impact_daily;
CREATE TABLE IF NOT EXISTS fast_track_daily_staging AS fast_track_daily;

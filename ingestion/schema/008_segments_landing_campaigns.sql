-- Who the shoppers are and where they came from (docs/metrics.md, "Behavior segments",
-- "Landing engagement", "Campaigns").
--
-- chain_sessions gains what a session did on its landing page, where it came from, and
-- its behavior segment; the chain, checkout, step-timing and obstacle tables gain
-- `segment` as a dimension ('all' in the total rows, like device and visitor), so the
-- whole site is now WHERE device = 'all' AND visitor = 'all' AND segment = 'all'.
-- Columns added to a sorting key take no default, so rows written before read '' there:
-- the migration clears `rollup_state`, and the next rollup rebuilds every day that has
-- events, with segments.
ALTER TABLE chain_sessions
    ADD COLUMN IF NOT EXISTS segment LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS medium LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS campaign String DEFAULT '',
    ADD COLUMN IF NOT EXISTS term String DEFAULT '',
    ADD COLUMN IF NOT EXISTS content String DEFAULT '',
    ADD COLUMN IF NOT EXISTS click_id LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS referrer_host LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS landing_path String DEFAULT '',
    ADD COLUMN IF NOT EXISTS pages UInt32 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS product_views UInt32 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS searches UInt32 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS cart_value Float64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS first_interaction_ms Nullable(Float64),
    ADD COLUMN IF NOT EXISTS clicks_to_goal Nullable(UInt32),
    ADD COLUMN IF NOT EXISTS earlier_cart Bool DEFAULT false;

ALTER TABLE chain_daily ADD COLUMN IF NOT EXISTS segment LowCardinality(String),
    MODIFY ORDER BY (site_id, day, device, visitor, step_index, segment);
ALTER TABLE checkout_abandonment_daily ADD COLUMN IF NOT EXISTS segment LowCardinality(String),
    MODIFY ORDER BY (site_id, day, device, visitor, step_index, segment);
ALTER TABLE step_timing_daily ADD COLUMN IF NOT EXISTS segment LowCardinality(String),
    MODIFY ORDER BY (site_id, day, device, visitor, step, next_step, segment);
ALTER TABLE obstacle_impact_daily ADD COLUMN IF NOT EXISTS segment LowCardinality(String),
    MODIFY ORDER BY (site_id, day, step, kind, segment);

-- The staging copies hold nothing between runs: made again from their tables, they get the new
-- columns and sorting keys without repeating each ALTER.
DROP TABLE IF EXISTS chain_sessions_staging;
CREATE TABLE chain_sessions_staging AS chain_sessions;
DROP TABLE IF EXISTS chain_daily_staging;
CREATE TABLE chain_daily_staging AS chain_daily;
DROP TABLE IF EXISTS checkout_abandonment_daily_staging;
CREATE TABLE checkout_abandonment_daily_staging AS checkout_abandonment_daily;
DROP TABLE IF EXISTS step_timing_daily_staging;
CREATE TABLE step_timing_daily_staging AS step_timing_daily;
DROP TABLE IF EXISTS obstacle_impact_daily_staging;
CREATE TABLE obstacle_impact_daily_staging AS obstacle_impact_daily;

-- The (device, visitor, segment) groups each session counts in: its own values and 'all'
-- in every combination, the eight rows of GROUPING SETS over the three, as one array.
CREATE OR REPLACE FUNCTION chainlens_cuts AS (d, v, s, a) -> [
    (d, v, s), (a, v, s), (d, a, s), (d, v, a), (a, a, s), (a, v, a), (d, a, a), (a, a, a)];

-- docs/metrics.md, "Landing engagement": per landing page, by source, device and segment.
CREATE TABLE IF NOT EXISTS landing_engagement_daily
(
    site_id                        LowCardinality(String),
    day                            Date,
    landing_path                   String,
    source                         LowCardinality(String),
    device                         LowCardinality(String),
    segment                        LowCardinality(String),
    sessions                       UInt64,
    engaged_7s                     UInt64,  -- first interaction within [sites.landing] engaged_s (7)
    bounced                        UInt64,  -- one page, no interaction
    reached_select_in_3_clicks     UInt64,  -- reached goal_step (select) within `clicks` (3) clicks
    median_s_to_first_interaction  Nullable(Float64)  -- NULL when no session interacted
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, landing_path, source, device, segment);
CREATE TABLE IF NOT EXISTS landing_engagement_daily_staging AS landing_engagement_daily;

-- docs/metrics.md, "Campaigns": what each source, medium and campaign brought.
CREATE TABLE IF NOT EXISTS campaign_daily
(
    site_id          LowCardinality(String),
    day              Date,
    source           LowCardinality(String),
    medium           LowCardinality(String),
    campaign         String,
    device           LowCardinality(String),
    sessions         UInt64,
    carts            UInt64,  -- sessions that reached checkout_from
    orders           UInt64,  -- sessions that purchased
    revenue          Map(LowCardinality(String), Float64),  -- purchase value by currency
    carts_abandoned  UInt64,  -- of the carts, sessions that did not purchase
    cart_abandonment Nullable(Float64)  -- carts_abandoned / carts; NULL without carts
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, source, medium, campaign, device);
CREATE TABLE IF NOT EXISTS campaign_daily_staging AS campaign_daily;

TRUNCATE TABLE IF EXISTS rollup_state;

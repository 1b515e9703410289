-- After the purchase (docs/metrics.md, "After the purchase"): one row per order, linked to its
-- purchase session, and the daily delivery and satisfaction tables derived from it.
-- Partitioned by the purchase day (orders) or the response day (satisfaction), in the
-- site's time zone; a late delivery rebuilds its purchase day only.
CREATE TABLE IF NOT EXISTS chain_orders
(
    site_id          LowCardinality(String),
    day              Date,  -- the purchase day
    order_id         String,
    session_id       String,  -- the purchase session ('' when its purchase event has not arrived)
    purchased_at     Nullable(DateTime64(3, 'UTC')),
    device           LowCardinality(String),
    segment          LowCardinality(String),
    source           LowCardinality(String),
    value            Nullable(Float64),
    currency         LowCardinality(String),
    met_obstacle     Bool,  -- the purchase session met any obstacle
    shipped_at       Nullable(DateTime64(3, 'UTC')),
    delivered_at     Nullable(DateTime64(3, 'UTC')),
    promised_by      Nullable(DateTime64(3, 'UTC')),
    carrier          LowCardinality(String),
    hours_to_ship    Nullable(Float64),
    hours_to_deliver Nullable(Float64),
    on_time          Nullable(Bool),  -- delivered by the promise; NULL without both
    tracking_viewed  Bool,  -- by its order id, or by the buyer (same visitor) after the purchase
    returned         Bool,
    return_reason    String,
    score            Nullable(UInt8),  -- the latest satisfaction answer about this order
    asked_at         LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, order_id);
CREATE TABLE IF NOT EXISTS chain_orders_staging AS chain_orders;

CREATE TABLE IF NOT EXISTS fulfillment_daily
(
    site_id               LowCardinality(String),
    day                   Date,  -- the purchase day
    device                LowCardinality(String),
    segment               LowCardinality(String),
    orders                UInt64,
    shipped               UInt64,
    delivered             UInt64,
    p50_hours_to_ship     Nullable(Float64),
    p90_hours_to_ship     Nullable(Float64),
    p50_hours_to_deliver  Nullable(Float64),
    p90_hours_to_deliver  Nullable(Float64),
    with_promise          UInt64,  -- delivered orders that had a promised date
    on_time               UInt64,
    on_time_share         Nullable(Float64),  -- on_time / with_promise
    tracking_viewed       UInt64,
    tracking_viewed_share Float64,  -- of orders
    returned              UInt64,
    returned_share        Float64,  -- of orders
    return_reasons        Array(Tuple(reason String, returns UInt64))  -- the five most given
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, device, segment);
CREATE TABLE IF NOT EXISTS fulfillment_daily_staging AS fulfillment_daily;

-- NPS in points: promoters (9-10) minus detractors (0-6) over responses. Its 95% interval is the
-- adjusted Wald interval (Rocks 2016, The American Statistician 70(4)): three answers are added,
-- 3/4 promoter, 3/4 detractor, 3/2 passive, before the normal approximation, which keeps it
-- inside [-100, 100] and wider than zero when every answer is the same.
CREATE OR REPLACE FUNCTION chainlens_nps AS (p, d, n) -> if(n = 0, NULL, 100 * (p - d) / n);
CREATE OR REPLACE FUNCTION chainlens_nps_half AS (p, d, n) -> if(n = 0, NULL,
    100 * 1.959963984540054 * sqrt(greatest(0, (p + d + 1.5) / (n + 3) - pow((p - d) / (n + 3), 2)) / (n + 3)));
CREATE OR REPLACE FUNCTION chainlens_nps_low AS (p, d, n) -> if(n = 0, NULL,
    greatest(-100, 100 * (p - d) / (n + 3) - chainlens_nps_half(p, d, n)));
CREATE OR REPLACE FUNCTION chainlens_nps_high AS (p, d, n) -> if(n = 0, NULL,
    least(100, 100 * (p - d) / (n + 3) + chainlens_nps_half(p, d, n)));

CREATE TABLE IF NOT EXISTS satisfaction_daily
(
    site_id     LowCardinality(String),
    day         Date,  -- the day of the answer
    asked_at    LowCardinality(String),  -- checkout, delivery… ('all' in the totals)
    device      LowCardinality(String),
    segment     LowCardinality(String),
    link        LowCardinality(String),  -- all | met_obstacle | no_obstacle | late | on_time
    responses   UInt64,
    promoters   UInt64,
    passives    UInt64,
    detractors  UInt64,
    nps         Nullable(Float64),
    nps_low     Nullable(Float64),
    nps_high    Nullable(Float64)
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, asked_at, device, segment, link);
CREATE TABLE IF NOT EXISTS satisfaction_daily_staging AS satisfaction_daily;

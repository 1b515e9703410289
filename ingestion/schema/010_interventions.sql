-- Acting at the moment of abandoning, measured against a holdout (docs/interventions.md):
-- per session day, intervention step, trigger (and 'all'), arm and device (and 'all'), the
-- sessions at risk, offers accepted, purchases and conversion; on the treatment rows the
-- difference with the holdout's conversion (95% interval, as for obstacles), the orders and the
-- revenue it adds (net of the offers' reported cost), `insufficient` below the minimum sample.
CREATE TABLE IF NOT EXISTS intervention_daily
(
    site_id             LowCardinality(String),
    day                 Date,
    step                LowCardinality(String),
    trigger             LowCardinality(String),
    arm                 LowCardinality(String),  -- treatment | holdout
    device              LowCardinality(String),
    sessions            UInt64,  -- sessions at risk
    accepted            UInt64,  -- of those, sessions that accepted the offer
    purchases           UInt64,
    conversion          Float64,
    revenue             Float64,
    offer_cost          Float64,  -- the reported cost of the accepted offers
    diff                Nullable(Float64),  -- treatment conversion - holdout conversion
    diff_low            Nullable(Float64),
    diff_high           Nullable(Float64),
    incremental_orders  Nullable(Float64),  -- treatment sessions x diff
    incremental_revenue Nullable(Float64),  -- treatment revenue - what it would have been at the holdout's rate - offer cost
    insufficient        Nullable(Bool)
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, step, trigger, arm, device);
CREATE TABLE IF NOT EXISTS intervention_daily_staging AS intervention_daily;

-- What an obstacle costs, with its uncertainty (docs/metrics.md, "Obstacle impact"):
-- 95% Wilson score bounds of a proportion k/n, and Newcombe's hybrid score interval
-- (his method 10) for the difference of two proportions k1/n1 - k2/n2. SQL functions,
-- so the daily rollup and the range figures share one definition. NULL when n = 0.
CREATE OR REPLACE FUNCTION chainlens_wilson_low AS (k, n) -> if(n = 0, NULL, greatest(0,
    (k / n + 3.841458820694124 / (2 * n)
     - 1.959963984540054 * sqrt(k / n * (1 - k / n) / n + 3.841458820694124 / (4 * n * n)))
    / (1 + 3.841458820694124 / n)));
CREATE OR REPLACE FUNCTION chainlens_wilson_high AS (k, n) -> if(n = 0, NULL, least(1,
    (k / n + 3.841458820694124 / (2 * n)
     + 1.959963984540054 * sqrt(k / n * (1 - k / n) / n + 3.841458820694124 / (4 * n * n)))
    / (1 + 3.841458820694124 / n)));
CREATE OR REPLACE FUNCTION chainlens_diff_low AS (k1, n1, k2, n2) -> if(n1 = 0 OR n2 = 0, NULL,
    k1 / n1 - k2 / n2 - sqrt(pow(k1 / n1 - chainlens_wilson_low(k1, n1), 2)
                             + pow(chainlens_wilson_high(k2, n2) - k2 / n2, 2)));
CREATE OR REPLACE FUNCTION chainlens_diff_high AS (k1, n1, k2, n2) -> if(n1 = 0 OR n2 = 0, NULL,
    k1 / n1 - k2 / n2 + sqrt(pow(chainlens_wilson_high(k1, n1) - k1 / n1, 2)
                             + pow(k2 / n2 - chainlens_wilson_low(k2, n2), 2)));
ALTER TABLE obstacle_impact_daily ADD COLUMN IF NOT EXISTS diff Nullable(Float64);
ALTER TABLE obstacle_impact_daily ADD COLUMN IF NOT EXISTS diff_low Nullable(Float64);
ALTER TABLE obstacle_impact_daily ADD COLUMN IF NOT EXISTS diff_high Nullable(Float64);
ALTER TABLE obstacle_impact_daily ADD COLUMN IF NOT EXISTS orders_lost Nullable(Float64);
ALTER TABLE obstacle_impact_daily ADD COLUMN IF NOT EXISTS orders_lost_low Nullable(Float64);
ALTER TABLE obstacle_impact_daily ADD COLUMN IF NOT EXISTS orders_lost_high Nullable(Float64);
ALTER TABLE obstacle_impact_daily ADD COLUMN IF NOT EXISTS revenue_at_stake Nullable(Float64);
ALTER TABLE obstacle_impact_daily ADD COLUMN IF NOT EXISTS insufficient Bool DEFAULT true;
ALTER TABLE obstacle_impact_daily_staging ADD COLUMN IF NOT EXISTS diff Nullable(Float64);
ALTER TABLE obstacle_impact_daily_staging ADD COLUMN IF NOT EXISTS diff_low Nullable(Float64);
ALTER TABLE obstacle_impact_daily_staging ADD COLUMN IF NOT EXISTS diff_high Nullable(Float64);
ALTER TABLE obstacle_impact_daily_staging ADD COLUMN IF NOT EXISTS orders_lost Nullable(Float64);
ALTER TABLE obstacle_impact_daily_staging ADD COLUMN IF NOT EXISTS orders_lost_low Nullable(Float64);
ALTER TABLE obstacle_impact_daily_staging ADD COLUMN IF NOT EXISTS orders_lost_high Nullable(Float64);
ALTER TABLE obstacle_impact_daily_staging ADD COLUMN IF NOT EXISTS revenue_at_stake Nullable(Float64);
ALTER TABLE obstacle_impact_daily_staging ADD COLUMN IF NOT EXISTS insufficient Bool DEFAULT true;

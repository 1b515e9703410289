-- What the early warnings test (docs/metrics.md, "Early warning"): per hour in which
-- sessions ended (UTC), checkout step and device ('all' too), the sessions that reached
-- the step and those that left there. Rebuilt with the day of the sessions' start,
-- like the other rollups, so a check reads a few hundred rows.
CREATE TABLE IF NOT EXISTS checkout_hourly
(
    site_id   LowCardinality(String),
    day       Date,
    hour      DateTime('UTC'),
    step      LowCardinality(String),
    device    LowCardinality(String),
    reached   UInt64,
    abandoned UInt64
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, hour, step, device);
CREATE TABLE IF NOT EXISTS checkout_hourly_staging AS checkout_hourly;
-- Alerts per device and kind, in rolling windows of hours, as episodes that open and resolve.
-- Columns added to a sorting key take no default: rows written before read '' / 0 there
-- (device 'all', kind 'abandonment', a window of days, state 'open').
ALTER TABLE alerts
    ADD COLUMN IF NOT EXISTS device LowCardinality(String),
    ADD COLUMN IF NOT EXISTS kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS window_hours UInt16,
    ADD COLUMN IF NOT EXISTS state LowCardinality(String),
    MODIFY ORDER BY (site_id, step, window_start, window_end, device, kind, window_hours, state);

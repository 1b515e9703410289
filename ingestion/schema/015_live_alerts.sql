-- The live early warning (docs/metrics.md, "Live early warning"). `step_moves_hourly`: per hour
-- in which sessions entered a checkout step (UTC), the step and device ('all' too), the sessions
-- that entered it and how many of them had moved on to a later chain step within 1, 2, … 120
-- minutes; the live detector's baseline reads a few thousand of these rows, not the events.
CREATE TABLE IF NOT EXISTS step_moves_hourly
(
    site_id      LowCardinality(String),
    day          Date,
    hour         DateTime('UTC'),
    step         LowCardinality(String),
    device       LowCardinality(String),
    entered      UInt64,
    moved        UInt64,
    moved_within Array(UInt64)
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, hour, step, device);
-- Live alerts: how long the episode has lasted, what was expected and seen, and its likely cause.
-- `since` (the episode's start) is in the sorting key, so a later episode on the same step and
-- day is a row of its own.
ALTER TABLE alerts
    ADD COLUMN IF NOT EXISTS window_minutes UInt16 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS expected Float64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS observed UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS cause String DEFAULT '',
    ADD COLUMN IF NOT EXISTS causes Array(Tuple(factor String, value String, share Float64, usual_share Float64)),
    ADD COLUMN IF NOT EXISTS since DateTime64(3, 'UTC'),
    MODIFY ORDER BY (site_id, step, window_start, window_end, device, kind, window_hours, state, since);

-- Quantiles over a range of days are exact over the values themselves (docs/metrics.md, "Step
-- timing"), which the daily quantiles cannot give. The daily tables now keep those values on
-- their finest rows (every dimension broken out; empty on the rows with an 'all'), so a range
-- reads thousands of daily rows instead of every session: the transitions' times, the times
-- before abandoning a checkout step, and the times to a landing's first interaction.
-- Rows written before read empty there: the migration clears `rollup_state`, and the next
-- rollup rebuilds every day that has events.
ALTER TABLE step_timing_daily ADD COLUMN IF NOT EXISTS ms_values Array(Float64);
ALTER TABLE checkout_abandonment_daily ADD COLUMN IF NOT EXISTS ms_before_abandon_values Array(Float64);
ALTER TABLE landing_engagement_daily ADD COLUMN IF NOT EXISTS first_interaction_ms_values Array(Float64);
TRUNCATE TABLE IF EXISTS rollup_state;

-- Per-session figures that more than one table or report needs, computed once in
-- chain_sessions (docs/metrics.md, "Step timing" and "Time before abandoning"):
--   transitions        (step, next step, ms) for each step with a successor, by first entry
--   ms_before_abandon  last event time - entered(s, abandoned_at); NULL when purchased
ALTER TABLE chain_sessions ADD COLUMN IF NOT EXISTS
    transitions Array(Tuple(step LowCardinality(String), next_step LowCardinality(String), ms Float64));
ALTER TABLE chain_sessions ADD COLUMN IF NOT EXISTS ms_before_abandon Nullable(Float64);
ALTER TABLE chain_sessions_staging ADD COLUMN IF NOT EXISTS
    transitions Array(Tuple(step LowCardinality(String), next_step LowCardinality(String), ms Float64));
ALTER TABLE chain_sessions_staging ADD COLUMN IF NOT EXISTS ms_before_abandon Nullable(Float64);

-- chain_sessions keeps the obstacles each session met on the step it left at (docs/metrics.md,
-- "Abandonment"), so a question such as "who left on the step where their card was declined"
-- (docs/queries.md, query 6) reads one short array per session instead of matching the
-- (step, kind) pairs of every session. Rows written before read an empty array there: the
-- migration clears `rollup_state`, and the next rollup rebuilds every day that has events.
ALTER TABLE chain_sessions ADD COLUMN IF NOT EXISTS abandoned_obstacles Array(String);
TRUNCATE TABLE IF EXISTS rollup_state;

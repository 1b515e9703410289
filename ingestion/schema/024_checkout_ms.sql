-- chain_sessions keeps each session's checkout time (docs/metrics.md, "Checkout time"): from
-- entering the cart step to entering the last checkout step. A median over a week then reads
-- one number per session instead of its step and time arrays. Rows written before read NULL
-- there: the migration clears `rollup_state`, and the next rollup rebuilds every day that has
-- events.
ALTER TABLE chain_sessions ADD COLUMN IF NOT EXISTS checkout_ms Nullable(Float64);
TRUNCATE TABLE IF EXISTS rollup_state;

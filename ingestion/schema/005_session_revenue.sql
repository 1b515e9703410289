-- What a session is worth and where it came from (docs/metrics.md, "Orders and revenue"):
--   revenue   the purchase values of the session's orders, each order once
--   currency  the currency of its latest purchase with one
--   source    the referrer's host of the session's first event, 'direct' without one
-- Sessions rolled up before this migration read 0 / '' until `chainlens rollup --since` rebuilds their days.
ALTER TABLE chain_sessions ADD COLUMN IF NOT EXISTS revenue Float64 DEFAULT 0;
ALTER TABLE chain_sessions ADD COLUMN IF NOT EXISTS currency LowCardinality(String) DEFAULT '';
ALTER TABLE chain_sessions ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '';
ALTER TABLE chain_sessions_staging ADD COLUMN IF NOT EXISTS revenue Float64 DEFAULT 0;
ALTER TABLE chain_sessions_staging ADD COLUMN IF NOT EXISTS currency LowCardinality(String) DEFAULT '';
ALTER TABLE chain_sessions_staging ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '';

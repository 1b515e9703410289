-- Orders whose value could not be read (docs/metrics.md, "Orders and revenue"): counted, so
-- revenue is never quietly low. Staging copies follow their tables (store.match_staging).
ALTER TABLE chain_sessions ADD COLUMN IF NOT EXISTS orders_value_unknown UInt32 DEFAULT 0;

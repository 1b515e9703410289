-- chain_orders keeps the medium and campaign of its purchase session beside its source, so the
-- figures about orders (revival: what brought a customer back) read orders alone, not every
-- session of the site. Rows written before read '' there: the migration clears `rollup_state`,
-- and the next rollup rebuilds every day that has events.
ALTER TABLE chain_orders
    ADD COLUMN IF NOT EXISTS medium LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS campaign String DEFAULT '';
TRUNCATE TABLE IF EXISTS rollup_state;

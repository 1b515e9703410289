-- A shipped or delivered report dated before its order's purchase (docs/metrics.md, "After the
-- purchase"): the order is kept, flagged, and gives no time to ship or deliver.
ALTER TABLE chain_orders ADD COLUMN IF NOT EXISTS dated_before_purchase Bool DEFAULT false;

-- Who buys again (docs/metrics.md, "Customers and repeat purchases"). Both tables are rebuilt
-- whole at every pass from chain_orders, so an order arriving, a visitor identified later or a
-- late delivery reported changes them at once; they are partitioned by site only.
-- `customers`: one row per customer (the user id when the store identified them, else the
-- visitor id): first and last order, orders, revenue by currency, and the orders' ids.
CREATE TABLE IF NOT EXISTS customers
(
    site_id        LowCardinality(String),
    customer       String,
    first_order_at DateTime64(3, 'UTC'),
    last_order_at  DateTime64(3, 'UTC'),
    orders         UInt64,
    revenue        Map(String, Float64),
    order_ids      Array(String)
)
ENGINE = MergeTree
PARTITION BY site_id
ORDER BY (site_id, customer);
-- `repeat_purchase_daily`: per purchase day, link (the experience of the order) and device
-- ('all' too): the orders, those observed for the whole 30 and 90 days after them and those
-- whose customer ordered again within them; the 90-day repeat rate, and its difference with the
-- orders of the link's complement (their counts beside) with its 95% Newcombe interval; the
-- orders those 90 days lose (or gain) against the complement's rate.
CREATE TABLE IF NOT EXISTS repeat_purchase_daily
(
    site_id                LowCardinality(String),
    day                    Date,
    link                   LowCardinality(String),
    device                 LowCardinality(String),
    orders                 UInt64,
    observable_30d         UInt64,
    repeat_30d             UInt64,
    observable_90d         UInt64,
    repeat_90d             UInt64,
    rate_90d               Nullable(Float64),
    observable_90d_others  UInt64,
    repeat_90d_others      UInt64,
    diff_90d               Nullable(Float64),
    diff_low               Nullable(Float64),
    diff_high              Nullable(Float64),
    orders_lost_90d        Nullable(Float64)
)
ENGINE = MergeTree
PARTITION BY site_id
ORDER BY (site_id, day, link, device);

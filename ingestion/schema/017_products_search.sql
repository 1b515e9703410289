-- What the shop sells and what its shoppers look for (docs/metrics.md, "Products" and "Site
-- search"), per session start day, by device and segment ('all' too).
-- `product_daily`: per item (its id; the name it was last shown with), the sessions that viewed
-- it on the product step, had it on the cart step, had it in a checkout they left, and bought
-- it; the units bought and their revenue (price × quantity as the purchase event's items say).
CREATE TABLE IF NOT EXISTS product_daily
(
    site_id            LowCardinality(String),
    day                Date,
    item_id            String,
    device             LowCardinality(String),
    segment            LowCardinality(String),
    item_name          String,
    viewed             UInt64,
    carted             UInt64,
    checkout_abandoned UInt64,
    purchased          UInt64,
    units              Float64,
    revenue            Float64
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, device, segment, item_id);
-- `search_daily`: per search term (as the search step kept it), the searches, the sessions that
-- searched it, the sessions that left right after it (their last search, nothing after it) and
-- the sessions that searched it and purchased.
CREATE TABLE IF NOT EXISTS search_daily
(
    site_id  LowCardinality(String),
    day      Date,
    term     String,
    device   LowCardinality(String),
    segment  LowCardinality(String),
    searches UInt64,
    sessions UInt64,
    exits    UInt64,
    orders   UInt64
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, device, segment, term);

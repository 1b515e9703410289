-- Which form field shoppers leave at (docs/metrics.md, "Form fields"), from the forms add-on's
-- `form_field` and `form` reports: names only, never a value. Per session start day, step,
-- form (and field), device ('all' too).
CREATE TABLE IF NOT EXISTS form_fields_daily
(
    site_id                 LowCardinality(String),
    day                     Date,
    step                    LowCardinality(String),
    form                    String,
    field                   String,
    device                  LowCardinality(String),
    sessions_touched        UInt64,
    sessions_left_here      UInt64,
    median_ms               Nullable(Float64),
    errors                  UInt64,
    sessions_with_error     UInt64,
    corrections             UInt64,
    autofilled              UInt64,
    abandoned_with_error    UInt64,
    abandoned_without_error UInt64,
    diff                    Nullable(Float64),
    diff_low                Nullable(Float64),
    diff_high               Nullable(Float64),
    orders_lost             Nullable(Float64)
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, step, form, device, field);
CREATE TABLE IF NOT EXISTS form_daily
(
    site_id             LowCardinality(String),
    day                 Date,
    step                LowCardinality(String),
    form                String,
    device              LowCardinality(String),
    started             UInt64,
    submitted           UInt64,
    abandoned           UInt64,
    median_ms_to_submit Nullable(Float64)
)
ENGINE = MergeTree
PARTITION BY (site_id, day)
ORDER BY (site_id, day, step, form, device);

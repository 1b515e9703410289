-- campaign_daily (docs/metrics.md, "Campaigns"): per source, medium and campaign (the
-- session's first landing), sessions, carts (reached checkout_from), orders (purchased),
-- revenue by currency and cart abandonment. By device, with 'all' totals: a source with
-- its medium and campaign, a source alone, and the site.
INSERT INTO campaign_daily_staging (site_id, day, source, medium, campaign, device, sessions, carts, orders,
    revenue, carts_abandoned, cart_abandonment)
SELECT
    site_id, day,
    if(grouping(src) = 1, {all:String}, src) AS source,
    if(grouping(med) = 1, {all:String}, med) AS medium,
    if(grouping(camp) = 1, {all:String}, camp) AS campaign,
    if(grouping(d) = 1, {all:String}, d) AS device,
    count() AS sessions,
    countIf(has(steps, {cart:String})) AS carts,
    countIf(purchased) AS orders,
    -- to the cent (docs/metrics.md, "Orders and revenue"): the same bits whatever the order of the sum
    mapApply((c, v) -> (c, round(v, 2)), sumMapIf(map(currency, revenue), purchased)) AS revenue,
    countIf(has(steps, {cart:String}) AND NOT purchased) AS carts_abandoned,
    if(carts = 0, NULL, carts_abandoned / carts) AS cart_abandonment
FROM
(
    SELECT site_id, day, source AS src, medium AS med, campaign AS camp, device AS d, steps, purchased,
        currency, revenue
    FROM chain_sessions_staging
    WHERE site_id = {site:String} AND day IN {days:Array(Date)}
)
GROUP BY GROUPING SETS (
    (site_id, day, src, med, camp, d), (site_id, day, src, med, camp), (site_id, day, src, d),
    (site_id, day, src), (site_id, day, d), (site_id, day)
)

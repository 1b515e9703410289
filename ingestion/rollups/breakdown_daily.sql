-- breakdown_daily: per day, each session counted under each value it has of each dimension
-- (docs/metrics.md, "Breakdowns"), by device and segment and their 'all' totals: sessions,
-- carts (sessions that reached the cart step), carts left without a purchase, and orders
-- (sessions that purchased). A session with two custom events counts once under each.
-- Counted by device and segment first, then those counts summed into the totals.
INSERT INTO breakdown_daily_staging (site_id, day, dimension, value, device, segment, sessions, carts,
    carts_abandoned, orders)
SELECT site_id, day, dimension, value, cut.1 AS device, cut.2 AS segment,
    sum(n) AS sessions, sum(c) AS carts, sum(ca) AS carts_abandoned, sum(o) AS orders
FROM
(
    SELECT site_id, day, pair.1 AS dimension, pair.2 AS value,
        [(device, segment), (device, {all:String}), ({all:String}, segment), ({all:String}, {all:String})] AS cuts,
        count() AS n, countIf(cart) AS c, countIf(cart AND NOT purchased) AS ca, countIf(purchased) AS o
    FROM
    (
        SELECT site_id, day, device, segment, purchased, has(steps, {cart:String}) AS cart,
            arrayConcat(
                [('browser', if(browser = '', '(unknown)', browser)), ('os', if(os = '', '(unknown)', os)),
                 ('referrer', if(referrer_page = '', '(none)', referrer_page)),
                 ('landing_source', concat(landing_path, ' ← ', source))],
                arrayMap(t -> ('custom_event', t), tracks),
                arrayMap(f -> ('invalid_field', concat(f.1, ': ', f.2)), invalid_fields)) AS pairs
        FROM chain_sessions_staging
        WHERE site_id = {site:String} AND day IN {days:Array(Date)}
    )
    ARRAY JOIN pairs AS pair
    GROUP BY site_id, day, dimension, value, device, segment
)
ARRAY JOIN cuts AS cut
GROUP BY site_id, day, dimension, value, device, segment

-- repeat_purchase_daily (docs/metrics.md, "Customers and repeat purchases"): per purchase day,
-- link and device ('all' too), over the orders of customers_staging (this pass's customers). An
-- order is observable for N days when the data reaches N days past its purchase ({closed_before});
-- it repeats within N days when its customer's next order (by purchase time) came within them.
-- Its links: 'all'; late/on_time (its delivery against the promise); returned/not_returned;
-- met_obstacle/no_obstacle (in its purchase session); detractor/passive/promoter (its NPS answer);
-- offer_treated/offer_held_out (the intervention arm of its purchase session). Each link is set
-- against its complement, the orders with another value of the same experience (late against
-- on time, detractor against passive and promoter): diff_90d = the link's 90-day repeat rate
-- minus the complement's, with its 95% Newcombe interval; orders_lost_90d = -diff_90d × orders.
INSERT INTO repeat_purchase_daily_staging (site_id, day, link, device, orders, observable_30d, repeat_30d,
    observable_90d, repeat_90d, rate_90d, observable_90d_others, repeat_90d_others, diff_90d, diff_low, diff_high,
    orders_lost_90d)
SELECT {site:String} AS site_id, day, pair.1 AS link, dev AS device,
    countIf(pair.2) AS orders,
    countIf(pair.2 AND seen_30) AS observable_30d, countIf(pair.2 AND seen_30 AND again_30) AS repeat_30d,
    countIf(pair.2 AND seen_90) AS observable_90d, countIf(pair.2 AND seen_90 AND again_90) AS repeat_90d,
    if(observable_90d = 0, NULL, repeat_90d / observable_90d) AS rate_90d,
    countIf(NOT pair.2 AND seen_90) AS observable_90d_others,
    countIf(NOT pair.2 AND seen_90 AND again_90) AS repeat_90d_others,
    if(observable_90d = 0 OR observable_90d_others = 0, NULL, rate_90d - repeat_90d_others / observable_90d_others)
        AS diff_90d,
    chainlens_diff_low(repeat_90d, observable_90d, repeat_90d_others, observable_90d_others) AS diff_low,
    chainlens_diff_high(repeat_90d, observable_90d, repeat_90d_others, observable_90d_others) AS diff_high,
    -diff_90d * orders AS orders_lost_90d
FROM
(
    SELECT day, device, purchased_at,
        purchased_at + INTERVAL 30 DAY <= {closed_before:DateTime64(3)} AS seen_30,
        purchased_at + INTERVAL 90 DAY <= {closed_before:DateTime64(3)} AS seen_90,
        has_next AND next_at <= purchased_at + INTERVAL 30 DAY AS again_30,
        has_next AND next_at <= purchased_at + INTERVAL 90 DAY AS again_90,
        -- (link, true) for each experience the order has; (other value, false) for the rest of its family
        arrayConcat([('all', true)], arrayFlatten(arrayMap((family, value) -> if(value = '', [],
            arrayMap(v -> (v, v = value), family)),
            [['late', 'on_time'], ['returned', 'not_returned'], ['met_obstacle', 'no_obstacle'],
             ['detractor', 'passive', 'promoter'], ['offer_treated', 'offer_held_out']],
            [multiIf(on_time IS NULL, '', on_time, 'on_time', 'late'), if(returned, 'returned', 'not_returned'),
             if(met_obstacle, 'met_obstacle', 'no_obstacle'),
             multiIf(score IS NULL, '', score <= 6, 'detractor', score <= 8, 'passive', 'promoter'),
             multiIf(arm = 'treatment', 'offer_treated', arm = 'holdout', 'offer_held_out', '')]))) AS pairs
    FROM
    (
        SELECT c.customer AS customer, o.order_id AS order_id, o.day AS day, o.device AS device,
            assumeNotNull(o.purchased_at) AS purchased_at, o.on_time AS on_time, o.returned AS returned,
            o.met_obstacle AS met_obstacle, o.score AS score, a.arm AS arm,
            count() OVER next_one AS has_next, any(assumeNotNull(o.purchased_at)) OVER next_one AS next_at
        FROM (SELECT customer, order_id FROM customers_staging ARRAY JOIN order_ids AS order_id) AS c
        INNER JOIN
        (
            SELECT order_id, session_id, day, device, purchased_at, on_time, returned, met_obstacle, score
            FROM chain_orders WHERE site_id = {site:String} AND purchased_at IS NOT NULL
        ) AS o ON c.order_id = o.order_id
        LEFT JOIN
        (
            SELECT session_id, argMin(props['arm'], ts) AS arm FROM events
            WHERE site_id = {site:String} AND type = 'track' AND name = 'intervention' GROUP BY session_id
        ) AS a ON o.session_id = a.session_id
        WINDOW next_one AS (PARTITION BY c.customer ORDER BY o.purchased_at, o.order_id
                            ROWS BETWEEN 1 FOLLOWING AND 1 FOLLOWING)
    )
)
ARRAY JOIN pairs AS pair
ARRAY JOIN [device, {all:String}] AS dev
GROUP BY day, link, dev

-- customers: one row per customer of the site (docs/metrics.md, "Customers and repeat
-- purchases"), from every order chain_orders holds with its purchase time. An order's customer:
--   1. the user id its session was identified with (its latest `identify`, or any event's uid);
--   2. else the one user id its visitor was identified with in any session (a visitor seen with
--      two or more user ids, a shared device, links to none of them);
--   3. else its visitor id. An order with neither (a session without a visitor id) has none.
-- Revenue is summed by currency, to the cent; order_ids lists the customer's orders.
INSERT INTO customers_staging (site_id, customer, first_order_at, last_order_at, orders, revenue, order_ids)
SELECT {site:String} AS site_id, customer, min(purchased_at) AS first_order_at, max(purchased_at) AS last_order_at,
    count() AS orders,
    mapApply((c, v) -> (c, round(v, 2)), sumMapIf(map(currency, value), has_value)) AS revenue,  -- to the cent
    arraySort(groupArray(order_id)) AS order_ids
FROM
(
    SELECT o.order_id AS order_id, assumeNotNull(o.purchased_at) AS purchased_at, ifNull(o.value, 0) AS value,
        o.value IS NOT NULL AS has_value, o.currency AS currency,
        multiIf(su.user != '', su.user, vu.user != '', vu.user, s.anon_id) AS customer
    FROM
    (
        SELECT order_id, session_id, purchased_at, value, currency FROM chain_orders
        WHERE site_id = {site:String} AND purchased_at IS NOT NULL
    ) AS o
    LEFT JOIN
    (
        SELECT session_id, anon_id FROM chain_sessions WHERE site_id = {site:String}
    ) AS s ON o.session_id = s.session_id
    LEFT JOIN
    (
        SELECT session_id, argMax(user_id, ts) AS user FROM events
        WHERE site_id = {site:String} AND user_id != '' GROUP BY session_id
    ) AS su ON o.session_id = su.session_id
    LEFT JOIN
    (
        SELECT anon_id, if(uniqExact(user_id) = 1, any(user_id), '') AS user FROM events
        WHERE site_id = {site:String} AND user_id != '' AND anon_id != '' GROUP BY anon_id
    ) AS vu ON s.anon_id = vu.anon_id
)
WHERE customer != ''
GROUP BY customer

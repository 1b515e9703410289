-- revival: Customers who came back after a gap longer than the site's usual time between orders (the 90th percentile of every customer's gaps between consecutive orders), by the source, medium and campaign of the session of the order that brought them back, for the orders placed in the days shown (docs/metrics.md, "Customers and repeat purchases").
WITH gaps AS (
    SELECT o.day AS day, o.session_id AS session_id, c.customer AS customer,
           dateDiff('second', lagInFrame(o.purchased_at) OVER w, o.purchased_at) / 86400 AS gap_days,
           row_number() OVER w > 1 AS again
    FROM (SELECT customer, order_id FROM customers ARRAY JOIN order_ids AS order_id WHERE site_id = {site:String}) AS c
    INNER JOIN (SELECT order_id, session_id, day, assumeNotNull(purchased_at) AS purchased_at FROM chain_orders
                WHERE site_id = {site:String} AND purchased_at IS NOT NULL) AS o ON c.order_id = o.order_id
    WINDOW w AS (PARTITION BY c.customer ORDER BY o.purchased_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
usual AS (SELECT quantileExactInclusive(0.9)(gap_days) AS p90 FROM gaps WHERE again)
SELECT s.source AS source, s.medium AS medium, s.campaign AS campaign, count() AS revived_orders,
       uniqExact(g.customer) AS customers, round(any(u.p90), 1) AS usual_gap_p90_days
FROM gaps AS g CROSS JOIN usual AS u
LEFT JOIN (SELECT session_id, source, medium, campaign FROM chain_sessions WHERE site_id = {site:String}) AS s
    ON g.session_id = s.session_id
WHERE g.again AND g.gap_days > u.p90 AND g.day BETWEEN {start:Date} AND {end:Date}
GROUP BY source, medium, campaign
ORDER BY revived_orders DESC, source, medium, campaign LIMIT 10

-- revival: Customers who came back after a gap longer than the site's usual time between orders (the 90th percentile of every customer's gaps between consecutive orders), by the source, medium and campaign of the session of the order that brought them back, for the orders placed in the days shown (docs/metrics.md, "Customers and repeat purchases").
-- The gaps are each customer's, over all their orders; the 90th percentile is over every repeat
-- order's gap (a window over all rows, so the orders are read once).
SELECT source, medium, campaign, count() AS revived_orders, uniqExact(customer) AS customers,
       round(any(p90), 1) AS usual_gap_p90_days
FROM (
    SELECT day, source, medium, campaign, customer, gap_days, again,
           quantileExactInclusiveIf(0.9)(gap_days, again) OVER () AS p90
    FROM (
        SELECT o.day AS day, o.source AS source, o.medium AS medium, o.campaign AS campaign,
               c.customer AS customer,
               dateDiff('second', lagInFrame(o.purchased_at) OVER w, o.purchased_at) / 86400 AS gap_days,
               row_number() OVER w > 1 AS again
        FROM (SELECT customer, order_id FROM customers ARRAY JOIN order_ids AS order_id
              WHERE site_id = {site:String}) AS c
        INNER JOIN (SELECT order_id, day, source, medium, campaign, assumeNotNull(purchased_at) AS purchased_at
                    FROM chain_orders WHERE site_id = {site:String} AND purchased_at IS NOT NULL) AS o
            ON c.order_id = o.order_id
        WINDOW w AS (PARTITION BY c.customer ORDER BY o.purchased_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
)
WHERE again AND gap_days > p90 AND day BETWEEN {start:Date} AND {end:Date}
GROUP BY source, medium, campaign
ORDER BY revived_orders DESC, source, medium, campaign LIMIT 10

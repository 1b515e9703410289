-- campaigns: What each source, medium and campaign brought, by orders (docs/metrics.md, "Campaigns").
SELECT source, medium, campaign, sum(sessions) AS sessions, sum(carts) AS carts, sum(orders) AS orders,
       if(sessions = 0, NULL, orders / sessions) AS conversion_rate,
       mapApply((c, v) -> (c, round(v, 2)), sumMap(revenue)) AS revenue,
       if(carts = 0, NULL, sum(carts_abandoned) / carts) AS cart_abandonment
FROM campaign_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date} AND medium != {all:String}
  AND device = {device:String}
GROUP BY source, medium, campaign ORDER BY orders DESC, sessions DESC, source LIMIT 15

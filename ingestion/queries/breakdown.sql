-- breakdown: The sessions, carts left and orders of each value of one dimension ({dimension:String}: browser, os, referrer, landing_source, custom_event or invalid_field), the 15 with most sessions, or those named in {values:Array(String)} when it is not empty (docs/metrics.md, "Breakdowns").
SELECT value, sum(sessions) AS sessions, sum(carts) AS carts, sum(orders) AS orders,
       if(sessions = 0, NULL, orders / sessions) AS conversion_rate,
       if(carts = 0, NULL, sum(carts_abandoned) / carts) AS cart_abandonment
FROM breakdown_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date} AND dimension = {dimension:String}
  AND device = {device:String} AND segment = {segment:String}
  AND (empty({values:Array(String)}) OR has({values:Array(String)}, value))
GROUP BY value ORDER BY sessions DESC, value LIMIT 15

-- breakdown: For each dimension (browser, os, referrer, landing_source, custom_event, invalid_field), the sessions, carts left and orders of its values, the 15 with most sessions in each, or the (dimension, value) pairs in {pairs:Array(Tuple(String, String))} when it is not empty (docs/metrics.md, "Breakdowns").
SELECT dimension, value, sum(sessions) AS sessions, sum(carts) AS carts, sum(orders) AS orders,
       if(sessions = 0, NULL, orders / sessions) AS conversion_rate,
       if(carts = 0, NULL, sum(carts_abandoned) / carts) AS cart_abandonment
FROM breakdown_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device = {device:String} AND segment = {segment:String}
  AND (empty({pairs:Array(Tuple(String, String))}) OR has({pairs:Array(Tuple(String, String))}, (dimension, value)))
GROUP BY dimension, value ORDER BY dimension, sessions DESC, value LIMIT 15 BY dimension

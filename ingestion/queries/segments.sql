-- segments: Each segment's sessions, orders and cart abandonment (docs/metrics.md, "Behavior segments").
SELECT segment, count() AS sessions, countIf(purchased) AS orders,
       if(sessions = 0, NULL, orders / sessions) AS conversion_rate,
       countIf(has(steps, {cart:String})) AS carts,
       if(carts = 0, NULL, countIf(has(steps, {cart:String}) AND NOT purchased) / carts)
           AS cart_abandonment
FROM chain_sessions WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND ({device:String} = {all:String} OR device = {device:String})
  AND ({segment:String} = {all:String} OR segment = {segment:String}) GROUP BY segment ORDER BY sessions DESC

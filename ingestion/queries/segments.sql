-- segments: Sessions, orders, conversion, carts and cart abandonment of each behavior segment
-- (docs/metrics.md, "Behavior segments"), from breakdown_daily's browser rows: every session
-- has exactly one browser value ('(unknown)' when unread), so they hold every session once.
SELECT segment, sum(sessions) AS sessions, sum(orders) AS orders,
       if(sessions = 0, NULL, orders / sessions) AS conversion_rate, sum(carts) AS carts,
       if(carts = 0, NULL, sum(carts_abandoned) / carts) AS cart_abandonment
FROM breakdown_daily WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND dimension = 'browser' AND device = {device:String} AND segment != {all:String}
  AND ({segment:String} = {all:String} OR segment = {segment:String}) GROUP BY segment ORDER BY sessions DESC

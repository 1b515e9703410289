-- cart_by_day: Cart abandonment per day (docs/metrics.md, "Cart abandonment").
SELECT day, sessions_reached AS carts, sessions_purchased AS bought, if(carts = 0, NULL,
    1 - bought / carts) AS cart_abandonment
FROM chain_daily WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device = {device:String} AND visitor = {all:String} AND segment = {segment:String}
  AND step = {cart:String} ORDER BY day

-- cart: Cart abandonment over the range (docs/metrics.md, "Cart abandonment").
SELECT sum(sessions_reached) AS carts, sum(sessions_purchased) AS bought, if(carts = 0, NULL,
    1 - bought / carts) AS cart_abandonment
FROM chain_daily WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device = {device:String} AND visitor = {all:String} AND segment = {segment:String}
  AND step = {cart:String}

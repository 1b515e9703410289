-- products: Each product's sessions that viewed it, carted it, left it in a checkout and bought it, with the units and revenue bought, the 15 most viewed, or those named in {values:Array(String)} (item ids) when it is not empty (docs/metrics.md, "Products").
SELECT item_id, max(item_name) AS item_name, sum(viewed) AS viewed, sum(carted) AS carted,
       sum(purchased) AS purchased, round(sum(units), 2) AS units, round(sum(revenue), 2) AS revenue,
       if(viewed = 0, NULL, carted / viewed) AS view_to_cart,
       if(carted = 0, NULL, purchased / carted) AS cart_to_purchase,
       sum(checkout_abandoned) AS checkout_abandoned
FROM product_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device = {device:String} AND segment = {segment:String}
  AND (empty({values:Array(String)}) OR has({values:Array(String)}, item_id))
GROUP BY item_id ORDER BY viewed DESC, carted DESC, item_id LIMIT 15

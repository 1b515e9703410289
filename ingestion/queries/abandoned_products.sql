-- abandoned_products: Products most often in carts that were left during checkout, counted by
-- session (docs/metrics.md, "Products").
SELECT item_id, max(item_name) AS item_name, sum(checkout_abandoned) AS abandoned_carts
FROM product_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device = {device:String} AND segment = {segment:String}
GROUP BY item_id HAVING abandoned_carts > 0 ORDER BY abandoned_carts DESC, item_id LIMIT 10

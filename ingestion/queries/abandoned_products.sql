-- abandoned_products: Products most often in carts that were left during checkout
-- (docs/metrics.md, "Orders and revenue").
SELECT item.1 AS item_id, anyLast(item.2) AS item_name, uniqExact(session_id) AS abandoned_carts
FROM events
ARRAY JOIN JSONExtract(props['item_list'], 'Array(Tuple(String, String))') AS item
WHERE site_id = {site:String} AND mapContains(props, 'item_list') AND has({checkout:Array(String)}, step)
  AND NOT is_bot
  AND ts >= toDateTime64({start:Date}, 3, 'UTC') - INTERVAL 1 DAY
  AND ts < toDateTime64({end:Date}, 3, 'UTC') + INTERVAL 2 DAY
  AND session_id IN (SELECT session_id FROM chain_sessions
                     WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
                       AND ({device:String} = {all:String} OR device = {device:String})
                       AND ({segment:String} = {all:String} OR segment = {segment:String})
                       AND has({checkout:Array(String)}, abandoned_at))
GROUP BY item_id ORDER BY abandoned_carts DESC, item_id LIMIT 10

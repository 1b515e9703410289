-- return_reasons: Why orders were returned, most frequent first (docs/metrics.md, "After the purchase").
SELECT return_reason AS reason, count() AS returns
FROM chain_orders WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND ({device:String} = {all:String} OR device = {device:String})
  AND ({segment:String} = {all:String} OR segment = {segment:String}) AND returned
GROUP BY reason ORDER BY returns DESC, reason LIMIT 5

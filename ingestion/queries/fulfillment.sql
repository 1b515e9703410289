-- fulfillment: Delivery over the range: exact quantiles from the orders themselves
-- (docs/metrics.md, "After the purchase").
SELECT count() AS orders, countIf(shipped_at IS NOT NULL) AS shipped,
       countIf(delivered_at IS NOT NULL) AS delivered,
       quantileExactInclusive(0.5)(hours_to_ship) AS p50_hours_to_ship,
       quantileExactInclusive(0.5)(hours_to_deliver) AS p50_hours_to_deliver,
       quantileExactInclusive(0.9)(hours_to_deliver) AS p90_hours_to_deliver,
       if(countIf(on_time IS NOT NULL) = 0, NULL, countIf(on_time) / countIf(on_time IS NOT NULL))
           AS on_time_share,
       if(orders = 0, NULL, countIf(tracking_viewed) / orders) AS tracking_viewed_share,
       if(orders = 0, NULL, countIf(returned) / orders) AS returned_share
FROM chain_orders WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND ({device:String} = {all:String} OR device = {device:String})
  AND ({segment:String} = {all:String} OR segment = {segment:String})

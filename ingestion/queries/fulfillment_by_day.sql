-- fulfillment_by_day: Per purchase day, delivery times and the share on time (docs/metrics.md, "After the purchase").
SELECT f.day AS day, f.orders AS orders, f.shipped AS shipped, f.delivered AS delivered,
       f.p50_hours_to_deliver AS p50_hours_to_deliver, f.p90_hours_to_deliver AS p90_hours_to_deliver,
       f.on_time_share AS on_time_share, f.tracking_viewed_share AS tracking_viewed_share,
       f.returned_share AS returned_share
FROM fulfillment_daily AS f
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date} AND device = {device:String}
  AND segment = {segment:String} ORDER BY day

-- repeat: Do bad experiences cost future orders? Per link, the orders of the purchase days shown, those observable for 90 days and those whose customer ordered again within them, the 90-day repeat rate against the link's complement with its 95% interval, the orders lost in those 90 days, and whether either side has too few observable orders (docs/metrics.md, "Customers and repeat purchases").
SELECT link, sum(orders) AS orders, sum(observable_30d) AS observable_30d, sum(repeat_30d) AS repeat_30d,
       sum(observable_90d) AS observable_90d, sum(repeat_90d) AS repeat_90d,
       if(observable_90d = 0, NULL, repeat_90d / observable_90d) AS rate_90d,
       sum(observable_90d_others) AS observable_others, sum(repeat_90d_others) AS repeat_others,
       if(observable_others = 0, NULL, repeat_others / observable_others) AS rate_others,
       rate_90d - rate_others AS diff_90d,
       chainlens_diff_low(repeat_90d, observable_90d, repeat_others, observable_others) AS diff_low,
       chainlens_diff_high(repeat_90d, observable_90d, repeat_others, observable_others) AS diff_high,
       -diff_90d * orders AS orders_lost_90d,
       link != 'all' AND (observable_90d < {min_sample:UInt32} OR observable_others < {min_sample:UInt32})
           AS insufficient
FROM repeat_purchase_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date} AND device = {device:String}
GROUP BY link
ORDER BY indexOf(['all', 'late', 'on_time', 'returned', 'not_returned', 'met_obstacle', 'no_obstacle', 'detractor',
                  'passive', 'promoter', 'offer_treated', 'offer_held_out'], link)

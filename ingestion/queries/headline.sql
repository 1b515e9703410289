-- headline: A shop owner's first figures: sessions, orders, revenue, average order value and
-- conversion (docs/metrics.md, "Orders and revenue"). Money is rounded to cents; orders whose
-- value could not be read are counted apart, so the revenue says when it is short.
SELECT count() AS sessions, countIf(purchased) AS orders, round(sum(revenue), 2) AS revenue,
       anyIf(currency, currency != '') AS currency, sum(orders_value_unknown) AS orders_value_unknown,
       if(orders = 0, NULL, round(revenue / orders, 2)) AS average_order_value,
       if(sessions = 0, NULL, orders / sessions) AS conversion_rate
FROM chain_sessions WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND ({device:String} = {all:String} OR device = {device:String})
  AND ({segment:String} = {all:String} OR segment = {segment:String})

-- checkout_by_day: Abandonment per checkout step and day: the dashboard's trend lines (docs/metrics.md, "Abandonment").
SELECT step, step_index, day, reached, abandonment_rate
FROM checkout_abandonment_daily WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device = {device:String} AND visitor = {all:String} AND segment = {segment:String} ORDER BY step_index, day

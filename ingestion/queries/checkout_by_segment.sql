-- checkout_by_segment: Each segment's abandonment of every checkout step, side by side
-- (docs/metrics.md, "Behavior segments").
SELECT segment, step, step_index, sum(reached) AS reached, sum(abandoned) AS abandoned,
       abandoned / reached AS abandonment_rate
FROM checkout_abandonment_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date} AND device = {device:String}
  AND visitor = {all:String} AND segment != {all:String}
GROUP BY segment, step, step_index ORDER BY step_index, segment

-- checkout: Each checkout step: reached, continued, abandoned, its rate and the median time before
-- abandoning (docs/metrics.md, "Abandonment" and "Time before abandoning").
SELECT a.step AS step, a.step_index AS step_index, a.reached AS reached, a.continued AS continued,
       a.abandoned AS abandoned, a.abandoned / a.reached AS abandonment_rate,
       w.median_ms AS median_ms_before_abandon
FROM (SELECT step, step_index, sum(reached) AS reached, sum(continued) AS continued,
             sum(abandoned) AS abandoned
      FROM checkout_abandonment_daily WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
        AND device = {device:String} AND visitor = {all:String}
        AND segment = {segment:String} GROUP BY step, step_index) AS a
LEFT JOIN (SELECT step, quantileExactInclusiveArray(0.5)(ms_before_abandon_values) AS median_ms
           FROM checkout_abandonment_daily WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
             AND device != {all:String} AND visitor != {all:String} AND segment != {all:String}
             AND ({device:String} = {all:String} OR device = {device:String})
             AND ({segment:String} = {all:String} OR segment = {segment:String})
           GROUP BY step HAVING sum(length(ms_before_abandon_values)) > 0) AS w
ON a.step = w.step
ORDER BY a.step_index

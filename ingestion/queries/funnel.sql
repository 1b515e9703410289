-- funnel: Sessions reaching each chain step, and of those how many bought (docs/metrics.md, "Sessions").
SELECT step, step_index, sum(sessions_reached) AS reached, sum(sessions_purchased) AS purchased
FROM chain_daily WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device = {device:String} AND visitor = {all:String}
  AND segment = {segment:String} GROUP BY step, step_index ORDER BY step_index

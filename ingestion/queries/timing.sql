-- timing: Step timing: exact quantiles over the range's transitions (docs/metrics.md, "Step timing").
SELECT t.step AS step, t.next_step AS next_step, count() AS transitions,
       quantilesExactInclusive(0.5, 0.9)(t.ms) AS q, q[1] AS p50_ms, q[2] AS p90_ms
FROM (SELECT arrayJoin(transitions) AS t FROM chain_sessions WHERE site_id = {site:String}
  AND day BETWEEN {start:Date} AND {end:Date} AND ({device:String} = {all:String} OR device = {device:String})
  AND ({segment:String} = {all:String} OR segment = {segment:String}))
GROUP BY step, next_step
ORDER BY transitions DESC, step, next_step

-- timing: Step timing: exact quantiles over the range's transitions (docs/metrics.md, "Step timing").
-- The times are those step_timing_daily keeps on its rows with device, visitor and segment all
-- broken out: every transition of the range once, as in chain_sessions.transitions.
SELECT step, next_step, sum(length(ms_values)) AS transitions,
       quantilesExactInclusiveArray(0.5, 0.9)(ms_values) AS q, q[1] AS p50_ms, q[2] AS p90_ms
FROM step_timing_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device != {all:String} AND visitor != {all:String} AND segment != {all:String}
  AND ({device:String} = {all:String} OR device = {device:String})
  AND ({segment:String} = {all:String} OR segment = {segment:String})
GROUP BY step, next_step
ORDER BY transitions DESC, step, next_step

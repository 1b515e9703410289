-- obstacles: Obstacles ranked by the orders they cost, with 95% intervals over the range
-- (docs/metrics.md, "Obstacle impact").
SELECT step, kind, sum(sessions_with) AS sessions_with, sum(abandoned_with) AS met_and_left,
       met_and_left / sessions_with AS rate_with,
       sum(sessions_without) AS sessions_without, sum(abandoned_without) AS others_left,
       if(sessions_without = 0, NULL, others_left / sessions_without) AS rate_without,
       if(rate_without = 0, NULL, rate_with / rate_without) AS lift,
       if(sessions_without = 0, NULL, rate_with - rate_without) AS diff,
       chainlens_diff_low(met_and_left, sessions_with, others_left, sessions_without) AS diff_low,
       chainlens_diff_high(met_and_left, sessions_with, others_left, sessions_without) AS diff_high,
       sessions_with * diff AS orders_lost, sessions_with * diff_low AS orders_lost_low,
       sessions_with * diff_high AS orders_lost_high,
       orders_lost * (SELECT nullIf(quantileExactInclusive(0.5)(revenue), 0) FROM chain_sessions
                      WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date} AND purchased
                        AND revenue > 0) AS revenue_at_stake,
       sessions_with < {min_sample:UInt32} OR sessions_without < {min_sample:UInt32} AS insufficient,
       diff_low <= 0 AND diff_high >= 0 AS includes_zero
FROM obstacle_impact_daily WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND segment = {segment:String}
GROUP BY step, kind ORDER BY insufficient, orders_lost DESC NULLS LAST, sessions_with DESC

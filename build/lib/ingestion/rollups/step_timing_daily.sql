-- step_timing_daily (DESIGN, "Step timing"): a session's steps ordered by entered;
-- each step with a successor makes one transition to the step entered next, timed
-- entered(s, next) - entered(s, k). Backward moves in the chain are transitions too.
-- Quantiles are over transitions, exact, interpolated linearly between closest ranks.
INSERT INTO step_timing_daily_staging (site_id, day, step, next_step, device, visitor, transitions,
    p50_ms, p75_ms, p90_ms, p99_ms)
SELECT site_id, day, step, next_step, device, visitor, transitions, q[1], q[2], q[3], q[4]
FROM
(
    SELECT
        site_id, day, step, next_step,
        if(grouping(d) = 1, 'all', d) AS device,
        if(grouping(v) = 1, 'all', v) AS visitor,
        count() AS transitions,
        quantilesExactInclusive(0.5, 0.75, 0.9, 0.99)(ms) AS q
    FROM
    (
        SELECT site_id, day, device AS d, visitor AS v, t.1 AS step, t.2 AS next_step, t.3 AS ms
        FROM chain_sessions_staging
        ARRAY JOIN arrayMap(i -> (steps[i], steps[i + 1],
            toFloat64(toUnixTimestamp64Milli(entered[i + 1]) - toUnixTimestamp64Milli(entered[i]))),
            range(1, length(steps))) AS t
        WHERE site_id = {site:String} AND day IN {days:Array(Date)}
    )
    GROUP BY GROUPING SETS (
        (site_id, day, step, next_step, d, v), (site_id, day, step, next_step, d),
        (site_id, day, step, next_step, v), (site_id, day, step, next_step)
    )
)

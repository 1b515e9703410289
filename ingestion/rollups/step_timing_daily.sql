-- step_timing_daily (docs/metrics.md, "Step timing"): the transitions chain_sessions
-- holds per session, grouped; quantiles are over transitions, exact, interpolated
-- linearly between closest ranks.
INSERT INTO step_timing_daily_staging (site_id, day, step, next_step, device, visitor, transitions,
    p50_ms, p75_ms, p90_ms, p99_ms)
SELECT site_id, day, step, next_step, device, visitor, transitions, q[1], q[2], q[3], q[4]
FROM
(
    SELECT
        site_id, day, step, next_step,
        if(grouping(d) = 1, {all:String}, d) AS device,
        if(grouping(v) = 1, {all:String}, v) AS visitor,
        count() AS transitions,
        quantilesExactInclusive(0.5, 0.75, 0.9, 0.99)(ms) AS q
    FROM
    (
        SELECT site_id, day, device AS d, visitor AS v, t.1 AS step, t.2 AS next_step, t.3 AS ms
        FROM chain_sessions_staging
        ARRAY JOIN transitions AS t
        WHERE site_id = {site:String} AND day IN {days:Array(Date)}
    )
    GROUP BY GROUPING SETS (
        (site_id, day, step, next_step, d, v), (site_id, day, step, next_step, d),
        (site_id, day, step, next_step, v), (site_id, day, step, next_step)
    )
)

-- step_timing_daily (docs/metrics.md, "Step timing"): the transitions chain_sessions
-- holds per session, grouped; quantiles are over transitions, exact, interpolated
-- linearly between closest ranks.
-- Each session counts in the eight (device, visitor, segment) groups of chainlens_cuts; the
-- rows with all three broken out keep the transitions' times (ms_values) for range quantiles.
-- The times are gathered by (device, visitor, segment) first, and each of the eight groups
-- takes its quantiles over the gathered times of the rows it holds: the same values.
INSERT INTO step_timing_daily_staging (site_id, day, step, next_step, device, visitor, segment, transitions,
    p50_ms, p75_ms, p90_ms, p99_ms, ms_values)
SELECT site_id, day, step, next_step, device, visitor, segment, transitions, q[1], q[2], q[3], q[4], ms_values
FROM
(
    SELECT
        site_id, day, step, next_step,
        cut.1 AS device, cut.2 AS visitor, cut.3 AS segment,
        sum(n) AS transitions,
        quantilesExactInclusiveArray(0.5, 0.75, 0.9, 0.99)(values) AS q,
        if(device != {all:String} AND visitor != {all:String} AND segment != {all:String}, any(values), [])
            AS ms_values
    FROM
    (
        SELECT site_id, day, step, next_step, chainlens_cuts(device, visitor, segment, {all:String}) AS cuts,
            count() AS n, groupArray(ms) AS values
        FROM
        (
            SELECT site_id, day, device, visitor, segment, t.1 AS step, t.2 AS next_step, t.3 AS ms
            FROM chain_sessions_staging
            ARRAY JOIN transitions AS t
            WHERE site_id = {site:String} AND day IN {days:Array(Date)}
        )
        GROUP BY site_id, day, step, next_step, device, visitor, segment
    )
    ARRAY JOIN cuts AS cut
    GROUP BY site_id, day, step, next_step, cut
)

-- chain_daily: for every chain step, sessions that reached it and, of those, sessions
-- that purchased (docs/metrics.md, "Sessions": reached(k), purchased(s)). Derived from chain_sessions.
-- Each session counts in the eight (device, visitor, segment) groups of chainlens_cuts, as
-- one 0/1 per chain step summed element-wise, then one row per step. The sessions are summed
-- by (device, visitor, segment) first and those sums into the eight groups: sums add up.
INSERT INTO chain_daily_staging (site_id, day, step, step_index, device, visitor, segment, sessions_reached,
    sessions_purchased)
WITH {chain:Array(String)} AS chain
SELECT site_id, day, step, step_index, cut.1 AS device, cut.2 AS visitor, cut.3 AS segment,
    reached[step_index] AS sessions_reached, bought[step_index] AS sessions_purchased
FROM
(
    SELECT site_id, day, cut, sumForEach(groups_reached) AS reached, sumForEach(groups_bought) AS bought
    FROM
    (
        SELECT site_id, day, chainlens_cuts(device, visitor, segment, {all:String}) AS cuts,
            sumForEach(flags) AS groups_reached, sumForEach(arrayMap(f -> f * purchased, flags)) AS groups_bought
        FROM
        (
            SELECT site_id, day, device, visitor, segment,
                arrayMap(k -> toUInt64(has(steps, k)), chain) AS flags, toUInt64(purchased) AS purchased
            FROM chain_sessions_staging
            WHERE site_id = {site:String} AND day IN {days:Array(Date)}
        )
        GROUP BY site_id, day, device, visitor, segment
    )
    ARRAY JOIN cuts AS cut
    GROUP BY site_id, day, cut
)
ARRAY JOIN chain AS step, arrayEnumerate(chain) AS step_index

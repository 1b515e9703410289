-- step_moves_hourly (docs/metrics.md, "Live early warning"): for each checkout step a session
-- entered, the hour of its first entry (UTC) and the minutes until it first entered a later
-- chain step (a purchase included), per device and for 'all'. The sessions are counted per
-- minute first (0 when no later step came, 121 for any wait past two hours), so moved_within
-- is summed over those counts rather than over every session's 120 flags.
INSERT INTO step_moves_hourly_staging (site_id, day, hour, step, device, entered, moved, moved_within)
SELECT
    site_id, day, hour, step,
    if(grouping(d) = 1, {all:String}, d) AS device,
    sum(n) AS entered,
    sumIf(n, minutes > 0) AS moved,
    sumForEach(arrayMap(k -> if(minutes > 0 AND minutes <= k, n, 0), range(1, 121))) AS moved_within
FROM
(
    SELECT site_id, day, d, step, hour, minutes, count() AS n
    FROM
    (
        WITH {chain:Array(String)} AS chain
        SELECT
            site_id, day, device AS d, step, entry,
            toStartOfHour(entry) AS hour,
            arrayFilter((t, s) -> indexOf(chain, s) > indexOf(chain, step) AND t >= entry, entered, steps) AS later,
            -- minutes, rounded up, until the first later step; 0 when none came
            if(empty(later), 0, least(121, greatest(1, toUInt32(ceil(
                (toUnixTimestamp64Milli(arrayMin(later)) - toUnixTimestamp64Milli(entry)) / 60000))))) AS minutes
        FROM chain_sessions_staging
        ARRAY JOIN steps AS step, entered AS entry
        WHERE site_id = {site:String} AND day IN {days:Array(Date)} AND step IN {checkout:Array(String)}
    )
    GROUP BY site_id, day, d, step, hour, minutes
)
GROUP BY GROUPING SETS ((site_id, day, hour, step, d), (site_id, day, hour, step))

-- step_moves_hourly (docs/metrics.md, "Live early warning"): for each checkout step a session
-- entered, the hour of its first entry (UTC) and the minutes until it first entered a later
-- chain step (a purchase included), per device and for 'all'.
INSERT INTO step_moves_hourly_staging (site_id, day, hour, step, device, entered, moved, moved_within)
WITH {chain:Array(String)} AS chain
SELECT
    site_id, day, hour, step,
    if(grouping(d) = 1, {all:String}, d) AS device,
    count() AS entered,
    countIf(minutes > 0) AS moved,
    sumForEach(arrayMap(k -> toUInt64(minutes > 0 AND minutes <= k), range(1, 121))) AS moved_within
FROM
(
    SELECT
        site_id, day, device AS d, step,
        entered[indexOf(steps, step)] AS entry,
        toStartOfHour(entry) AS hour,
        arrayFilter((t, s) -> indexOf(chain, s) > indexOf(chain, step) AND t >= entry, entered, steps) AS later,
        -- minutes, rounded up, until the first later step; 0 when none came
        if(empty(later), 0, greatest(1, toUInt32(ceil(
            (toUnixTimestamp64Milli(arrayMin(later)) - toUnixTimestamp64Milli(entry)) / 60000)))) AS minutes
    FROM chain_sessions_staging
    ARRAY JOIN {checkout:Array(String)} AS step
    WHERE site_id = {site:String} AND day IN {days:Array(Date)} AND has(steps, step)
)
GROUP BY GROUPING SETS ((site_id, day, hour, step, d), (site_id, day, hour, step))

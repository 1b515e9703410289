-- checkout_hourly (docs/metrics.md, "Early warning"): reached(k) and abandoned(k) as in
-- checkout_abandonment_daily, by the hour the session ended, per device and for 'all'.
INSERT INTO checkout_hourly_staging (site_id, day, hour, step, device, reached, abandoned)
WITH {chain:Array(String)} AS chain
SELECT
    site_id, day, hour, step,
    if(grouping(d) = 1, {all:String}, d) AS device,
    count() AS reached,
    countIf(furthest_index = indexOf(chain, step)) AS abandoned
FROM
(
    SELECT site_id, day, toStartOfHour(ended_at) AS hour, device AS d, furthest_index, step
    FROM chain_sessions_staging
    ARRAY JOIN {checkout:Array(String)} AS step
    WHERE site_id = {site:String} AND day IN {days:Array(Date)} AND has(steps, step)
)
GROUP BY GROUPING SETS ((site_id, day, hour, step, d), (site_id, day, hour, step))

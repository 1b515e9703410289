-- chain_daily: for every chain step, sessions that reached it and, of those, sessions
-- that purchased (docs/metrics.md, "Sessions": reached(k), purchased(s)). Derived from chain_sessions.
INSERT INTO chain_daily_staging (site_id, day, step, step_index, device, visitor, sessions_reached,
    sessions_purchased)
WITH {chain:Array(String)} AS chain
SELECT
    site_id, day, step, step_index,
    if(grouping(d) = 1, {all:String}, d) AS device,
    if(grouping(v) = 1, {all:String}, v) AS visitor,
    countIf(has(steps, step)) AS sessions_reached,
    countIf(has(steps, step) AND purchased) AS sessions_purchased
FROM
(
    SELECT site_id, day, device AS d, visitor AS v, steps, purchased
    FROM chain_sessions_staging
    WHERE site_id = {site:String} AND day IN {days:Array(Date)}
)
ARRAY JOIN chain AS step, arrayEnumerate(chain) AS step_index
GROUP BY GROUPING SETS (
    (site_id, day, step, step_index, d, v), (site_id, day, step, step_index, d),
    (site_id, day, step, step_index, v), (site_id, day, step, step_index)
)

-- obstacle_impact_daily (docs/metrics.md, "Obstacle impact"): for step k (before the last) and
-- obstacle kind o, among sessions that reached k: rate_with = abandonment rate of those
-- that met o on k, rate_without of those that did not, lift = rate_with / rate_without.
-- abandoned(k) is furthest(s) = k, as in checkout_abandonment_daily.
-- What it costs: diff = rate_with - rate_without with its 95% interval (Newcombe, the
-- chainlens_diff_* functions of the schema), orders_lost = sessions_with × diff (and its
-- interval), revenue_at_stake = orders_lost × the day's median order value; insufficient
-- below {min_sample} sessions on either side. Per behavior segment and for 'all'; the
-- median order value is the day's, across segments.
INSERT INTO obstacle_impact_daily_staging (site_id, day, step, kind, segment, sessions_with, abandoned_with, rate_with,
    sessions_without, abandoned_without, rate_without, lift, diff, diff_low, diff_high, orders_lost,
    orders_lost_low, orders_lost_high, revenue_at_stake, insufficient)
WITH {chain:Array(String)} AS chain
SELECT
    o.site_id AS site_id, o.day AS day, o.step AS step, o.kind AS kind, o.seg AS segment,
    o.sessions_with AS sessions_with, o.abandoned_with AS abandoned_with,
    o.abandoned_with / o.sessions_with AS rate_with,
    s.reached - o.sessions_with AS sessions_without,
    s.abandoned - o.abandoned_with AS abandoned_without,
    if(sessions_without = 0, NULL, abandoned_without / sessions_without) AS rate_without,
    if(rate_without IS NULL OR rate_without = 0, NULL, rate_with / rate_without) AS lift,
    if(sessions_without = 0, NULL, rate_with - rate_without) AS diff,
    chainlens_diff_low(abandoned_with, sessions_with, abandoned_without, sessions_without) AS diff_low,
    chainlens_diff_high(abandoned_with, sessions_with, abandoned_without, sessions_without) AS diff_high,
    sessions_with * diff AS orders_lost,
    sessions_with * diff_low AS orders_lost_low,
    sessions_with * diff_high AS orders_lost_high,
    orders_lost * nullIf(m.median_order, 0) AS revenue_at_stake,
    sessions_with < {min_sample:UInt32} OR sessions_without < {min_sample:UInt32} AS insufficient
FROM
(
    SELECT site_id, day, pair.1 AS step, pair.2 AS kind, seg,
        count() AS sessions_with, countIf(furthest = step) AS abandoned_with
    FROM chain_sessions_staging
    ARRAY JOIN arrayZip(obstacle_steps, obstacle_kinds) AS pair
    ARRAY JOIN [segment, {all:String}] AS seg
    WHERE site_id = {site:String} AND day IN {days:Array(Date)} AND pair.1 != chain[length(chain)]
    GROUP BY site_id, day, step, kind, seg
) AS o
INNER JOIN
(
    SELECT site_id, day, step, seg, count() AS reached, countIf(furthest = step) AS abandoned
    FROM chain_sessions_staging
    ARRAY JOIN steps AS step
    ARRAY JOIN [segment, {all:String}] AS seg
    WHERE site_id = {site:String} AND day IN {days:Array(Date)}
    GROUP BY site_id, day, step, seg
) AS s
ON o.site_id = s.site_id AND o.day = s.day AND o.step = s.step AND o.seg = s.seg
LEFT JOIN
(
    SELECT site_id, day, quantileExactInclusive(0.5)(revenue) AS median_order
    FROM chain_sessions_staging
    WHERE site_id = {site:String} AND day IN {days:Array(Date)} AND purchased AND revenue > 0
    GROUP BY site_id, day
) AS m
ON o.site_id = m.site_id AND o.day = m.day

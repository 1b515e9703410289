-- checkout_abandonment_daily: the checkout steps (checkout_from up to, not including,
-- the last chain step). DESIGN: reached(k); continued(k) = furthest(s) > k;
-- abandoned(k) = furthest(s) = k; abandonment_rate = abandoned / reached;
-- median_ms_before_abandon(k) = median over sessions abandoned at k of
-- (last event time - entered(s, k)), exact and interpolated (a true median).
INSERT INTO checkout_abandonment_daily_staging (site_id, day, step, step_index, device, visitor, reached,
    continued, abandoned, abandonment_rate, median_ms_before_abandon)
WITH {chain:Array(String)} AS chain
SELECT
    site_id, day, step, step_index,
    if(grouping(d) = 1, 'all', d) AS device,
    if(grouping(v) = 1, 'all', v) AS visitor,
    count() AS reached,
    countIf(furthest_index > step_index) AS continued,
    countIf(furthest_index = step_index) AS abandoned,
    abandoned / reached AS abandonment_rate,
    if(abandoned = 0, NULL, quantileExactInclusiveIf(0.5)(before_ms, furthest_index = step_index))
        AS median_ms_before_abandon
FROM
(
    SELECT
        site_id, day, device AS d, visitor AS v, furthest_index, step,
        toUInt8(indexOf(chain, step)) AS step_index,
        toFloat64(toUnixTimestamp64Milli(ended_at) - toUnixTimestamp64Milli(entered[indexOf(steps, step)]))
            AS before_ms
    FROM chain_sessions_staging
    ARRAY JOIN {checkout:Array(String)} AS step
    WHERE site_id = {site:String} AND day IN {days:Array(Date)} AND has(steps, step)
)
GROUP BY GROUPING SETS (
    (site_id, day, step, step_index, d, v), (site_id, day, step, step_index, d),
    (site_id, day, step, step_index, v), (site_id, day, step, step_index)
)

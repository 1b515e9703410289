-- checkout_abandonment_daily: the checkout steps (checkout_from up to, not including,
-- the last chain step). docs/metrics.md, "Abandonment": reached(k); continued(k) =
-- furthest(s) > k; abandoned(k) = furthest(s) = k; abandonment_rate = abandoned / reached;
-- median_ms_before_abandon(k): the exact, interpolated median of chain_sessions'
-- ms_before_abandon over sessions abandoned at k.
-- Each session counts in the eight (device, visitor, segment) groups of chainlens_cuts; the
-- rows with all three broken out keep the abandoners' times (ms_before_abandon_values) for
-- range medians. Sessions are counted, and the abandoners' times gathered, by (device,
-- visitor, segment) first; each of the eight groups sums those counts and takes its median
-- over the gathered times of the rows it holds: the same values.
INSERT INTO checkout_abandonment_daily_staging (site_id, day, step, step_index, device, visitor, segment, reached,
    continued, abandoned, abandonment_rate, median_ms_before_abandon, ms_before_abandon_values)
WITH {chain:Array(String)} AS chain
SELECT
    site_id, day, step, step_index,
    cut.1 AS device, cut.2 AS visitor, cut.3 AS segment,
    sum(n) AS reached,
    sum(went_on) AS continued,
    sum(left_here) AS abandoned,
    abandoned / reached AS abandonment_rate,
    if(abandoned = 0, NULL, quantileExactInclusiveArray(0.5)(values)) AS median_ms_before_abandon,
    if(device != {all:String} AND visitor != {all:String} AND segment != {all:String}, any(values), [])
        AS ms_before_abandon_values
FROM
(
    SELECT site_id, day, step, step_index, chainlens_cuts(device, visitor, segment, {all:String}) AS cuts,
        count() AS n, countIf(furthest_index > step_index) AS went_on, countIf(furthest_index = step_index) AS left_here,
        groupArrayIf(assumeNotNull(ms_before_abandon), furthest_index = step_index AND ms_before_abandon IS NOT NULL)
            AS values
    FROM
    (
        SELECT site_id, day, device, visitor, segment, furthest_index, step,
            toUInt8(indexOf(chain, step)) AS step_index, ms_before_abandon
        FROM chain_sessions_staging
        ARRAY JOIN {checkout:Array(String)} AS step
        WHERE site_id = {site:String} AND day IN {days:Array(Date)} AND has(steps, step)
    )
    GROUP BY site_id, day, step, step_index, device, visitor, segment
)
ARRAY JOIN cuts AS cut
GROUP BY site_id, day, step, step_index, cut

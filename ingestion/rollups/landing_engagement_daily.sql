-- landing_engagement_daily (docs/metrics.md, "Landing engagement"): per landing page, the
-- sessions that began there, those whose first interaction came within {engaged_ms}, those
-- that bounced (one page, no interaction), those that reached the goal step within
-- {goal_clicks} clicks, and the exact median seconds to the first interaction.
-- By landing page, source, device and segment, with 'all' totals; the rows with all four
-- broken out keep the times to the first interaction (first_interaction_ms_values) for range
-- medians.
INSERT INTO landing_engagement_daily_staging (site_id, day, landing_path, source, device, segment, sessions,
    engaged_7s, bounced, reached_select_in_3_clicks, median_s_to_first_interaction, first_interaction_ms_values)
SELECT
    site_id, day,
    if(grouping(p) = 1, {all:String}, p) AS landing_path,
    if(grouping(src) = 1, {all:String}, src) AS source,
    if(grouping(d) = 1, {all:String}, d) AS device,
    if(grouping(s) = 1, {all:String}, s) AS segment,
    count() AS sessions,
    countIf(first_interaction_ms <= {engaged_ms:Float64}) AS engaged_7s,
    countIf(pages <= 1 AND first_interaction_ms IS NULL) AS bounced,
    countIf(clicks_to_goal <= {goal_clicks:UInt32}) AS reached_select_in_3_clicks,
    quantileExactInclusive(0.5)(first_interaction_ms) / 1000 AS median_s_to_first_interaction,
    if(grouping(p) + grouping(src) + grouping(d) + grouping(s) = 0,
       groupArrayIf(assumeNotNull(first_interaction_ms), first_interaction_ms IS NOT NULL), [])
        AS first_interaction_ms_values
FROM
(
    SELECT site_id, day, landing_path AS p, source AS src, device AS d, segment AS s, pages,
        first_interaction_ms, clicks_to_goal
    FROM chain_sessions_staging
    WHERE site_id = {site:String} AND day IN {days:Array(Date)}
)
GROUP BY GROUPING SETS (
    (site_id, day, p, src, d, s), (site_id, day, p, src), (site_id, day, p, d), (site_id, day, p, s),
    (site_id, day, p), (site_id, day, src), (site_id, day, d), (site_id, day, s), (site_id, day)
)

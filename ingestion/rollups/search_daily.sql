-- search_daily: per day and search term (props search_term, kept on the search step only,
-- docs/metrics.md "Site search"): searches (page views or step events of the search step with
-- the term, whichever a session has more of, as for `searches` in chain_sessions), sessions
-- that searched it, exits (sessions whose last search it was and that viewed no page of a
-- chain step after that search) and orders (sessions that searched it and purchased).
-- By device and segment and their 'all' totals, over the sessions chain_sessions holds.
INSERT INTO search_daily_staging (site_id, day, term, device, segment, searches, sessions, exits, orders)
SELECT site_id, day, term, cut.1 AS device, cut.2 AS segment, sum(n_searches) AS searches,
    sum(n_sessions) AS sessions, sum(n_exits) AS exits, sum(n_orders) AS orders
FROM
(
    -- counted by device and segment first, then those counts summed into the totals
    SELECT site_id, day, term,
        [(device, segment), (device, {all:String}), ({all:String}, segment), ({all:String}, {all:String})] AS cuts,
        sum(n) AS n_searches, count() AS n_sessions, countIf(exited AND last_term = term) AS n_exits,
        countIf(purchased) AS n_orders
    FROM
    (
        SELECT session_id, props['search_term'] AS term,
            greatest(uniqExactIf(event_id, type = 'page'), uniqExactIf(event_id, type = 'step')) AS n
        FROM events
        WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
            AND step = {search:String} AND type IN ('page', 'step') AND props['search_term'] != ''
        GROUP BY session_id, term
    ) AS terms
    INNER JOIN
    (
        SELECT session_id, argMax(step, ts) = {search:String} AS exited,
            argMaxIf(props['search_term'], ts, step = {search:String} AND props['search_term'] != '') AS last_term
        FROM events
        WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
            AND type IN ('page', 'step') AND step != '' AND NOT startsWith(session_id, 'order:')
        GROUP BY session_id
        HAVING last_term != ''
    ) AS last USING (session_id)
    INNER JOIN
    (
        SELECT session_id, site_id, day, purchased, device, segment
        FROM chain_sessions_staging
        WHERE site_id = {site:String} AND day IN {days:Array(Date)}
    ) AS s USING (session_id)
    GROUP BY site_id, day, term, device, segment
)
ARRAY JOIN cuts AS cut
GROUP BY site_id, day, term, device, segment

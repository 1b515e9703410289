-- form_daily: per day, step and form of the forms add-on's reports (docs/metrics.md, "Form
-- fields"), by device and its 'all' total: started (sessions that touched a field of it),
-- submitted (sessions that sent `submitted` for it), abandoned (started, not submitted, and left
-- the chain at the form's step), and the median over submitted sessions of the visible time in
-- its fields (median_ms_to_submit). Each event counts once (by its id).
-- The days' sessions are the join's left side: a join builds its hash table from its right
-- side, which is then the few sessions with form reports rather than every session.
INSERT INTO form_daily_staging (site_id, day, step, form, device, started, submitted, abandoned,
    median_ms_to_submit)
SELECT site_id, day, step, form, cut AS device, count() AS started, countIf(submitted) AS submitted_sessions,
    countIf(NOT submitted AND furthest = step) AS abandoned,
    if(submitted_sessions = 0, NULL, quantileExactInclusiveIf(0.5)(ms, submitted)) AS median_ms_to_submit
FROM
(
    SELECT session_id, site_id, day, device, furthest
    FROM chain_sessions_staging
    WHERE site_id = {site:String} AND day IN {days:Array(Date)}
) AS s
INNER JOIN
(
    SELECT session_id, step, props['form'] AS form,
        sumIf(toFloat64OrZero(props['ms']), name = 'form_field') AS ms,
        maxIf(props['outcome'] = 'submitted', name = 'form_report') AS submitted
    FROM
    (
        SELECT session_id, step, name, props FROM events
        WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
            AND type = 'track' AND name IN ('form_field', 'form_report')
        LIMIT 1 BY event_id
    )
    GROUP BY session_id, step, form
    HAVING countIf(name = 'form_field') > 0
) AS f USING (session_id)
ARRAY JOIN [s.device, {all:String}] AS cut
GROUP BY site_id, day, step, form, cut

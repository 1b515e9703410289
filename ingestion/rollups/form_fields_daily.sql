-- form_fields_daily: per day, step, form and field of the forms add-on's reports
-- (docs/metrics.md, "Form fields"), by device and its 'all' total, over the sessions
-- chain_sessions holds. Each event counts once (by its id). Per session and field: the
-- visible ms, errors and corrections summed, autofilled if any report says so. A session
-- abandoned the form when it touched it, sent no `submitted` for it and left the chain at the
-- form's step (furthest = step, as for obstacles); it left at the field when that was the last
-- field its latest `left` report names. diff = the abandonment of the sessions with an error on
-- the field minus that of the sessions that touched it without one, with its 95% Newcombe
-- interval (chainlens_diff_*); orders_lost = sessions_with_error × diff.
-- The days' sessions are the join's left side: a join builds its hash table from its right
-- side, which is then the few sessions with form reports rather than every session.
INSERT INTO form_fields_daily_staging (site_id, day, step, form, field, device, sessions_touched, sessions_left_here,
    median_ms, errors, sessions_with_error, corrections, autofilled, abandoned_with_error,
    abandoned_without_error, diff, diff_low, diff_high, orders_lost)
SELECT site_id, day, step, form, field, cut AS device, count() AS sessions_touched,
    countIf(NOT submitted AND furthest = step AND last_field = field) AS sessions_left_here,
    quantileExactInclusive(0.5)(ms) AS median_ms,
    sum(errors) AS errors_total, countIf(errors > 0) AS sessions_with_error,
    sum(corrections) AS corrections_total, countIf(autofilled) AS autofilled_sessions,
    countIf(errors > 0 AND NOT submitted AND furthest = step) AS abandoned_with_error,
    countIf(errors = 0 AND NOT submitted AND furthest = step) AS abandoned_without_error,
    if(sessions_with_error = 0 OR sessions_touched = sessions_with_error, NULL,
       abandoned_with_error / sessions_with_error
       - abandoned_without_error / (sessions_touched - sessions_with_error)) AS diff,
    chainlens_diff_low(abandoned_with_error, sessions_with_error, abandoned_without_error,
                       sessions_touched - sessions_with_error) AS diff_low,
    chainlens_diff_high(abandoned_with_error, sessions_with_error, abandoned_without_error,
                        sessions_touched - sessions_with_error) AS diff_high,
    sessions_with_error * diff AS orders_lost
FROM
(
    SELECT session_id, site_id, day, device, furthest
    FROM chain_sessions_staging
    WHERE site_id = {site:String} AND day IN {days:Array(Date)}
) AS s
INNER JOIN
(
    SELECT *
    FROM
    (
        SELECT session_id, step, form, field, sum(ms) AS ms, sum(errors) AS errors,
            sum(corrections) AS corrections, max(autofilled) AS autofilled
        FROM
        (
            SELECT session_id, step, props['form'] AS form, props['field'] AS field,
                toFloat64OrZero(props['ms']) AS ms, toUInt32OrZero(props['errors']) AS errors,
                toUInt32OrZero(props['corrections']) AS corrections, props['autofilled'] = '1' AS autofilled
            FROM events
            WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
                AND type = 'track' AND name = 'form_field'
            LIMIT 1 BY event_id
        )
        GROUP BY session_id, step, form, field
    ) AS f
    LEFT JOIN
    (
        SELECT session_id, step, props['form'] AS form, max(props['outcome'] = 'submitted') AS submitted,
            argMaxIf(props['last_field'], ts, props['outcome'] = 'left') AS last_field
        FROM events
        WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
            AND type = 'track' AND name = 'form_report'
        GROUP BY session_id, step, form
    ) AS g USING (session_id, step, form)
) AS fg USING (session_id)
ARRAY JOIN [s.device, {all:String}] AS cut
GROUP BY site_id, day, step, form, field, cut

-- satisfaction_daily (docs/metrics.md, "Satisfaction"): per day of the answer, the answers
-- (0-10), promoters (9-10), passives (7-8), detractors (0-6) and the NPS with its 95% interval,
-- by where it was asked, device and segment ('all' in the totals), and by weak link: answers
-- about a session that met an obstacle or not, about an order delivered late or on time.
-- An answer naming an order takes that order's session; one without, its own session.
INSERT INTO satisfaction_daily_staging (site_id, day, asked_at, device, segment, link, responses, promoters,
    passives, detractors, nps, nps_low, nps_high)
SELECT
    site_id, day, cut.1, cut.2, cut.3, link,
    count() AS n,
    countIf(score >= 9) AS p,
    countIf(score BETWEEN 7 AND 8),
    countIf(score <= 6) AS d,
    chainlens_nps(p, d, n) AS nps,
    chainlens_nps_low(p, d, n),
    chainlens_nps_high(p, d, n)
FROM
(
    SELECT
        a.site_id AS site_id, a.day AS day, a.asked_at AS asked_at, a.score AS score,
        multiIf(o.order_id != '', o.device, s.session_id != '', s.device, 'unknown') AS device,
        multiIf(o.order_id != '', o.segment, s.session_id != '', s.segment, 'unknown') AS segment,
        multiIf(o.order_id != '', toNullable(o.met_obstacle), s.session_id != '', toNullable(s.met), NULL) AS met,
        if(o.order_id != '', o.on_time, NULL) AS on_time,
        arrayConcat(['all'], if(met IS NULL, [], [if(met, 'met_obstacle', 'no_obstacle')]),
                    if(on_time IS NULL, [], [if(on_time, 'on_time', 'late')])) AS links,
        chainlens_cuts(asked_at, device, segment, {all:String}) AS cuts
    FROM
    (
        SELECT site_id, event_id, toDate(min(ts), {tz:String}) AS day, any(session_id) AS session_id,
            any(order_id) AS order_id, any(toUInt8OrZero(props['score'])) AS score,
            any(if(props['asked_at'] = '', '(not set)', props['asked_at'])) AS asked_at
        FROM events
        WHERE site_id = {site:String} AND NOT is_bot AND type = 'track' AND name = 'feedback'
          AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
        GROUP BY site_id, event_id
        HAVING day IN {days:Array(Date)}
    ) AS a
    LEFT JOIN
    (
        SELECT order_id, device, segment, met_obstacle, on_time FROM chain_orders
        WHERE site_id = {site:String} AND order_id IN (
            SELECT order_id FROM events WHERE site_id = {site:String} AND name = 'feedback' AND order_id != ''
              AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)})
    ) AS o
    ON a.order_id = o.order_id
    LEFT JOIN
    (
        SELECT session_id, device, segment, notEmpty(obstacle_kinds) AS met FROM chain_sessions
        WHERE site_id = {site:String} AND session_id IN (
            SELECT session_id FROM events WHERE site_id = {site:String} AND name = 'feedback'
              AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)})
    ) AS s
    ON a.session_id = s.session_id
)
ARRAY JOIN links AS link
ARRAY JOIN cuts AS cut
GROUP BY site_id, day, cut, link

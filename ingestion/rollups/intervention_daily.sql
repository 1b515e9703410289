-- intervention_daily (docs/interventions.md): the sessions whose risk moment the risk script
-- recorded (`intervention` events: step, trigger, arm; the first one counts) with what they did,
-- by arm; the treatment rows carry the lift over the holdout of the same step, trigger, device.
INSERT INTO intervention_daily_staging (site_id, day, step, trigger, arm, device, sessions, accepted, purchases,
    conversion, revenue, offer_cost, diff, diff_low, diff_high, incremental_orders, incremental_revenue,
    insufficient)
WITH arms AS
(
    SELECT s.site_id AS site_id, s.day AS day, r.step AS step, cut.1 AS trig, r.arm AS arm, cut.2 AS dev,
        count() AS n, countIf(r.accepted) AS acc, countIf(s.purchased) AS buy, round(sum(s.revenue), 2) AS rev,
        round(sum(r.cost), 2) AS cost  -- money to the cent (docs/metrics.md, "Orders and revenue")
    FROM
    (
        SELECT session_id,
            argMinIf(step, ts, name = 'intervention') AS step,
            argMinIf(props['trigger'], ts, name = 'intervention') AS trigger,
            argMinIf(props['arm'], ts, name = 'intervention') AS arm,
            countIf(name = 'intervention_outcome' AND props['outcome'] = 'accepted') > 0 AS accepted,
            -- each accepted offer once (a retried copy has the same id), added in one order
            arraySum(arrayMap(c -> c.2, arraySort(groupUniqArrayIf((event_id, toFloat64OrZero(props['cost'])),
                name = 'intervention_outcome' AND props['outcome'] = 'accepted')))) AS cost
        FROM events
        WHERE site_id = {site:String} AND NOT is_bot AND type = 'track'
          AND name IN ('intervention', 'intervention_outcome')
          AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
        GROUP BY session_id
        HAVING countIf(name = 'intervention') > 0
    ) AS r
    INNER JOIN
    (
        SELECT site_id, day, session_id, device, purchased, revenue FROM chain_sessions_staging
        WHERE site_id = {site:String} AND day IN {days:Array(Date)}
    ) AS s
    ON r.session_id = s.session_id
    ARRAY JOIN [(r.trigger, s.device), ({all:String}, s.device), (r.trigger, {all:String}),
                ({all:String}, {all:String})] AS cut
    GROUP BY site_id, day, step, trig, arm, dev
)
SELECT
    site_id, day, step, trig, arm, dev, n, acc, buy, buy / n, rev, cost,
    if(arm = 'treatment' AND h_n > 0, buy / n - h_buy / h_n, NULL) AS d,
    if(arm = 'treatment' AND h_n > 0, chainlens_diff_low(buy, n, h_buy, h_n), NULL),
    if(arm = 'treatment' AND h_n > 0, chainlens_diff_high(buy, n, h_buy, h_n), NULL),
    n * d,
    if(d IS NULL, NULL, rev - n * h_rev / h_n - cost),
    if(arm = 'treatment', n < {act_min_sample:UInt32} OR h_n < {act_min_sample:UInt32}, NULL)
FROM
(
    -- each row beside its holdout's counts (0 without one), from the one pass over the arms
    SELECT *, anyIf(n, arm = 'holdout') OVER cell AS h_n, anyIf(buy, arm = 'holdout') OVER cell AS h_buy,
        anyIf(rev, arm = 'holdout') OVER cell AS h_rev
    FROM arms
    WINDOW cell AS (PARTITION BY site_id, day, step, trig, dev)
)

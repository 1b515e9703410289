-- chain_orders: one row per order whose purchase day is being rebuilt (docs/metrics.md, "After
-- the purchase"). The purchase is the order's first event on the last chain step; what the back
-- office reported later (shipped, delivered, returned, in any order, months later) and the
-- shopper's answers are found by order id; tracking views by order id or by the buyer. Device,
-- segment, source, medium, campaign and obstacles come from the purchase session in
-- chain_sessions.
INSERT INTO chain_orders_staging (site_id, day, order_id, session_id, purchased_at, device, segment, source, value,
    currency, met_obstacle, shipped_at, delivered_at, promised_by, carrier, hours_to_ship, hours_to_deliver, on_time,
    tracking_viewed, returned, return_reason, score, asked_at, dated_before_purchase, medium, campaign)
SELECT
    o.site_id, o.day, o.order_id, o.session_id, o.purchased_at, o.device, s.segment, s.source, o.value, o.currency,
    s.met, o.shipped_at, o.delivered_at, o.promised_by, o.carrier,
    -- a report dated before its purchase (a back office's clock, a wrong date) is kept and flagged,
    -- and gives no time to ship or deliver: a negative one would pull the medians down
    if(o.shipped_at < o.purchased_at, NULL,
       (toUnixTimestamp64Milli(o.shipped_at) - toUnixTimestamp64Milli(o.purchased_at)) / 3600000) AS hours_to_ship,
    if(o.delivered_at < o.purchased_at, NULL,
       (toUnixTimestamp64Milli(o.delivered_at) - toUnixTimestamp64Milli(o.purchased_at)) / 3600000) AS hours_to_deliver,
    if(o.delivered_at IS NULL OR o.promised_by IS NULL, NULL, o.delivered_at <= o.promised_by) AS on_time,
    o.tracked OR (t.anon_id != '' AND t.last_view > o.purchased_at) AS tracking_viewed,
    o.returned, o.return_reason, o.score, o.asked_at,
    o.shipped_at < o.purchased_at OR o.delivered_at < o.purchased_at AS dated_before_purchase, s.medium, s.campaign
FROM
(
    SELECT
        site_id, order_id,
        minIfOrNull(ts, step = {last:String}) AS purchased_at,
        toDate(assumeNotNull(purchased_at), {tz:String}) AS day,
        argMinIf(session_id, ts, step = {last:String}) AS session_id,
        argMinIf(anon_id, ts, step = {last:String}) AS anon_id,
        argMinIf(device, ts, step = {last:String}) AS device,
        argMinIf(value, ts, step = {last:String} AND value IS NOT NULL) AS value,
        argMinIf(currency, ts, step = {last:String} AND currency != '') AS currency,
        minIfOrNull(ts, step = {shipped:String}) AS shipped_at,
        minIfOrNull(ts, step = {delivered:String}) AS delivered_at,
        -- the latest promise given, by the reports' own times (they may arrive in any order): a new
        -- date after a delay replaces the first
        parseDateTime64BestEffortOrNull(argMaxIf(props['promised_by'], (ts, received_at), props['promised_by'] != ''), 3,
                                        'UTC') AS promised_by,
        argMaxIf(props['carrier'], (ts, received_at), props['carrier'] != '') AS carrier,
        countIf(step = {tracking:String}) > 0 AS tracked,
        countIf(step = {returned:String}) > 0 AS returned,
        if(returned, if(argMaxIf(props['reason'], ts, step = {returned:String}) = '', '(not given)',
                        argMaxIf(props['reason'], ts, step = {returned:String})), '') AS return_reason,
        argMaxIf(toUInt8OrNull(props['score']), ts, type = 'track' AND name = 'feedback') AS score,
        argMaxIf(props['asked_at'], ts, type = 'track' AND name = 'feedback') AS asked_at
    -- the events that name an order, in the order's sort (ingestion/schema/026_order_events.sql)
    FROM order_events
    WHERE site_id = {site:String} AND NOT is_bot AND order_id IN (
        SELECT order_id FROM order_events
        WHERE site_id = {site:String} AND step = {last:String}
          AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)})
    GROUP BY site_id, order_id
    HAVING purchased_at IS NOT NULL AND day IN {days:Array(Date)}
) AS o
LEFT JOIN
(
    SELECT session_id, segment, source, medium, campaign, notEmpty(obstacle_kinds) AS met
    FROM chain_sessions
    WHERE site_id = {site:String} AND day BETWEEN {first_day:Date} - 1 AND {last_day:Date}
) AS s
ON o.session_id = s.session_id
LEFT JOIN
(
    -- tracking pages that did not name the order: the buyer's views after the purchase
    SELECT anon_id, max(ts) AS last_view FROM events
    WHERE site_id = {site:String} AND step = {tracking:String} AND order_id = '' AND anon_id != ''
      AND ts >= {lo:DateTime64(3)}
    GROUP BY anon_id
) AS t
ON o.anon_id = t.anon_id

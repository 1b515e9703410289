-- product_daily: per day and item, from the GA4 items events carry (props item_list and
-- item_amounts, docs/snippet.md "Ecommerce items"), each session counted once per item
-- (docs/metrics.md, "Products"): viewed (the item on the product step), carted (on the
-- checkout_from step), checkout_abandoned (on a checkout step of a session that left at a
-- checkout step), purchased (on the last chain step); units and revenue from the purchase
-- events' items, each order once (by its id, else by the event) and each of its lines once.
-- By device and segment and their 'all' totals, over the sessions chain_sessions holds.
-- The days' sessions are the join's left side: a join builds its hash table from its right
-- side, which is then the sessions with items rather than every session.
INSERT INTO product_daily_staging (site_id, day, item_id, device, segment, item_name, viewed, carted,
    checkout_abandoned, purchased, units, revenue)
SELECT site_id, day, item_id, cut.1 AS device, cut.2 AS segment, max(name) AS item_name,
    sum(v) AS viewed, sum(c) AS carted, sum(a) AS checkout_abandoned, sum(b) AS purchased, sum(u) AS units,
    round(sum(r), 2) AS revenue
FROM
(
    -- counted by device and segment first, then those counts summed into the totals
    SELECT site_id, day, item_id,
        [(device, segment), (device, {all:String}), ({all:String}, segment), ({all:String}, {all:String})] AS cuts,
        max(item_name) AS name, countIf(viewed) AS v, countIf(carted) AS c,
        countIf(in_checkout AND abandoned_at IN {checkout:Array(String)}) AS a,
        countIf(bought) AS b, sum(units) AS u, sum(revenue) AS r
    FROM
    (
        SELECT session_id, site_id, day, abandoned_at, device, segment
        FROM chain_sessions_staging
        WHERE site_id = {site:String} AND day IN {days:Array(Date)}
    ) AS s
    INNER JOIN
    (
        SELECT session_id, item.1 AS item_id, max(item.2) AS item_name, max(step = {product:String}) AS viewed,
            max(step = {cart:String}) AS carted, max(step IN {checkout:Array(String)}) AS in_checkout,
            max(step = {last:String}) AS bought,
            -- a purchase's lines, each once: (order, line number, units, price × units)
            groupUniqArrayIf((order_key, line, ifNull(amount.2, 1), amount.1 * ifNull(amount.2, 1)),
                             step = {last:String}) AS lines,
            arraySum(arrayMap(l -> l.3, lines)) AS units,
            arraySum(arrayMap(l -> ifNull(l.4, 0), lines)) AS revenue
        FROM
        (
            SELECT session_id, step, if(order_id = '', toString(event_id), order_id) AS order_key,
                JSONExtract(props['item_list'], 'Array(Tuple(String, String))') AS items,
                arrayResize(JSONExtract(props['item_amounts'], 'Array(Tuple(Nullable(Float64), Nullable(Float64)))'),
                            length(items)) AS amounts
            FROM events
            WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
                AND mapContains(props, 'item_list') AND NOT startsWith(session_id, 'order:')
        )
        ARRAY JOIN items AS item, amounts AS amount, arrayEnumerate(items) AS line
        WHERE item.1 != ''
        GROUP BY session_id, item_id
    ) AS products USING (session_id)
    GROUP BY site_id, day, item_id, device, segment
)
ARRAY JOIN cuts AS cut
GROUP BY site_id, day, item_id, device, segment

-- chain_sessions: one row per closed session (docs/metrics.md, "Sessions").
--   entered(s, k)  first event of s carrying step k, of any type
--   furthest(s)    highest chain index among the steps reached
--   purchased(s)   s reached the last chain step
--   closed         last event older than session_timeout_s ({closed_before})
--   day            the session's first event, in the site's time zone
-- Bots are excluded. min/max are unchanged by a retried event's copies; counts
-- use uniqExact(event_id), so each event id is counted once.
-- {lo}/{hi} bound the scan to the days asked for: from the first one's midnight (a session's
-- events come at or after its first) to a day past the last (sessions are assumed to last less
-- than a day).
-- The segment is the first of the site's [[sites.segments]] whose `where` holds (put in
-- place of the SEGMENTS marker by ingestion/tables.py), then the built-ins ("Behavior segments").
INSERT INTO chain_sessions_staging (site_id, day, session_id, anon_id, started_at, ended_at, device, visitor,
    steps, entered, furthest_index, furthest, purchased, abandoned_at, obstacle_steps, obstacle_kinds,
    detail_views, fast_track_views, events, transitions, ms_before_abandon, revenue, currency, source,
    medium, campaign, term, content, click_id, referrer_host, landing_path, pages, product_views, searches,
    cart_value, first_interaction_ms, clicks_to_goal, earlier_cart, segment, orders_value_unknown, browser, os,
    referrer_page, tracks, invalid_fields, checkout_ms, abandoned_obstacles)
SELECT
    site_id, day, session_id, anon_id, started_at, ended_at, device, visitor, steps, entered, furthest_index,
    furthest, purchased, abandoned_at, obstacle_steps, obstacle_kinds, detail_views, fast_track_views, events,
    transitions, ms_before_abandon, revenue, currency, source, medium, campaign, term, content, click_id,
    referrer_host, landing_path, pages, product_views, searches, cart_value, first_interaction_ms,
    clicks_to_goal, earlier_cart,
    multiIf(
        /*SEGMENTS*/
        has(steps, {cart:String}) AND toUnixTimestamp64Milli(entered[indexOf(steps, {cart:String})])
            - toUnixTimestamp64Milli(started_at) <= {decisive_ms:Float64}
            AND product_views <= {decisive_views:UInt32} AND searches = 0, 'decisive',
        product_views >= {researcher_views:UInt32} OR searches >= {researcher_searches:UInt32}, 'researcher',
        earlier_cart, 'returning_to_finish',
        'browser') AS segment,
    orders_value_unknown, browser, os, referrer_page, tracks, invalid_fields, checkout_ms, abandoned_obstacles
FROM
(
    SELECT
        site_id, day, session_id, anon_id, started_at, ended_at, device, visitor, steps, entered,
        furthest_index, furthest, purchased, abandoned_at, obstacle_steps, obstacle_kinds, detail_views,
        fast_track_views, events, transitions, ms_before_abandon, revenue, currency, source, medium, campaign,
        term, content, click_id, referrer_host, landing_path, pages, product_views, searches, cart_value,
        first_interaction_ms, clicks_to_goal, orders_value_unknown, browser, os, referrer_page, tracks,
        invalid_fields, checkout_ms, abandoned_obstacles,
        -- docs/metrics.md "Behavior segments": an earlier session of the visitor reached the cart
        -- step without a purchase, in these days (a window over a narrow pass: the session, its
        -- visitor, start and whether it left a cart; over the same events as the pass below, so a
        -- session has one start and one day in both) or the returning_days before them
        anon_id != '' AND (session_id IN (
                               SELECT session_id FROM (
                                   -- sessions that started earlier, to the millisecond (not one that started
                                   -- at the same time, whichever order the window meets them in)
                                   SELECT session_id, max(left_cart) OVER (PARTITION BY anon_id
                                       ORDER BY toUnixTimestamp64Milli(started_at)
                                       RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
                                   FROM (
                                       SELECT session_id, argMin(anon_id, ts) AS anon_id, min(ts) AS started_at,
                                           toDate(started_at, {tz:String}) AS day,
                                           countIf(step = {cart:String}) > 0 AND countIf(step = {last:String}) = 0
                                               AS left_cart
                                       FROM events
                                       WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)}
                                           AND ts < {hi:DateTime64(3)} AND NOT startsWith(session_id, 'order:')
                                       GROUP BY session_id
                                       HAVING day IN {days:Array(Date)} AND anon_id != ''
                                           AND max(ts) < {closed_before:DateTime64(3)}
                                   ))
                               WHERE before = 1)
                           OR anon_id IN (SELECT anon_id FROM chain_sessions
                                          WHERE site_id = {site:String} AND day >= {returning_from:Date}
                                            AND day < {first_day:Date} AND has(steps, {cart:String})
                                            AND NOT purchased AND anon_id != '')) AS earlier_cart
    FROM
    (
        WITH {chain:Array(String)} AS chain
        SELECT
            site_id, day, session_id, anon_id, started_at, ended_at, device, visitor,
            arrayMap(p -> p.1, ordered) AS steps,
            arrayMap(p -> fromUnixTimestamp64Milli(p.2, 'UTC'), ordered) AS entered,
            if(empty(steps), 0, arrayMax(arrayMap(s -> indexOf(chain, s), steps))) AS furthest_index,
            if(furthest_index = 0, '', chain[furthest_index]) AS furthest,
            furthest_index = length(chain) AS purchased,
            if(purchased, '', furthest) AS abandoned_at,
            arrayMap(o -> o.1, obstacles) AS obstacle_steps,
            arrayMap(o -> o.2, obstacles) AS obstacle_kinds,
            -- docs/metrics.md "Abandonment": the obstacles met on the step the session left at
            arrayMap(o -> o.2, arrayFilter(o -> o.1 = abandoned_at, obstacles)) AS abandoned_obstacles,
            detail_views, fast_track_views, events,
            -- docs/metrics.md "Step timing": consecutive steps by first entry, backward moves included
            arrayMap(i -> (steps[i], steps[i + 1],
                toFloat64(toUnixTimestamp64Milli(entered[i + 1]) - toUnixTimestamp64Milli(entered[i]))),
                range(1, length(steps))) AS transitions,
            -- docs/metrics.md "Time before abandoning"
            if(abandoned_at = '', NULL, toFloat64(toUnixTimestamp64Milli(ended_at)
                - toUnixTimestamp64Milli(entered[indexOf(steps, abandoned_at)]))) AS ms_before_abandon,
            -- docs/metrics.md "Checkout time"
            if(has(steps, {cart:String}) AND has(steps, {last_checkout:String}),
               toFloat64(toUnixTimestamp64Milli(entered[indexOf(steps, {last_checkout:String})])
                   - toUnixTimestamp64Milli(entered[indexOf(steps, {cart:String})])), NULL) AS checkout_ms,
            -- docs/metrics.md "Orders and revenue"
            -- summed in one order, to the cent, so a second pass gives the same bits
            round(arraySum(arrayMap(o -> o.2, arraySort(orders))), 2) AS revenue, currency,
            orders_value_unknown,
            -- docs/metrics.md "Campaigns": the landing's UTM source, else what its ad click id
            -- says, else the referrer's host, else direct
            multiIf(landing['utm_source'] != '', landing['utm_source'],
                    landing['click_id'] = 'gclid', 'google', landing['click_id'] = 'fbclid', 'facebook',
                    landing['click_id'] = 'msclkid', 'bing', referrer_host != '', referrer_host,
                    'direct') AS source,
            multiIf(landing['utm_medium'] != '', landing['utm_medium'],
                    landing['utm_source'] != '', '(not set)',
                    landing['click_id'] = 'fbclid', 'paid_social', landing['click_id'] != '', 'cpc',
                    referrer_host != '', 'referral', '(none)') AS medium,
            landing['utm_campaign'] AS campaign, landing['utm_term'] AS term, landing['utm_content'] AS content,
            landing['click_id'] AS click_id, referrer_host, landing_path, pages, product_views, searches,
            cart_value,
            -- docs/metrics.md "Landing engagement": the first click, key or scroll (the snippet's
            -- `engage` event), or entering a chain step other than the landing's, if sooner
            arrayFirst(p -> p.1 != landing_step, ordered).2 AS next_step_ms,
            arrayFilter(t -> t > 0, [toFloat64(engaged_ms), toFloat64(next_step_ms)]) AS interactions,
            if(empty(interactions), NULL, arrayMin(interactions) - toUnixTimestamp64Milli(started_at))
                AS first_interaction_ms,
            if(has(steps, {goal:String}), clicks_at_goal, NULL) AS clicks_to_goal,
            browser, os, referrer_page, tracks, invalid_fields
        FROM
        (
            SELECT
                site_id,
                session_id,
                argMin(anon_id, ts) AS anon_id,
                min(ts) AS started_at,
                max(ts) AS ended_at,
                toDate(started_at, {tz:String}) AS day,
                argMin(device, ts) AS device,
                if(argMin(session_number, ts) <= 1, 'new', 'returning') AS visitor,
                -- steps by first entry: each chain step's first time (one minIf per step, put in place of
                -- the ENTRIES marker by ingestion/tables.py; 0 when not reached), then in time order; equal
                -- times keep chain order
                arraySort(p -> (p.2, indexOf(chain, p.1)), arrayFilter(p -> p.2 != 0, [/*ENTRIES*/])) AS ordered,
                arraySort(groupUniqArrayIf((step, name), type = 'obstacle' AND has(chain, step))) AS obstacles,
                -- docs/metrics.md "Fast Track In Stock": the site's product step, props and days ([sites.fast_track])
                uniqExactIf(event_id, type = 'step' AND step = {ft_step:String}) AS detail_views,
                uniqExactIf(event_id, type = 'step' AND step = {ft_step:String}
                    AND props[{ft_in_stock:String}] = 'true'
                    AND toFloat64OrNull(props[{ft_ship_days:String}]) <= {ft_days:Float64}) AS fast_track_views,
                uniqExact(event_id) AS events,
                -- each order once: by its id, else by the event (a retried copy has the same id)
                arrayDistinct(arrayMap(o -> (if(o.1 = '', toString(o.2), o.1), o.3),
                    groupUniqArrayIf((order_id, event_id, assumeNotNull(value)),
                                     step = chain[length(chain)] AND value IS NOT NULL))) AS orders,
                argMaxIf(currency, ts, step = chain[length(chain)] AND currency != '') AS currency,
                -- orders (by id) on the last step that none of their events gave a readable value
                toUInt32(uniqExactIf(order_id, step = chain[length(chain)] AND order_id != '')
                    - uniqExactIf(order_id, step = chain[length(chain)] AND order_id != '' AND value IS NOT NULL))
                    AS orders_value_unknown,
                -- the shop's own pages are not a source (a session that began after a pause)
                if(domainWithoutWWW(argMin(referrer, ts)) = domainWithoutWWW(argMin(url, ts)), '',
                   domainWithoutWWW(argMin(referrer, ts))) AS referrer_host,
                -- the landing: the session's first page view (its first event without one); its campaign
                -- keys, kept from the page views that carry one (a map in every event's copy costs more)
                minIf(ts, type = 'page') AS landing_at,
                mapFilter((k, v) -> k IN ('utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content',
                                          'click_id'),
                          arrayFirst(e -> e.1 = landing_at, groupArrayIf((ts, props), type = 'page'
                              AND hasAny(mapKeys(props), ['utm_source', 'utm_medium', 'utm_campaign', 'utm_term',
                                                          'utm_content', 'click_id']))).2) AS landing,
                -- (one argMin: a page view's time sorts before any other event's, by 10^14 ms)
                path(argMin(url, toUnixTimestamp64Milli(ts) + if(type = 'page', 0, 100000000000000)))
                    AS landing_path,
                argMin(step, ts) AS landing_step,
                uniqExactIf(event_id, type = 'page') AS pages,
                -- views of a step: its page views, or its step events when the page API is used alone
                greatest(uniqExactIf(event_id, type = 'page' AND step = {product:String}),
                         uniqExactIf(event_id, type = 'step' AND step = {product:String})) AS product_views,
                greatest(uniqExactIf(event_id, type = 'page' AND step = {search:String}),
                         uniqExactIf(event_id, type = 'step' AND step = {search:String})) AS searches,
                -- the latest value carried from the cart step on (a cart, checkout or purchase event)
                ifNull(argMaxIf(value, ts, value IS NOT NULL AND indexOf(chain, step) >= {cart_index:UInt8}), 0)
                    AS cart_value,
                toUnixTimestamp64Milli(minIf(ts, type = 'track' AND name = 'engage')) AS engaged_ms,
                -- the clicks the snippet counted when the goal step's first page view or step event came
                -- (a lookup in every event's props costs less than an argMin keeping a whole map)
                toUInt32OrZero(argMinIf(props['clicks'], ts, step = {goal:String} AND type IN ('page', 'step')))
                    AS clicks_at_goal,
                -- docs/metrics.md "Breakdowns"
                argMin(browser, ts) AS browser,
                argMin(os, ts) AS os,
                if(referrer_host = '', '', concat(referrer_host, path(argMin(referrer, ts)))) AS referrer_page,
                arraySort(groupUniqArrayIf(name, type = 'track' AND name != ''
                                           AND name NOT IN ('engage', 'intervention', 'intervention_outcome',
                                                        'form_field', 'form_report'))) AS tracks,
                arraySort(arrayDistinct(arrayFilter(f -> f.2 != '', arrayMap(e -> (e.1, e.2['field']),
                    groupArrayIf((step, props), type = 'obstacle' AND name = 'form_invalid'))))) AS invalid_fields
            FROM events
            WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
                -- the back office's reports are the order's (chain_orders); a shopper's own pages after
                -- the purchase (the order's tracking) are a session like any other, reaching no chain step
                AND NOT startsWith(session_id, 'order:')
            GROUP BY site_id, session_id
            HAVING day IN {days:Array(Date)} AND ended_at < {closed_before:DateTime64(3)}
        )
    )
)
SETTINGS optimize_aggregation_in_order = 1

-- chain_sessions: one row per closed session (docs/metrics.md, "Sessions").
--   entered(s, k)  first event of s carrying step k, of any type
--   furthest(s)    highest chain index among the steps reached
--   purchased(s)   s reached the last chain step
--   closed         last event older than session_timeout_s ({closed_before})
--   day            the session's first event, in the site's time zone
-- Bots are excluded. min/max are unchanged by a retried event's copies; counts
-- use uniqExact(event_id), so each event id is counted once.
-- {lo}/{hi} bound the scan to the days asked for, a day either side (sessions
-- are assumed to last less than a day).
INSERT INTO chain_sessions_staging (site_id, day, session_id, anon_id, started_at, ended_at, device, visitor,
    steps, entered, furthest_index, furthest, purchased, abandoned_at, obstacle_steps, obstacle_kinds,
    detail_views, fast_track_views, events, transitions, ms_before_abandon, revenue, currency, source)
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
    detail_views, fast_track_views, events,
    -- docs/metrics.md "Step timing": consecutive steps by first entry, backward moves included
    arrayMap(i -> (steps[i], steps[i + 1],
        toFloat64(toUnixTimestamp64Milli(entered[i + 1]) - toUnixTimestamp64Milli(entered[i]))),
        range(1, length(steps))) AS transitions,
    -- docs/metrics.md "Time before abandoning"
    if(abandoned_at = '', NULL, toFloat64(toUnixTimestamp64Milli(ended_at)
        - toUnixTimestamp64Milli(entered[indexOf(steps, abandoned_at)]))) AS ms_before_abandon,
    -- docs/metrics.md "Orders and revenue"
    arraySum(arrayMap(o -> o.2, orders)) AS revenue, currency,
    if(first_referrer_host = '', 'direct', first_referrer_host) AS source
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
        minMapIf([step], [toUnixTimestamp64Milli(ts)], has(chain, step)) AS first_entry,
        -- steps by first entry; equal times keep chain order
        arraySort(p -> (p.2, indexOf(chain, p.1)), arrayZip(first_entry.1, first_entry.2)) AS ordered,
        arraySort(groupUniqArrayIf((step, name), type = 'obstacle' AND has(chain, step))) AS obstacles,
        -- docs/metrics.md "Fast Track In Stock": the site's product step, props and days ([sites.fast_track])
        uniqExactIf(event_id, type = 'step' AND step = {ft_step:String}) AS detail_views,
        uniqExactIf(event_id, type = 'step' AND step = {ft_step:String} AND props[{ft_in_stock:String}] = 'true'
                    AND toFloat64OrNull(props[{ft_ship_days:String}]) <= {ft_days:Float64}) AS fast_track_views,
        uniqExact(event_id) AS events,
        -- each order once: by its id, else by the event (a retried copy has the same id)
        groupUniqArrayIf((if(order_id = '', toString(event_id), order_id), assumeNotNull(value)),
                         step = chain[length(chain)] AND value IS NOT NULL) AS orders,
        argMaxIf(currency, ts, step = chain[length(chain)] AND currency != '') AS currency,
        -- the store's own pages are not a source (a session that began after a pause)
        if(domainWithoutWWW(argMin(referrer, ts)) = domainWithoutWWW(argMin(url, ts)), '',
           domainWithoutWWW(argMin(referrer, ts))) AS first_referrer_host
    FROM events
    WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
    GROUP BY site_id, session_id
    HAVING day IN {days:Array(Date)} AND ended_at < {closed_before:DateTime64(3)}
)
-- `events` is sorted by (site_id, session_id): aggregating in that order streams
-- session by session instead of holding every session in a hash table.
SETTINGS optimize_aggregation_in_order = 1

-- fulfillment_daily (docs/metrics.md, "After the purchase"): per purchase day, device and segment
-- ('all' in the totals), the orders, how many were shipped and delivered and how fast (exact
-- quantiles of hours from the purchase), the share delivered by the promised time, tracked and
-- returned, and the five reasons for returns given most.
INSERT INTO fulfillment_daily_staging (site_id, day, device, segment, orders, shipped, delivered, p50_hours_to_ship,
    p90_hours_to_ship, p50_hours_to_deliver, p90_hours_to_deliver, with_promise, on_time, on_time_share,
    tracking_viewed, tracking_viewed_share, returned, returned_share, return_reasons)
-- (Aliases differ from the columns they fill where the input has a column of that name.)
SELECT
    site_id, day, cut.1, cut.2,
    count() AS n_orders,
    countIf(shipped_at IS NOT NULL),
    countIf(delivered_at IS NOT NULL),
    quantileExactInclusive(0.5)(hours_to_ship),
    quantileExactInclusive(0.9)(hours_to_ship),
    quantileExactInclusive(0.5)(hours_to_deliver),
    quantileExactInclusive(0.9)(hours_to_deliver),
    countIf(on_time IS NOT NULL) AS n_promised,
    countIf(on_time) AS n_on_time,
    if(n_promised = 0, NULL, n_on_time / n_promised),
    countIf(tracking_viewed) AS n_tracked,
    n_tracked / n_orders,
    countIf(returned) AS n_returned,
    n_returned / n_orders,
    arraySlice(arraySort(t -> (-t.2, t.1), arrayMap(r -> (r, toUInt64(countEqual(reasons, r))),
                                                    arrayDistinct(groupArrayIf(return_reason, returned) AS reasons))),
               1, 5)
FROM
(
    SELECT *, [(device, segment), ({all:String}, segment), (device, {all:String}), ({all:String}, {all:String})]
        AS cuts
    FROM chain_orders_staging
    WHERE site_id = {site:String} AND day IN {days:Array(Date)}
)
ARRAY JOIN cuts AS cut
GROUP BY site_id, day, cut

-- fast_track_daily (docs/metrics.md, "Fast Track In Stock"): among `select` step events,
-- the share with in_stock = true and ship_days <= 2. Counted per event id in
-- chain_sessions, summed per day here.
INSERT INTO fast_track_daily_staging (site_id, day, detail_views, fast_track_views, rate)
SELECT site_id, day, sum(detail_views) AS detail_views, sum(fast_track_views) AS fast_track_views,
    fast_track_views / detail_views AS rate
FROM chain_sessions_staging
WHERE site_id = {site:String} AND day IN {days:Array(Date)}
GROUP BY site_id, day
HAVING detail_views > 0

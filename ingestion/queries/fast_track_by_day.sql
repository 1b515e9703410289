-- fast_track_by_day: The Fast-Track-In-Stock rate per day, whole site (docs/metrics.md, "Fast Track In Stock").
SELECT day, detail_views, fast_track_views, rate FROM fast_track_daily WHERE site_id = {site:String}
  AND day BETWEEN {start:Date} AND {end:Date} ORDER BY day

-- fast_track: The Fast-Track-In-Stock rate over the range, for the device and segment asked
-- (docs/metrics.md, "Fast Track In Stock"): summed from the sessions, as fast_track_daily is.
SELECT sum(detail_views) AS detail_views, sum(fast_track_views) AS fast_track_views,
       if(detail_views = 0, NULL, fast_track_views / detail_views) AS rate
FROM chain_sessions WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND ({device:String} = {all:String} OR device = {device:String})
  AND ({segment:String} = {all:String} OR segment = {segment:String})

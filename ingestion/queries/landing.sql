-- landing: The landing pages that began the most sessions (docs/metrics.md, "Landing engagement").
SELECT l.landing_path AS landing_path, l.sessions AS sessions, l.engaged AS engaged_7s,
       l.engaged / l.sessions AS engaged_rate, l.bounced AS bounced, l.bounced / l.sessions AS bounce_rate,
       l.in_clicks AS reached_select_in_3_clicks, w.median_s AS median_s_to_first_interaction
FROM (SELECT landing_path, sum(sessions) AS sessions, sum(engaged_7s) AS engaged, sum(bounced) AS bounced,
             sum(reached_select_in_3_clicks) AS in_clicks
      FROM landing_engagement_daily
      WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
        AND landing_path != {all:String} AND source = {all:String}
        AND device = {device:String} AND segment = {segment:String}
      GROUP BY landing_path) AS l
LEFT JOIN (SELECT landing_path, if(sum(length(first_interaction_ms_values)) = 0, NULL,
                  quantileExactInclusiveArray(0.5)(first_interaction_ms_values) / 1000) AS median_s
           FROM landing_engagement_daily
           WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
             AND landing_path != {all:String} AND source != {all:String} AND device != {all:String}
             AND segment != {all:String}
             AND ({device:String} = {all:String} OR device = {device:String})
             AND ({segment:String} = {all:String} OR segment = {segment:String}) GROUP BY landing_path) AS w
ON l.landing_path = w.landing_path
ORDER BY sessions DESC, landing_path LIMIT 10

-- search: The site search's terms: searches, the sessions that searched each, those that left right after it and those that went on to purchase, the 15 most searched, or those named in {values:Array(String)} when it is not empty (docs/metrics.md, "Site search").
SELECT term, sum(searches) AS searches, sum(sessions) AS sessions, sum(exits) AS exits,
       if(sessions = 0, NULL, exits / sessions) AS exit_rate, sum(orders) AS orders,
       if(sessions = 0, NULL, orders / sessions) AS conversion_rate
FROM search_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device = {device:String} AND segment = {segment:String}
  AND (empty({values:Array(String)}) OR has({values:Array(String)}, term))
GROUP BY term ORDER BY searches DESC, term LIMIT 15

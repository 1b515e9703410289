-- left: The latest sessions that left during checkout (every checkout step, or `stopped`), with
-- their path and obstacles: no personal data (docs/metrics.md, "Abandonment").
SELECT session_id, device, visitor, source, started_at, ended_at, abandoned_at, steps,
       arrayMap(t -> toUnixTimestamp64Milli(t) - toUnixTimestamp64Milli(started_at), entered) AS at_ms,
       abandoned_obstacles AS obstacles_there,
       arrayMap((s, k) -> concat(s, ': ', k), obstacle_steps, obstacle_kinds) AS obstacles
FROM chain_sessions
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND ({device:String} = {all:String} OR device = {device:String})
  AND ({segment:String} = {all:String} OR segment = {segment:String}) AND abandoned_at != ''
  AND if({stopped:String} = '', abandoned_at IN {checkout:Array(String)}, abandoned_at = {stopped:String})
ORDER BY ended_at DESC, session_id LIMIT 20

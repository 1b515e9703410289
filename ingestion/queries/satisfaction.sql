-- satisfaction: NPS with its 95% interval, overall and by weak link (docs/metrics.md, "Satisfaction").
SELECT link, sum(responses) AS answers, sum(promoters) AS p, sum(detractors) AS d,
       chainlens_nps(p, d, answers) AS nps,
       chainlens_nps_low(p, d, answers) AS nps_low, chainlens_nps_high(p, d, answers) AS nps_high
FROM satisfaction_daily
WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date} AND asked_at = {all:String}
  AND device = {device:String} AND segment = {segment:String}
GROUP BY link
ORDER BY indexOf(['all', 'no_obstacle', 'met_obstacle', 'on_time', 'late'], link)

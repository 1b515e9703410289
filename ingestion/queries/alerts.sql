-- alerts: The latest record of each early-warning episode, open ones first (docs/metrics.md, "Early warning").
SELECT max(t) AS detected_at, step, device, kind, window_hours,
       argMax(state, t) AS state, argMax(baseline_rate, t) AS baseline_rate,
       argMax(current_rate, t) AS current_rate, argMax(reached, t) AS reached,
       argMax(z, t) AS z, argMax(message, t) AS message,
       argMax(window_start, t) AS window_start, argMax(window_end, t) AS window_end
FROM (SELECT *, detected_at AS t FROM alerts WHERE site_id = {site:String})
GROUP BY step, device, kind, window_hours
ORDER BY state != 'resolved' DESC, detected_at DESC LIMIT 10

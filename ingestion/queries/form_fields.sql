-- form_fields: Where in the form they leave: per step, form and field, the sessions that touched it, those that left the form there and their share of the form's abandoned sessions, the errors and the share of sessions with one, the abandonment with an error on it against without one with its 95% interval, and the orders lost; the fields of each step ranked by orders lost (docs/metrics.md, "Form fields").
SELECT f.step AS step, f.form AS form, f.field AS field, f.touched AS touched, f.left_here AS left_here,
       if(a.abandoned = 0, NULL, f.left_here / a.abandoned) AS last_field_share,
       f.errors AS errors, f.with_error AS with_error, f.with_error / f.touched AS error_share,
       f.corrections AS corrections, f.autofilled AS autofilled,
       f.rate_with AS rate_with, f.rate_without AS rate_without, f.diff AS diff, f.diff_low AS diff_low,
       f.diff_high AS diff_high, f.orders_lost AS orders_lost, f.insufficient AS insufficient,
       a.started AS form_started, a.abandoned AS form_abandoned
FROM (SELECT step, form, field, sum(sessions_touched) AS touched, sum(sessions_left_here) AS left_here,
             sum(errors) AS errors, sum(sessions_with_error) AS with_error, sum(corrections) AS corrections,
             sum(autofilled) AS autofilled, sum(abandoned_with_error) AS left_with,
             sum(abandoned_without_error) AS left_without, touched - with_error AS without_error,
             if(with_error = 0, NULL, left_with / with_error) AS rate_with,
             if(without_error = 0, NULL, left_without / without_error) AS rate_without,
             rate_with - rate_without AS diff,
             chainlens_diff_low(left_with, with_error, left_without, without_error) AS diff_low,
             chainlens_diff_high(left_with, with_error, left_without, without_error) AS diff_high,
             with_error * diff AS orders_lost,
             with_error < {min_sample:UInt32} OR without_error < {min_sample:UInt32} AS insufficient
      FROM form_fields_daily
      WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date} AND device = {device:String}
      GROUP BY step, form, field) AS f
LEFT JOIN (SELECT step, form, sum(started) AS started, sum(abandoned) AS abandoned
           FROM form_daily
           WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date} AND device = {device:String}
           GROUP BY step, form) AS a
ON f.step = a.step AND f.form = a.form
ORDER BY step, insufficient, orders_lost DESC NULLS LAST, left_here DESC, field

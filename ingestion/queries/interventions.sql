-- interventions: The lift of acting at the moment of risk over the holdout, per step and trigger
-- (docs/interventions.md, "`intervention_daily`").
SELECT step, trigger,
       sumIf(sessions, arm = 'treatment') AS treated, sumIf(purchases, arm = 'treatment') AS treated_bought,
       sumIf(sessions, arm = 'holdout') AS held, sumIf(purchases, arm = 'holdout') AS held_bought,
       sumIf(accepted, arm = 'treatment') AS accepted, round(sumIf(offer_cost, arm = 'treatment'), 2) AS offer_cost,
       if(treated = 0, NULL, treated_bought / treated) AS treated_conversion,
       if(held = 0, NULL, held_bought / held) AS held_conversion,
       treated_conversion - held_conversion AS lift,
       chainlens_diff_low(treated_bought, treated, held_bought, held) AS lift_low,
       chainlens_diff_high(treated_bought, treated, held_bought, held) AS lift_high,
       treated * lift AS incremental_orders,
       round(sumIf(revenue, arm = 'treatment'), 2)
           - treated * if(held = 0, NULL, round(sumIf(revenue, arm = 'holdout'), 2) / held)
           - offer_cost AS incremental_revenue,
       treated < {act_min_sample:UInt32} OR held < {act_min_sample:UInt32} AS insufficient
FROM intervention_daily WHERE site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}
  AND device = {device:String}
GROUP BY step, trigger ORDER BY step, trigger != 'all', trigger

"""The figures people read, as queries over the rollup tables: one home for each.

Every metric is computed once, in the rollup SQL (ingestion/rollups/, defined in
docs/metrics.md). Over a range of days, counts are sums of the daily rows and a
rate is the ratio of those sums; quantiles, which cannot be summed, come from the
per-session values `chain_sessions` holds. The dashboard (`report`), the demo and
the cookbook read these queries; nothing else re-derives a figure.

Parameters: `site` (String), `start`/`end` (Date), `all` (the total rows' value).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from clickhouse_connect.driver.client import Client

from chainlens.core.settings import Site
from ingestion.tables import ALL

_SCOPE = "site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}"
_WHOLE = _SCOPE + " AND device = {device:String} AND visitor = {all:String} AND segment = {segment:String}"
# chain_sessions holds one device and segment per session: the filter, or every session for 'all'.
_DEV = (" AND ({device:String} = {all:String} OR device = {device:String})"
        " AND ({segment:String} = {all:String} OR segment = {segment:String})")
_CART = "if(carts = 0, NULL, 1 - bought / carts) AS cart_abandonment"  # docs/metrics.md "Cart abandonment"

QUERIES: dict[str, str] = {
    # docs/metrics.md "Sessions": reached(k), purchased
    "funnel": f"""
        SELECT step, step_index, sum(sessions_reached) AS reached, sum(sessions_purchased) AS purchased
        FROM chain_daily WHERE {_WHOLE} GROUP BY step, step_index ORDER BY step_index""",
    # docs/metrics.md "Abandonment" and "Time before abandoning"
    "checkout": f"""
        SELECT a.step AS step, a.step_index AS step_index, a.reached AS reached, a.continued AS continued,
               a.abandoned AS abandoned, a.abandoned / a.reached AS abandonment_rate,
               w.median_ms AS median_ms_before_abandon
        FROM (SELECT step, step_index, sum(reached) AS reached, sum(continued) AS continued,
                     sum(abandoned) AS abandoned
              FROM checkout_abandonment_daily WHERE {_WHOLE} GROUP BY step, step_index) AS a
        LEFT JOIN (SELECT abandoned_at AS step, quantileExactInclusive(0.5)(ms_before_abandon) AS median_ms
                   FROM chain_sessions WHERE {_SCOPE}{_DEV} AND abandoned_at != '' GROUP BY abandoned_at) AS w
        ON a.step = w.step
        ORDER BY a.step_index""",
    # docs/metrics.md "Step timing": exact quantiles over the range's transitions
    "timing": f"""
        SELECT t.step AS step, t.next_step AS next_step, count() AS transitions,
               quantilesExactInclusive(0.5, 0.9)(t.ms) AS q, q[1] AS p50_ms, q[2] AS p90_ms
        FROM (SELECT arrayJoin(transitions) AS t FROM chain_sessions WHERE {_SCOPE}{_DEV})
        GROUP BY step, next_step
        ORDER BY transitions DESC, step, next_step""",
    # docs/metrics.md "Obstacle impact": ranked by the orders it costs, with 95% intervals over the range
    "obstacles": f"""
        SELECT step, kind, sum(sessions_with) AS sessions_with, sum(abandoned_with) AS met_and_left,
               met_and_left / sessions_with AS rate_with,
               sum(sessions_without) AS sessions_without, sum(abandoned_without) AS others_left,
               if(sessions_without = 0, NULL, others_left / sessions_without) AS rate_without,
               if(rate_without = 0, NULL, rate_with / rate_without) AS lift,
               if(sessions_without = 0, NULL, rate_with - rate_without) AS diff,
               chainlens_diff_low(met_and_left, sessions_with, others_left, sessions_without) AS diff_low,
               chainlens_diff_high(met_and_left, sessions_with, others_left, sessions_without) AS diff_high,
               sessions_with * diff AS orders_lost, sessions_with * diff_low AS orders_lost_low,
               sessions_with * diff_high AS orders_lost_high,
               orders_lost * (SELECT nullIf(quantileExactInclusive(0.5)(revenue), 0) FROM chain_sessions
                              WHERE {_SCOPE} AND purchased AND revenue > 0) AS revenue_at_stake,
               sessions_with < {{min_sample:UInt32}} OR sessions_without < {{min_sample:UInt32}} AS insufficient,
               diff_low <= 0 AND diff_high >= 0 AS includes_zero
        FROM obstacle_impact_daily WHERE {_SCOPE} AND segment = {{segment:String}}
        GROUP BY step, kind ORDER BY insufficient, orders_lost DESC NULLS LAST, sessions_with DESC""",
    # docs/metrics.md "Fast Track In Stock"
    "fast_track": f"""
        SELECT sum(detail_views) AS detail_views, sum(fast_track_views) AS fast_track_views,
               if(detail_views = 0, NULL, fast_track_views / detail_views) AS rate
        FROM fast_track_daily WHERE {_SCOPE}""",
    "fast_track_by_day": f"""
        SELECT day, detail_views, fast_track_views, rate FROM fast_track_daily WHERE {_SCOPE} ORDER BY day""",
    "cart": f"""
        SELECT sum(sessions_reached) AS carts, sum(sessions_purchased) AS bought, {_CART}
        FROM chain_daily WHERE {_WHOLE} AND step = {{checkout_from:String}}""",
    "cart_by_day": f"""
        SELECT day, sessions_reached AS carts, sessions_purchased AS bought, {_CART}
        FROM chain_daily WHERE {_WHOLE} AND step = {{checkout_from:String}} ORDER BY day""",
    # docs/metrics.md "Orders and revenue": a shop owner's first figures
    "headline": f"""
        SELECT count() AS sessions, countIf(purchased) AS orders, sum(revenue) AS revenue,
               anyIf(currency, currency != '') AS currency,
               if(orders = 0, NULL, revenue / orders) AS average_order_value,
               if(sessions = 0, NULL, orders / sessions) AS conversion_rate
        FROM chain_sessions WHERE {_SCOPE}{_DEV}""",
    # The latest sessions that left during checkout (all checkout steps, or `stopped`): no personal data
    "left": f"""
        SELECT session_id, device, visitor, source, started_at, ended_at, abandoned_at, steps,
               arrayMap(t -> toUnixTimestamp64Milli(t) - toUnixTimestamp64Milli(started_at), entered) AS at_ms,
               arrayFilter((k, s) -> s = abandoned_at, obstacle_kinds, obstacle_steps) AS obstacles_there,
               arrayMap((s, k) -> concat(s, ': ', k), obstacle_steps, obstacle_kinds) AS obstacles
        FROM chain_sessions
        WHERE {_SCOPE}{_DEV} AND abandoned_at != ''
          AND if({{stopped:String}} = '', has({{checkout:Array(String)}}, abandoned_at),
                 abandoned_at = {{stopped:String}})
        ORDER BY ended_at DESC LIMIT 20""",
    # Products most often in carts that were left during checkout (docs/metrics.md "Orders and revenue")
    "abandoned_products": f"""
        SELECT item.1 AS item_id, anyLast(item.2) AS item_name, uniqExact(session_id) AS abandoned_carts
        FROM events
        ARRAY JOIN JSONExtract(props['item_list'], 'Array(Tuple(String, String))') AS item
        WHERE site_id = {{site:String}} AND mapContains(props, 'item_list') AND has({{checkout:Array(String)}}, step)
          AND NOT is_bot
          AND ts >= toDateTime64({{start:Date}}, 3, 'UTC') - INTERVAL 1 DAY
          AND ts < toDateTime64({{end:Date}}, 3, 'UTC') + INTERVAL 2 DAY
          AND session_id IN (SELECT session_id FROM chain_sessions
                             WHERE {_SCOPE}{_DEV} AND has({{checkout:Array(String)}}, abandoned_at))
        GROUP BY item_id ORDER BY abandoned_carts DESC, item_id LIMIT 10""",
    # docs/metrics.md "Abandonment", per checkout step and day: the dashboard's trend lines
    "checkout_by_day": f"""
        SELECT step, step_index, day, reached, abandonment_rate
        FROM checkout_abandonment_daily WHERE {_WHOLE} ORDER BY step_index, day""",
    # docs/metrics.md "Behavior segments": each segment's sessions, orders and cart abandonment
    "segments": f"""
        SELECT segment, count() AS sessions, countIf(purchased) AS orders,
               if(sessions = 0, NULL, orders / sessions) AS conversion_rate,
               countIf(has(steps, {{checkout_from:String}})) AS carts,
               if(carts = 0, NULL, countIf(has(steps, {{checkout_from:String}}) AND NOT purchased) / carts)
                   AS cart_abandonment
        FROM chain_sessions WHERE {_SCOPE}{_DEV} GROUP BY segment ORDER BY sessions DESC""",
    # ... and each segment's abandonment of every checkout step, side by side
    "checkout_by_segment": f"""
        SELECT segment, step, step_index, sum(reached) AS reached, sum(abandoned) AS abandoned,
               abandoned / reached AS abandonment_rate
        FROM checkout_abandonment_daily
        WHERE {_SCOPE} AND device = {{device:String}} AND visitor = {{all:String}} AND segment != {{all:String}}
        GROUP BY segment, step, step_index ORDER BY step_index, segment""",
    # docs/metrics.md "Landing engagement": the landing pages that began the most sessions
    "landing": f"""
        SELECT l.landing_path AS landing_path, l.sessions AS sessions, l.engaged AS engaged_7s,
               l.engaged / l.sessions AS engaged_rate, l.bounced AS bounced, l.bounced / l.sessions AS bounce_rate,
               l.in_clicks AS reached_select_in_3_clicks, w.median_s AS median_s_to_first_interaction
        FROM (SELECT landing_path, sum(sessions) AS sessions, sum(engaged_7s) AS engaged, sum(bounced) AS bounced,
                     sum(reached_select_in_3_clicks) AS in_clicks
              FROM landing_engagement_daily
              WHERE {_SCOPE} AND landing_path != {{all:String}} AND source = {{all:String}}
                AND device = {{device:String}} AND segment = {{segment:String}}
              GROUP BY landing_path) AS l
        LEFT JOIN (SELECT landing_path, quantileExactInclusive(0.5)(first_interaction_ms) / 1000 AS median_s
                   FROM chain_sessions WHERE {_SCOPE}{_DEV} GROUP BY landing_path) AS w
        ON l.landing_path = w.landing_path
        ORDER BY sessions DESC, landing_path LIMIT 10""",
    # docs/metrics.md "Campaigns": what each source, medium and campaign brought, by orders
    "campaigns": f"""
        SELECT source, medium, campaign, sum(sessions) AS sessions, sum(carts) AS carts, sum(orders) AS orders,
               if(sessions = 0, NULL, orders / sessions) AS conversion_rate, sumMap(revenue) AS revenue,
               if(carts = 0, NULL, sum(carts_abandoned) / carts) AS cart_abandonment
        FROM campaign_daily
        WHERE {_SCOPE} AND medium != {{all:String}} AND device = {{device:String}}
        GROUP BY source, medium, campaign ORDER BY orders DESC, sessions DESC, source LIMIT 15""",
    # docs/metrics.md "After the purchase": per purchase day, delivery times and the share on time
    "fulfillment_by_day": f"""
        SELECT f.day AS day, f.orders AS orders, f.shipped AS shipped, f.delivered AS delivered,
               f.p50_hours_to_deliver AS p50_hours_to_deliver, f.p90_hours_to_deliver AS p90_hours_to_deliver,
               f.on_time_share AS on_time_share, f.tracking_viewed_share AS tracking_viewed_share,
               f.returned_share AS returned_share
        FROM fulfillment_daily AS f
        WHERE {_SCOPE} AND device = {{device:String}} AND segment = {{segment:String}} ORDER BY day""",
    # ... over the range: exact quantiles from the orders themselves
    "fulfillment": f"""
        SELECT count() AS orders, countIf(shipped_at IS NOT NULL) AS shipped,
               countIf(delivered_at IS NOT NULL) AS delivered,
               quantileExactInclusive(0.5)(hours_to_ship) AS p50_hours_to_ship,
               quantileExactInclusive(0.5)(hours_to_deliver) AS p50_hours_to_deliver,
               quantileExactInclusive(0.9)(hours_to_deliver) AS p90_hours_to_deliver,
               if(countIf(on_time IS NOT NULL) = 0, NULL, countIf(on_time) / countIf(on_time IS NOT NULL))
                   AS on_time_share,
               if(orders = 0, NULL, countIf(tracking_viewed) / orders) AS tracking_viewed_share,
               if(orders = 0, NULL, countIf(returned) / orders) AS returned_share
        FROM chain_orders WHERE {_SCOPE}{_DEV}""",
    "return_reasons": f"""
        SELECT return_reason AS reason, count() AS returns
        FROM chain_orders WHERE {_SCOPE}{_DEV} AND returned
        GROUP BY reason ORDER BY returns DESC, reason LIMIT 5""",
    # docs/metrics.md "Satisfaction": NPS with its 95% interval, and the weak links
    "satisfaction": f"""
        SELECT link, sum(responses) AS answers, sum(promoters) AS p, sum(detractors) AS d,
               chainlens_nps(p, d, answers) AS nps,
               chainlens_nps_low(p, d, answers) AS nps_low, chainlens_nps_high(p, d, answers) AS nps_high
        FROM satisfaction_daily
        WHERE {_SCOPE} AND asked_at = {{all:String}} AND device = {{device:String}} AND segment = {{segment:String}}
        GROUP BY link
        ORDER BY indexOf(['all', 'no_obstacle', 'met_obstacle', 'on_time', 'late'], link)""",
    # docs/interventions.md: the lift of acting at the moment of risk over the holdout, per step and trigger
    "interventions": f"""
        SELECT step, trigger,
               sumIf(sessions, arm = 'treatment') AS treated, sumIf(purchases, arm = 'treatment') AS treated_bought,
               sumIf(sessions, arm = 'holdout') AS held, sumIf(purchases, arm = 'holdout') AS held_bought,
               sumIf(accepted, arm = 'treatment') AS accepted, sumIf(offer_cost, arm = 'treatment') AS offer_cost,
               if(treated = 0, NULL, treated_bought / treated) AS treated_conversion,
               if(held = 0, NULL, held_bought / held) AS held_conversion,
               treated_conversion - held_conversion AS lift,
               chainlens_diff_low(treated_bought, treated, held_bought, held) AS lift_low,
               chainlens_diff_high(treated_bought, treated, held_bought, held) AS lift_high,
               treated * lift AS incremental_orders,
               sumIf(revenue, arm = 'treatment') - treated * if(held = 0, NULL, sumIf(revenue, arm = 'holdout') / held)
                   - offer_cost AS incremental_revenue,
               treated < {{act_min_sample:UInt32}} OR held < {{act_min_sample:UInt32}} AS insufficient
        FROM intervention_daily WHERE {_SCOPE} AND device = {{device:String}}
        GROUP BY step, trigger ORDER BY step, trigger != 'all', trigger""",
    # docs/metrics.md "Early warning": the latest record of each episode, open ones first
    "alerts": """
        SELECT max(t) AS detected_at, step, device, kind, window_hours,
               argMax(state, t) AS state, argMax(baseline_rate, t) AS baseline_rate,
               argMax(current_rate, t) AS current_rate, argMax(reached, t) AS reached,
               argMax(z, t) AS z, argMax(message, t) AS message,
               argMax(window_start, t) AS window_start, argMax(window_end, t) AS window_end
        FROM (SELECT *, detected_at AS t FROM alerts WHERE site_id = {site:String})
        GROUP BY step, device, kind, window_hours
        ORDER BY state != 'resolved' DESC, detected_at DESC LIMIT 10""",
}


DEVICES = (ALL, "desktop", "mobile", "tablet")


def parameters(site: Site, *, start: dt.date, end: dt.date, stopped: str = "", device: str = ALL,
               segment: str = ALL) -> dict[str, Any]:
    return {"site": site.id, "start": start, "end": end, "all": ALL, "device": device, "segment": segment,
            "checkout_from": site.checkout_from,
            "checkout": list(site.checkout_steps), "stopped": stopped, "min_sample": site.obstacle_min_sample,
            "act_min_sample": site.intervene.min_sample}


def rows(client: Client, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(QUERIES[name], parameters=params)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

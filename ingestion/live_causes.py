"""The likely cause of a live stall (docs/metrics.md, "Live early warning", "Likely cause"): the
sessions stalled at a step compared with the step's usual sessions on the obstacles met there,
device, browser, OS, page, landing source and version, each factor ranked by how much more
common it is among the stalled."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from chainlens.core.settings import Site

USUAL_DAYS = 3  # the step's usual sessions, for the cause: the days before the judged window
CAUSE_MIN_SHARE = 0.3  # a factor named as the cause is this common among the stalled, at least,
CAUSE_MIN_LIFT = 2.0  # and this many times its usual share
OVER = 1.2  # a factor is a candidate when this many times as common among the stalled as usual

# Per session at the step: the factors a cause may be, for the stalled sessions (by id) and the
# step's usual sessions (every session that entered it from {usual_lo} to {usual_hi}).
FACTORS = """
SELECT has({ids:Array(String)}, session_id) AS stalled, f.1 AS factor, f.2 AS value, count() AS sessions
FROM
(
    SELECT
        session_id,
        minIf(ts, step = {step:String}) AS entry,
        arrayConcat(
            [('device', argMin(device, ts)), ('browser', argMin(browser, ts)), ('os', argMin(os, ts)),
             ('page', path(argMinIf(url, ts, step = {step:String} AND url != ''))),
             ('source', multiIf(argMinIf(props['utm_source'], ts, type = 'page') != '',
                                argMinIf(props['utm_source'], ts, type = 'page'),
                                domainWithoutWWW(argMin(referrer, ts)) NOT IN ('', domainWithoutWWW(argMin(url, ts))),
                                domainWithoutWWW(argMin(referrer, ts)), '(direct)'))],
            arrayMap(o -> ('obstacle', o), groupUniqArrayIf(
                concat(name, multiIf(props['message'] != '', concat(' \\'', props['message'], '\\''),
                                     props['field'] != '', concat(' on field \\'', props['field'], '\\''), '')),
                type = 'obstacle' AND step = {step:String})),
            arrayMap(v -> ('version', v), groupUniqArrayIf(props['version'], props['version'] != ''))
        ) AS factors
    FROM events
    WHERE site_id = {site:String} AND NOT is_bot AND source != 'import'
        AND ((ts >= {usual_lo:DateTime64(3)} AND ts < {usual_hi:DateTime64(3)}) OR session_id IN {ids:Array(String)})
    GROUP BY session_id
    HAVING entry > '1970-01-02' AND (stalled OR entry < {usual_hi:DateTime64(3)})
)
ARRAY JOIN factors AS f
GROUP BY stalled, factor, value
"""


@dataclass(frozen=True)
class Cause:
    factor: str
    value: str
    count: int  # stalled sessions with it
    share: float
    usual_share: float
    score: float


def rank_causes(client: Client, site: Site, step: str, stalled: list[str], *, usual_until: dt.datetime,
                ) -> list[Cause]:
    """The factors most over-represented among the stalled sessions, against the step's usual
    ones: those that entered it in the USUAL_DAYS (at most `baseline_days`) before `usual_until`."""
    if not stalled:
        return []
    usual_hi = usual_until
    usual_lo = usual_hi - dt.timedelta(days=min(USUAL_DAYS, site.alerts.baseline_days))
    rows = client.query(FACTORS, parameters={"site": site.id, "step": step, "ids": stalled,
                                              "usual_lo": naive(usual_lo), "usual_hi": naive(usual_hi)}).result_rows
    return ranked([(bool(r[0]), r[1], r[2], int(r[3])) for r in rows], len(stalled))


def ranked(rows: list[tuple[bool, str, str, int]], stalled: int) -> list[Cause]:
    """rows: (stalled?, factor, value, sessions). Ranked by the Poisson log-likelihood ratio of
    the stalled sessions' count against their usual share, k·ln(k / (n·u)) − (k − n·u)."""
    usual: dict[tuple[str, str], int] = {}
    now: dict[tuple[str, str], int] = {}
    for is_stalled, factor, value, n in rows:
        (now if is_stalled else usual)[(factor, value)] = int(n)
    # every usual session has exactly one device: their count is the usual sessions' count
    usual_n = sum(n for (f, _), n in usual.items() if f == "device")
    out = []
    for (factor, value), k in now.items():
        u = (usual.get((factor, value), 0) + 0.5) / (usual_n + 1)
        expected = stalled * u
        if k < OVER * expected:
            continue
        score = k * math.log(k / expected) - (k - expected)
        out.append(Cause(factor, value, k, k / stalled, usual.get((factor, value), 0) / usual_n if usual_n else 0.0,
                         score))
    out.sort(key=lambda c: (-c.score, c.factor, c.value))
    return out[:8]


def describe(causes: list[Cause], stalled: int) -> str:
    """The likely cause in words: the top factors common among the stalled and rare otherwise."""
    words = []
    for c in causes:
        if c.share < CAUSE_MIN_SHARE or c.share < CAUSE_MIN_LIFT * c.usual_share:
            continue
        what = {"obstacle": f"met {c.value}", "page": f"on page {c.value}", "source": f"came from {c.value}",
                "version": f"on version {c.value}"}.get(c.factor, f"on {c.value}")
        words.append(f"{c.count} of {stalled} {what} (usually {c.usual_share:.1%})")
        if len(words) == 2:
            break
    return "; ".join(words)


def naive(t: dt.datetime) -> dt.datetime:
    """A time as the store's DateTime64 parameters take it: UTC, without a zone."""
    return t.astimezone(dt.UTC).replace(tzinfo=None)

"""Customers who come back: the demo's repeat purchases (docs/metrics.md, "Customers and repeat
purchases").

After the sessions and the back office's reports are drawn, some buyers return: a later
purchasing session becomes theirs, on the same device (their visitor id) or, when they signed in,
on another one (their user id). Whether they come back depends on how their order went: a late
delivery or a detractor's answer halves the chance, a promoter's raises it, and an order taken
with the free-shipping offer comes back a little less often (it teaches waiting for offers),
which the offer's holdout shows.
"""

from __future__ import annotations

import bisect
import random
import uuid
from collections.abc import Sequence
from typing import Any

from chainlens.demo.shoppers import Session

RETURN = 0.45  # the chance that a buyer whose order went well orders again
GAP_DAYS = 14  # the median days until they do (log-normal)
SIGN_IN = 0.35  # buyers who sign in with their order


def _orders(reports: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per order id: late (delivered after the promise) and the answer's score, from the reports."""
    out: dict[str, dict[str, Any]] = {}
    for r in reports:
        o = out.setdefault(r["order_id"], {})
        props = r.get("props") or {}
        if r.get("step") == "shipped":
            o["promised"] = props.get("promised_by")
        elif r.get("step") == "delivered":
            o["delivered"] = r["ts"]
        elif r.get("name") == "feedback":
            o["score"] = props.get("score")
    return out


def _chance(session: Session, order: dict[str, Any]) -> float:
    p = RETURN
    if order.get("delivered") and order.get("promised") and order["delivered"] > order["promised"]:
        p *= 0.5
    score = order.get("score")
    if score is not None:
        p *= 0.5 if score <= 6 else 1.3 if score >= 9 else 1.0
    if any(e.get("name") == "intervention_outcome" and (e.get("props") or {}).get("outcome") == "accepted"
           for e in session.events):
        p *= 0.8
    return min(p, 0.9)


def _purchase(session: Session) -> dict[str, Any] | None:
    return next((e for e in session.events if e.get("step") == "purchase" and e.get("order_id")), None)


def link_returns(sessions: Sequence[Session], reports: Sequence[dict[str, Any]], *, seed: int) -> int:
    """Make some later purchasing sessions the return of an earlier buyer (in place); how many."""
    rng = random.Random(seed)
    orders = _orders(reports)
    buying = sorted((s.events[0]["ts"], i) for i, s in enumerate(sessions) if _purchase(s))
    starts = [ts for ts, _ in buying]
    claimed: set[int] = set()
    users: dict[int, str] = {}  # session index -> the user id its buyer signed in with
    linked = 0
    for ts, i in buying:
        session = sessions[i]
        purchase = _purchase(session)
        assert purchase is not None
        if i not in users and rng.random() < SIGN_IN:
            users[i] = f"user-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
            _sign_in(session, users[i])
        if rng.random() >= _chance(session, orders.get(purchase["order_id"], {})):
            continue
        target = ts + int(86_400_000 * GAP_DAYS * rng.lognormvariate(0, 0.9))
        at = bisect.bisect_left(starts, target)
        while at < len(buying) and (buying[at][1] in claimed or buying[at][1] == i):
            at += 1
        if at == len(buying) or buying[at][0] > target + 10 * 86_400_000:
            continue
        j = buying[at][1]
        claimed.add(j)
        again = sessions[j]
        user = users.get(i)
        if user and rng.random() < 0.5:  # on another device: linked by signing in again
            users[j] = user
            _sign_in(again, user)
        else:  # on the same device, signed in again or not
            for e in again.events:
                e["aid"] = session.events[0]["aid"]
            if user:
                users[j] = user
                _sign_in(again, user)
        linked += 1
    return linked


def _sign_in(session: Session, user: str) -> None:
    first = session.events[0]
    session.events.append({"id": str(uuid.uuid5(uuid.NAMESPACE_URL, first["id"] + user)), "type": "identify",
                           "ts": first["ts"] + 1000, "sid": first["sid"], "aid": first["aid"], "sn": first["sn"],
                           "uid": user})

"""A seeded model of shoppers walking a shop's consumption chain, for the demo.

Each session walks discover → search → select → cart → checkout.info →
checkout.shipping → checkout.payment → (checkout.review) → purchase and may
leave at any step. The obstacles a store meets (a shipping cost revealed late,
a forced account, a declined card, an item out of stock) lower the chance to
continue on their step, so a store sees them in `obstacle_impact_daily`. Step
continuation rates are set so that about 70% of carts are abandoned, Baymard's
long-run figure. From `change_at_ms` on, the shipping cost jumps: the early
warning should catch the rise of abandonment at checkout.shipping. While
`payment_broken` says so, the payment page fails on Mobile Safari (js_error
'Stripe is not defined') and nobody on it gets past: the live early warning
should say so within minutes, with that cause.

Shoppers come for different jobs (docs/metrics.md, "Behavior segments"): a
decisive one goes straight to the cart and shrugs off a shipping cost more often;
a researcher compares many products and searches, and leaves when an item is out
of stock; a visitor who left a cart may come back to finish. They arrive from
three campaigns with different order yields, from search engines, blogs or
directly, on landing pages that win them in the first seconds more or less often.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

DESKTOP_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0 Safari/537.36")
MOBILE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Version/17.4 Mobile/15E148 Safari/604.1")
TABLET_UA = ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Version/17.4 Mobile/15E148 Safari/604.1")
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
USER_AGENTS = {"desktop": DESKTOP_UA, "mobile": MOBILE_UA, "tablet": TABLET_UA}
BROKEN_PAYMENT = "Stripe is not defined"  # what a broken payment page throws on Mobile Safari

# The demo shop's catalogue: sku → (name, price); the storefront sells these, shoppers put them in carts.
PRODUCTS = {sku: (name, price) for sku, name, price in [
    (101, "Trail runner shoes", 89.0), (102, "Rain shell jacket", 129.0), (103, "Merino socks", 14.5),
    (104, "Day pack 20 L", 59.9), (105, "Headlamp", 24.0), (113, "Limited edition tent", 349.0),
]}
# What shoppers look at and search for: product views by sku (the tent draws many looks and
# few carts) and search terms (two find nothing, and those searchers leave more often).
VIEWED = {113: 30, 101: 25, 102: 20, 104: 10, 105: 10, 103: 5}
TERMS = {"tent": 25, "trail shoes": 20, "rain jacket": 15, "waterproof boots": 12, "socks": 10,
         "gift card": 10, "headlamp": 8}
NO_RESULTS = ("waterproof boots", "gift card")
# The details form: seconds a shopper spends in each field, and how often the postcode pattern
# refuses what they type and the phone field (optional, but it looks required) makes them pause,
# among those who leave the step and those who go on.
FIELD_SECONDS = {"email": 6, "password": 9, "address": 12, "postcode": 4, "phone": 7}
POSTCODE_ERROR = {False: 0.35, True: 0.10}
PHONE_PAUSE = {False: 0.40, True: 0.15}
PAGES = {
    "discover": "/", "search": "/search", "select": "/product/{sku}", "cart": "/cart",
    "checkout.info": "/checkout/info", "checkout.shipping": "/checkout/shipping",
    "checkout.payment": "/checkout/payment", "checkout.review": "/checkout/review", "purchase": "/checkout/done",
}
# Where sessions land: path → (weight, chance to interact at all, median seconds to the first interaction).
LANDINGS = {"/": (50, 0.93, 3.0), "/sale": (20, 0.96, 2.0), "/blog/trail-guide": (15, 0.6, 11.0),
            "/product/{sku}": (15, 0.85, 5.0)}
# Campaigns: (utm_source, utm_medium, utm_campaign, landing path, weight, propensity to buy).
CAMPAIGNS = [
    ("newsletter", "email", "spring_sale", "/sale", 12, 1.3),
    ("instagram", "paid_social", "trail_reels", "/blog/trail-guide", 15, 0.45),
    ("google", "cpc", "brand_search", "/", 13, 1.0),
]
REFERRERS = {"https://www.google.com/": 25, "https://trailblog.example/best-gear": 8, "": 27}
# Jobs to be done: weight, product views, searches, how long each step takes (a factor), and how hard a
# shipping cost and an out-of-stock item push them out (the chance to go on is multiplied by these).
JOBS = {
    "decisive": (28, (1, 2), (0, 0), 0.25, 0.75, 1.0),
    "researcher": (22, (5, 8), (1, 3), 1.2, 0.5, 0.3),
    "browser": (50, (1, 2), (0, 1), 1.0, 0.6, 1.0),
}
# The demo shop's intervention (docs/interventions.md): its holdout share, and the chance its
# free-shipping offer keeps a shopper who met a shipping cost and was about to leave.
HOLDOUT, RESCUE = 0.2, 0.2
TRIGGERS = ("exit_intent", "idle", "return_after_hide")


def arm_share(sid: str) -> float:
    """The risk script's arm share of a session: FNV-1a of its id over 2^32 (sdk_js/risk.js)."""
    h = 2166136261
    for ch in sid:
        h = ((h ^ ord(ch)) * 16777619) & 0xFFFFFFFF
    return h / 4294967296


# Median seconds spent on a step before the next one (log-normal around it).
DWELL_S = {
    "discover": 20, "search": 35, "select": 60, "cart": 40, "checkout.info": 70,
    "checkout.shipping": 45, "checkout.payment": 80, "checkout.review": 25, "purchase": 10,
}


@dataclass(frozen=True)
class Session:
    user_agent: str
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ShopperModel:
    seed: int = 7
    origin: str = "http://127.0.0.1:8000"
    change_at_ms: int | None = None  # from this time on, shipping costs jump
    act: bool = False  # the store offers free shipping at the moment of risk, with a holdout
    payment_broken: Callable[[int], bool] | None = None  # is the payment page broken at this ms?

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.left_carts: list[str] = []  # visitors whose last session left a cart: some come back to finish

    def sessions(self, *, start_ms: int, end_ms: int, count: int) -> Iterator[Session]:
        """`count` sessions starting between `start_ms` and `end_ms`, in time order."""
        starts = sorted(self.rng.randrange(start_ms, end_ms) for _ in range(count))
        for start in starts:
            jump = self.change_at_ms is not None and start >= self.change_at_ms
            yield self.session(start_ms=start, shipping_jump=jump)

    def session(self, *, start_ms: int, shipping_jump: bool = False) -> Session:
        rng = self.rng
        device = rng.choices(("mobile", "desktop", "tablet"), weights=(55, 38, 7))[0]
        if rng.random() < 0.02:
            return self._bot_session(start_ms)
        returning = rng.random() < 0.35
        sid, aid = uuid.UUID(int=rng.getrandbits(128)).hex, uuid.UUID(int=rng.getrandbits(128)).hex
        comes_back = bool(self.left_carts) and rng.random() < 0.12
        if comes_back:
            aid, returning = self.left_carts.pop(rng.randrange(len(self.left_carts))), True
        job = rng.choices(list(JOBS), weights=[j[0] for j in JOBS.values()])[0]
        walk = Walk(rng, self.origin, start_ms, {"sid": sid, "aid": aid, "sn": rng.randint(2, 9) if returning else 1},
                    job=job, finishing=comes_back, act=self.act, payment_broken=self.payment_broken)
        stages = (walk.land, walk.browse, walk.select, walk.cart, walk.details,
                  lambda: walk.shipping(jump=shipping_jump), lambda: walk.payment(device), walk.purchase)
        all(stage() for stage in stages)  # each stage says whether the shopper goes on
        steps = {e.get("step") for e in walk.events}
        if "cart" in steps and "purchase" not in steps and len(self.left_carts) < 500:
            self.left_carts.append(aid)
        return Session(USER_AGENTS[device], walk.events)

    def _bot_session(self, start_ms: int) -> Session:
        sid = uuid.UUID(int=self.rng.getrandbits(128)).hex
        events = [{"id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), "type": "page",
                   "ts": start_ms + i * 500, "sid": sid, "aid": sid, "sn": 1, "step": step,
                   "url": self.origin + PAGES[step].format(sku=100 + i)}
                  for i, step in enumerate(("discover", "select", "cart"))]
        return Session(BOT_UA, events)


class Walk:
    """One shopper's way along the chain as it is generated: a clock and the events so far.

    Each stage returns True when the shopper goes on to the next one.
    """

    def __init__(self, rng: random.Random, origin: str, start_ms: int, base: dict[str, Any], *,
                 job: str = "browser", finishing: bool = False, act: bool = False,
                 payment_broken: Callable[[int], bool] | None = None) -> None:
        self.rng, self.origin, self.clock, self.base = rng, origin, start_ms, base
        self.payment_broken = payment_broken
        self.events: list[dict[str, Any]] = []
        _, self.views, self.searches, self.pace, self.cost_tolerance, self.stock_tolerance = JOBS[job]
        self.buy = 1.3 if finishing else 1.0  # a campaign or a return to finish changes it
        self.finishing = finishing
        self.act = act  # the store acts at the moment of risk (the demo's free-shipping offer)
        self.clicks = 0  # as the snippet counts them (`nc`)
        self.cart_value = 0.0
        self.picks: list[int] = []
        # What they look at and search for, from the session's own generator, so the seeded
        # shoppers' other choices stay as they were.
        self.side = random.Random(f"{base['sid']}:looks")

    def emit(self, kind: str, step: str, name: str = "", *, rng: random.Random | None = None, **props: Any) -> None:
        ev: dict[str, Any] = {"id": str(uuid.UUID(int=(rng or self.rng).getrandbits(128), version=4)), "type": kind,
                              "ts": self.clock, "step": step, **self.base}
        if kind in ("page", "step") and self.clicks:
            ev["nc"] = self.clicks
        if kind == "page":
            ev["url"] = self.origin + PAGES[step].format(sku=self.rng.randint(100, 160))
        if name:
            ev["name"] = name
        if props:
            ev["props"] = props
        self.events.append(ev)

    def enter(self, step: str) -> None:
        self.clicks += 1 + (self.rng.random() < 0.3)  # the link, sometimes a filter or a tab first
        self.emit("page", step)

    def land(self) -> bool:
        """The landing page: from a campaign, a referrer or directly; a first interaction, or a bounce."""
        rng = self.rng
        if self.finishing:
            path, query, referrer = "/", "", ""
        elif rng.random() < sum(c[4] for c in CAMPAIGNS) / 100:
            source, medium, campaign, path, _, self.buy = rng.choices(CAMPAIGNS, weights=[c[4] for c in CAMPAIGNS])[0]
            query, referrer = f"?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}", ""
        else:
            path = rng.choices(list(LANDINGS), weights=[v[0] for v in LANDINGS.values()])[0]
            query, referrer = "", rng.choices(list(REFERRERS), weights=list(REFERRERS.values()))[0]
        _, engages, first_s = LANDINGS[path]
        self.emit("page", "select" if path.startswith("/product") else "discover")
        self.events[-1].update(url=self.origin + path.format(sku=rng.randint(100, 160)) + query, ref=referrer)
        if rng.random() >= engages:  # one page, nothing done: a bounce
            self.clock += int(1000 * first_s * 3 * rng.lognormvariate(0, 0.5))
            return False
        self.clock += int(1000 * first_s * rng.lognormvariate(0, 0.5))
        self.emit("track", self.events[-1]["step"], "engage")
        return True

    def stays(self, p: float, step: str, factor: float = 1.0, decided: bool | None = None) -> bool:
        """Spend time on `step`, then go on with probability `p` (or as `decided`)."""
        entered = self.clock
        self.clock += int(1000 * DWELL_S[step] * factor * self.rng.lognormvariate(0, 0.6))
        stays = self.rng.random() < p if decided is None else decided
        if self.rng.random() < (0.015 if stays else 0.05):
            self.emit("obstacle", step, "rage_click")
        # As the snippet does when a step is left: its visible time.
        self.emit("track", step, "step_time", active_ms=self.clock - entered)
        return stays

    def browse(self) -> bool:
        searches = self.rng.randint(*self.searches)
        if self.events[0]["step"] == "select":  # landed on a product page
            return True
        if not searches:
            return self.stays(0.85, "discover", self.pace)
        if not self.stays(0.88, "discover", self.pace):
            return False
        for _ in range(searches):
            self.enter("search")
            term = self.side.choices(list(TERMS), weights=list(TERMS.values()))[0]
            self.events[-1]["url"] += "?q=" + term.replace(" ", "+")
            # Searches that find nothing lose more shoppers; the others fewer, 92% going on overall.
            if not self.stays(0.7 if term in NO_RESULTS else 0.982, "search", self.pace):
                return False
        return True

    def select(self) -> bool:
        for view in range(self.rng.randint(*self.views)):
            in_stock = self.rng.random() > 0.1
            ship_days = self.rng.choice((1, 2, 2, 3, 5))
            self.enter("select")
            sku = self.side.choices(list(VIEWED), weights=list(VIEWED.values()))[0]
            self.emit("step", "select", in_stock=in_stock, ship_days=ship_days if in_stock else 14,
                      items=[{"item_id": str(sku), "item_name": PRODUCTS[sku][0], "price": PRODUCTS[sku][1]}])
            if not in_stock:
                self.emit("obstacle", "select", "out_of_stock")
            p = (0.62 if ship_days <= 2 else 0.5) if in_stock else 0.1 * self.stock_tolerance
            if view + 1 < self.views[0]:  # comparing: the next product unless this one puts them off
                p = 0.97 if in_stock else 0.3 * self.stock_tolerance
            if not self.stays(min(0.95, p * (self.buy if view == 0 else 1)), "select", self.pace):
                return False
        return True

    def cart(self) -> bool:
        self.enter("cart")
        # What is in the cart, as a shop's add_to_cart push carries it (GA4 items).
        self.picks = self.rng.sample(sorted(PRODUCTS), self.rng.choice((1, 1, 2, 3)))
        self.cart_value = round(sum(PRODUCTS[sku][1] for sku in self.picks), 2)
        self.emit("step", "cart", items=self.items(), value=self.cart_value)
        return self.stays(min(0.95, 0.72 * self.buy), "cart", self.pace)

    def items(self) -> list[dict[str, Any]]:
        """The cart as a shop's GA4 push carries it."""
        return [{"item_id": str(sku), "item_name": PRODUCTS[sku][0], "price": PRODUCTS[sku][1], "quantity": 1}
                for sku in self.picks]

    def details(self) -> bool:
        self.enter("checkout.info")
        forced_account = self.rng.random() < 0.35
        if forced_account:
            self.emit("obstacle", "checkout.info", "account_required")
        entered = self.clock
        goes_on = self.stays(0.55 if forced_account else 0.85, "checkout.info", 1.6 if forced_account else 1)
        # The details form (the forms add-on's reports): a postcode pattern that refuses some
        # shoppers' way of writing it, and a phone field that looks required though it is not, both
        # met more often by those who leave. Drawn from the session's own generator once the
        # shopper's choice is made, so the seeded shoppers' other choices stay as they were.
        form = random.Random(self.base["sid"])
        postcode_error = form.random() < POSTCODE_ERROR[goes_on]
        phone_pause = form.random() < PHONE_PAUSE[goes_on]
        self.fill_in(form, entered, goes_on, account=forced_account, postcode_error=postcode_error,
                     phone_pause=phone_pause)
        return goes_on

    def fill_in(self, form: random.Random, entered: int, submitted: bool, *, account: bool, postcode_error: bool,
                phone_pause: bool) -> None:
        """What the forms add-on reports about the details form, and the snippet's `form_invalid`."""
        fields = ["email", *(["password"] if account else []), "address", "postcode", "phone"]
        if submitted:
            touched = fields
        else:
            last = "postcode" if postcode_error else "phone" if phone_pause else form.choice(fields)
            touched = fields[:fields.index(last) + 1]
        autofill = form.random() < 0.3
        at = entered + (self.clock - entered) // 2
        for name in touched:
            error = name == "postcode" and postcode_error
            seconds = FIELD_SECONDS[name] * (3 if error or (name == "phone" and phone_pause) else 1)
            filled = autofill and name in ("email", "address")
            if error:
                self.emit("obstacle", "checkout.info", "form_invalid", rng=form, field=name)
                self.events[-1]["ts"] = at
            self.emit("track", "checkout.info", "form_field", rng=form, form="details", field=name,
                      ms=500 if filled else int(1000 * seconds * form.lognormvariate(0, 0.4)),
                      corrections=int(error and submitted), errors=int(error), autofilled=int(filled))
            self.events[-1]["ts"] = at
        self.emit("track", "checkout.info", "form_report", rng=form, form="details",
                  outcome="submitted" if submitted else "left", attempts=1 + int(postcode_error and submitted),
                  last_field=touched[-1])
        self.events[-1]["ts"] = at

    def shipping(self, *, jump: bool) -> bool:
        self.enter("checkout.shipping")
        cost = self.rng.choice((0.0, 4.9, 6.9)) if not jump else self.rng.choice((9.9, 12.9, 14.9))
        if cost:
            self.emit("obstacle", "checkout.shipping", "shipping_cost_shown", amount=cost)
        p_ship = 0.88 if not cost else (0.72 if cost < 8 else 0.45)
        if cost:  # how much a shipping cost puts them off depends on why they came
            p_ship = 1 - (1 - p_ship) * (1 - self.cost_tolerance) / 0.4
        if not self.act:
            return self.stays(p_ship, "checkout.shipping", (1.3 if cost else 1) * self.pace)
        goes_on = self.rng.random() < p_ship
        if self.rng.random() < (0.9 if not goes_on else 0.25):  # the risk script sees them about to leave
            goes_on = self.at_risk("checkout.shipping", goes_on, helps=bool(cost))
        return self.stays(p_ship, "checkout.shipping", (1.3 if cost else 1) * self.pace, decided=goes_on)

    def at_risk(self, step: str, goes_on: bool, *, helps: bool) -> bool:
        """The demo shop's free-shipping offer at the moment of risk (docs/interventions.md), as the
        risk script records it: both arms; the offer in the treatment arm only. It keeps a shopper
        who met the shipping cost and was leaving with probability RESCUE, and nobody else."""
        arm = "holdout" if arm_share(self.base["sid"]) < HOLDOUT else "treatment"
        self.emit("track", step, "intervention", trigger=self.rng.choice(TRIGGERS), arm=arm)
        if arm == "holdout":
            return goes_on
        rescued = helps and not goes_on and self.rng.random() < RESCUE
        accepted = rescued or (helps and goes_on and self.rng.random() < 0.5)
        cost: dict[str, Any] = {"cost": 4.95} if accepted else {}
        self.emit("track", step, "intervention_outcome", outcome="accepted" if accepted else "dismissed",
                  offer="FREESHIP", **cost)
        return goes_on or rescued

    def payment(self, device: str) -> bool:
        self.enter("checkout.payment")
        if device == "mobile" and self.payment_broken is not None and self.payment_broken(self.clock):
            self.emit("obstacle", "checkout.payment", "js_error", message=BROKEN_PAYMENT)
            return False
        if device == "mobile" and self.rng.random() < 0.03:
            self.emit("obstacle", "checkout.payment", "js_error", message="Cannot read properties of undefined")
        declined = self.rng.random() < 0.12
        if declined:
            self.emit("obstacle", "checkout.payment", "payment_declined")
        return self.stays(0.45 if declined else 0.88, "checkout.payment", 1.5 if declined else 1)

    def purchase(self) -> bool:
        if self.rng.random() < 0.5:
            self.enter("checkout.review")
            if not self.stays(0.93, "checkout.review"):
                return False
        value = self.cart_value
        order_id = f"o-{self.base['sid'][:10]}"
        self.emit("step", "purchase", value=value, currency="EUR", order_id=order_id, items=self.items())
        self.events[-1].update(value=value, currency="EUR", order_id=order_id)
        return True


CARRIERS = {"Parcelly": 0.1, "SlowPost": 0.4}  # carrier → share of its deliveries that come after the promise
RETURN_REASONS = ("too small", "changed my mind", "arrived damaged", "not as pictured")


def aftercare(session: Session, rng: random.Random, *, now_ms: int) -> list[dict[str, Any]]:
    """What the shop's back office reports about a session's order (shipped, delivered, tracked,
    returned) and the buyer's survey answer, by order id, as far as it happened before `now_ms`.
    One order in five goes with a carrier that is late 40% of the time (a fifth of all
    deliveries overall); late deliveries and checkout obstacles lower the answer."""
    purchase = next((e for e in session.events if e.get("step") == "purchase" and e.get("order_id")), None)
    if purchase is None:
        return []
    order, bought = purchase["order_id"], purchase["ts"]
    hour = 3_600_000
    carrier = rng.choices(list(CARRIERS), weights=(50, 50))[0]
    promised = bought + 72 * hour
    shipped = bought + int(rng.uniform(6, 30) * hour)
    late = rng.random() < CARRIERS[carrier]
    if late:
        delivered = promised + int(rng.uniform(4, 60) * hour)
    else:
        delivered = min(shipped + int(rng.uniform(18, 40) * hour), promised)

    def report(ts: int, kind: str, name: str, **props: Any) -> dict[str, Any] | None:
        if ts > now_ms:
            return None
        event = {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "ts": ts, "order_id": order,
                 "type": kind, ("step" if kind == "step" else "name"): name}
        if props:
            event["props"] = props
        return event

    events = [report(shipped, "step", "shipped", carrier=carrier, promised_by=promised)]
    if rng.random() < 0.6:
        events.append(report(shipped + int(rng.uniform(1, 30) * hour), "step", "tracking_viewed"))
    events.append(report(delivered, "step", "delivered"))
    if rng.random() < (0.14 if late else 0.07):
        events.append(report(delivered + int(rng.uniform(24, 120) * hour), "step", "returned",
                             reason=rng.choice(RETURN_REASONS)))
    if rng.random() < 0.45:
        met = any(e.get("type") == "obstacle" for e in session.events)
        score = round(rng.gauss(8.6, 1.4) - (3.2 if late else 0) - (1.2 if met else 0))
        events.append(report(delivered + int(rng.uniform(2, 48) * hour), "track", "feedback",
                             score=max(0, min(10, score)), asked_at="delivery"))
    return [e for e in events if e is not None]

"""Per-client token buckets: `rate` requests a second with a burst of twice that.

Each accept worker keeps its own buckets (the kernel spreads a client's
connections over workers, so with N workers a client may get up to N x rate).
The table is bounded: the least recently seen clients are forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict


class RateLimiter:
    def __init__(self, rate: float, *, max_clients: int = 100_000) -> None:
        self.rate, self.burst = rate, max(1.0, 2 * rate)
        self.max_clients = max_clients
        self.limited = 0
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, client: str) -> int:
        """0 when the request may pass, else the seconds to wait (for Retry-After)."""
        if self.rate <= 0:
            return 0
        now = time.monotonic()
        tokens, seen = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - seen) * self.rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            wait = 0
        else:
            self._buckets[client] = (tokens, now)
            self.limited += 1
            wait = max(1, math.ceil((1 - tokens) / self.rate))
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

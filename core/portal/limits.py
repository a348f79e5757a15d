"""Rate limits in the portal's own memory: token buckets per key (a client address, a phone number,
a receipt code's case). Each bucket holds ``burst`` tokens and refills ``burst`` every ``seconds``; a
request takes one, and none left means refused. The oldest keys are dropped beyond ``max_keys``, so a
flood of new addresses costs bounded memory (and each new one starts full, which the address limit
before it already bounds)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


class Buckets:
    def __init__(
        self, burst: int, seconds: float, max_keys: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.rate = burst / seconds
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, key: str) -> tuple[float, float]:
        now = self.clock()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - then) * self.rate), now

    def allows(self, key: str) -> bool:
        """Whether ``key`` has a token left now (none taken)."""
        return self._level(key)[0] >= 1

    def take(self, key: str) -> bool:
        """Take one of ``key``'s tokens; False (and nothing taken) when none is left."""
        tokens, now = self._level(key)
        ok = tokens >= 1
        self._buckets[key] = (tokens - 1 if ok else tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return ok


@dataclass(frozen=True)
class Limits:
    """How often one client may use the portal: (burst, seconds) per limit."""

    pages_per_address: tuple[int, float] = (120, 60.0)  # every request, a flood's first stop
    reports_per_address: tuple[int, float] = (10, 3600.0)
    reports_per_phone: tuple[int, float] = (3, 86400.0)
    lookups_per_address: tuple[int, float] = (30, 600.0)
    failed_lookups_per_address: tuple[int, float] = (5, 900.0)  # wrong codes: guessing is slow
    failed_lookups_per_case: tuple[int, float] = (5, 900.0)  # however many addresses guess


class Limiter:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.pages = Buckets(*limits.pages_per_address)
        self.reports_address = Buckets(*limits.reports_per_address)
        self.reports_phone = Buckets(*limits.reports_per_phone)
        self.lookups = Buckets(*limits.lookups_per_address)
        self.failed_address = Buckets(*limits.failed_lookups_per_address)
        self.failed_case = Buckets(*limits.failed_lookups_per_case)

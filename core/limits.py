"""Abuse limits of the API: a token bucket per principal, and the shape of a body bounded before it is
parsed (the daily quota per applicant: unstuck.broker.quota).

Who is limited: the principal the request's subject proves (``unstuck.api.as.<principal>.<verb>``,
``unstuck.api.web.<staff>.<verb>``: NATS lets no one else publish there), never a header or an
inbox the caller picks, which a caller can change on every request. Every anonymous request
(``unstuck.api.<verb>``) shares one bucket, ``anonymous``: with identities required (the default
under ``--secure``), those can only read.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

ANONYMOUS = "anonymous"
MAX_DEPTH = 16  # objects and arrays inside one another; the API's deepest request nests 4
MAX_ITEMS = 2_000  # keys and array elements in all


def client_of(principal: str | None, via: str | None) -> str:
    """The rate-limit key of a request: the proven principal (and how), or the shared anonymous key."""
    return f"{via}:{principal}" if principal and via else ANONYMOUS


def json_shape_problem(data: bytes, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> str | None:
    """Why ``data`` is too deep or too wide to parse, found by one pass over the bytes (no parsing,
    so no recursion however deep the nesting), or None. Strings are skipped with their escapes."""
    depth = items = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
            continue
        if byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > max_depth:
                return f"nested more than {max_depth} levels deep"
        elif byte in (0x7D, 0x5D):  # } ]
            depth -= 1
        elif byte in (0x2C, 0x3A):  # , :
            items += 1
            if items > max_items:
                return f"more than {max_items} fields and elements"
    return None


@dataclass
class Bucket:
    tokens: float
    updated: float


class ClientRateLimiter:
    """A token bucket per client: ``rate`` requests per second on average, bursts up to ``burst``.

    Holds at most ``max_clients`` buckets (least recently seen dropped first, which only forgives).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        max_clients: int = 10_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.now = now
        self.buckets: OrderedDict[str, Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, client: str) -> float:
        """Spend one token; 0.0 if the request may go, else the seconds until it could."""
        if not self.enabled:
            return 0.0
        now = self.now()
        bucket = self.buckets.pop(client, None) or Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self.buckets[client] = bucket
        while len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

"""Abuse limits of the API: a token bucket per client (the daily quota per applicant: unstuck.broker.quota).

Who is a client: the ``Unstuck-Client`` header when the caller sends one (a front end that
serves many staff over one connection names the staff member), else the caller's response inbox
without its last token, which is one NATS connection (``_INBOX.<user>.<connection>`` under
``--secure``, ``_INBOX.<connection>`` otherwise). NATS does not tell a subscriber who published,
so neither is proof of identity: the per-client limit keeps one busy or broken client from
starving the others. Against a hostile credential holder the answer is NATS itself: revoke or
rotate the credential (docs/security.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

CLIENT_HEADER = "Unstuck-Client"


def client_of(headers: dict[str, str] | None, reply: str | None) -> str:
    """The rate-limit key of a request (see the module docstring)."""
    named = (headers or {}).get(CLIENT_HEADER, "").strip()
    if named:
        return f"client:{named[:64]}"
    if reply:
        return f"inbox:{reply.rpartition('.')[0] or reply}"
    return "anonymous"


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

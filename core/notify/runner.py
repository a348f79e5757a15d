"""The delivery loop: fetch from the durable consumer, deliver, acknowledge only after delivery.

A delivery that failed is negatively acknowledged with a delay (``[notify] redelivery_seconds``);
the one that fails on the last allowed delivery (``max_deliver``) is terminated, counted ``dead`` and
logged once. A notification that names nobody reachable is counted ``undeliverable``, logged (masked)
and acknowledged: retrying would not reach anyone either.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter, generate_latest

from unstuck.metrics import DELIVERY_OUTCOMES, notification_counter

from .consumer import subscribe
from .delivery import Delivery, DeliveryFailed

log = logging.getLogger(__name__)

FETCH_BATCH = 16
FETCH_WAIT_SECONDS = 1.0


@dataclass(eq=False)
class NotifyRunner:
    js: JetStreamContext
    delivery: Delivery
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
    counter: Counter = field(init=False)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.counter = notification_counter(self.registry, DELIVERY_OUTCOMES)

    def count(self, outcome: str) -> float:
        return float(self.registry.get_sample_value("unstuck_notifications_total", {"outcome": outcome}) or 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Deliver until ``stopping`` is set."""
        sub = await self._subscribe()
        if ready is not None:
            ready.set()
        try:
            while not self.stopping.is_set():
                try:
                    msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_SECONDS)
                except nats.errors.TimeoutError:
                    continue
                for msg in msgs:
                    await self.handle(msg)
        finally:
            await sub.unsubscribe()

    async def _subscribe(self) -> Any:
        """The subscription, once the stream exists (the broker creates it at start)."""
        while True:
            try:
                return await subscribe(self.js, self.delivery.settings)
            except (nats.js.errors.NotFoundError, nats.errors.TimeoutError) as exc:
                log.warning("notification stream not ready (%s); trying again", exc)
                await asyncio.sleep(2.0)

    async def handle(self, msg: Any) -> None:
        settings = self.delivery.settings
        delivered = msg.metadata.num_delivered
        try:
            notification = json.loads(msg.data)
            notification_id = notification["id"]
        except (ValueError, KeyError, TypeError):
            log.error(
                "notification at stream sequence %s is not readable; dropped", msg.metadata.sequence.stream
            )
            self.counter.labels("dead").inc()
            await msg.term()
            return
        try:
            outcome = await self.delivery.deliver(notification)
        except DeliveryFailed as exc:
            if delivered >= settings.max_deliver:
                log.error("notification %s dead after %s deliveries: %s", notification_id, delivered, exc)
                self.counter.labels("dead").inc()
                await msg.term()
                return
            waits = settings.redelivery_seconds
            delay = waits[min(delivered, len(waits)) - 1]
            log.warning(
                "notification %s not delivered (attempt %s), again in %ss: %s",
                notification_id,
                delivered,
                delay,
                exc,
            )
            self.counter.labels("retried").inc()
            await msg.nak(delay=delay)
            return
        await msg.ack_sync()
        self.counter.labels(outcome.value).inc()
        log.info("notification %s %s", notification_id, outcome.value)

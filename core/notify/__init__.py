"""``unstuck notify``: delivers the notifications the broker stored in ``UNSTUCK_NOTIFY``.

At least once: a notification is acknowledged only after its delivery succeeded (or was found
impossible: no address, no SMS plugin), so a crash or an SMTP outage delays it and never loses it.
docs/notifications.md describes what goes to whom and how to run it.
"""

from __future__ import annotations

from .consumer import consumer_config, subscribe
from .delivery import Delivery, DeliveryFailed, Outcome
from .runner import NotifyRunner

__all__ = [
    "Delivery",
    "DeliveryFailed",
    "NotifyRunner",
    "Outcome",
    "consumer_config",
    "subscribe",
]

"""The durable pull consumer ``notifier`` on ``UNSTUCK_NOTIFY``, made with the calls the notifier's
NATS user may make: consumer info, the legacy durable create, next message and acknowledgements."""

from __future__ import annotations

from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from unstuck.config import NotifyConfig
from unstuck.schemas.subjects import NOTIFY_CONSUMER, NOTIFY_STREAM


def consumer_config(settings: NotifyConfig) -> ConsumerConfig:
    """Explicit acks; a delivery never acknowledged comes back after the backoff (``ack_wait`` first
    when there is none), at most ``max_deliver`` times in all."""
    backoff = list(settings.redelivery_seconds)[: settings.max_deliver - 1]
    return ConsumerConfig(
        durable_name=NOTIFY_CONSUMER,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_seconds,
        max_deliver=settings.max_deliver,
        backoff=[max(settings.ack_wait_seconds, b) for b in backoff],
        max_ack_pending=1000,
        description="unstuck notify: delivers each notification, acknowledged after delivery",
    )


async def subscribe(js: JetStreamContext, settings: NotifyConfig) -> Any:
    """The pull subscription bound to the durable consumer, created first if missing. A consumer that
    exists keeps the configuration it was made with."""
    try:
        await js.consumer_info(NOTIFY_STREAM, NOTIFY_CONSUMER)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_consumer(NOTIFY_STREAM, consumer_config(settings))
        except nats.js.errors.BadRequestError:  # another notifier created it meanwhile
            await js.consumer_info(NOTIFY_STREAM, NOTIFY_CONSUMER)
    return await js.pull_subscribe_bind(durable=NOTIFY_CONSUMER, stream=NOTIFY_STREAM)

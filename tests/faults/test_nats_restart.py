"""nats-server SIGKILLed and restarted mid-load: the broker and the adapters reconnect on their own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from nats.aio.client import Client

from unstuck.embedded import EmbeddedNats

from .harness import BUILTIN, Bus, Load, record, verify

pytestmark = pytest.mark.slow


async def test_nats_server_killed_mid_load_loses_no_accepted_case_and_stores_nothing_twice(
    nats_server: EmbeddedNats, make_bus: Callable[..., Bus], observer: Client, tmp_path
) -> None:
    bus = make_bus(nats_server.url)
    broker = bus.broker(adapters=BUILTIN).start()
    load = Load(nats_server.url, "nats-kill", total=240).start()
    await load.wait_accepted(80)
    accepted_at_kill = len(load.accepted)
    nats_server.kill()
    await asyncio.sleep(1.0)  # the server stays down for a second
    nats_server.restart()
    repaired = time.monotonic()
    await load.finish()

    verdict = await verify(observer, nats_server.url, tmp_path, "nats_server_killed", load)
    recovery = load.first_ack_after(repaired)
    record(
        "nats_server_killed",
        {
            **verdict.figures(),
            "accepted_before_fault": accepted_at_kill,
            "recovery_seconds": round(recovery, 2) if recovery is not None else None,
            "broker_restarts": broker.starts - 1,
        },
    )
    assert broker.alive, broker.log_tail()
    assert verdict.cases_in == 240
    assert verdict.lost == 0
    assert verdict.duplicated == 0
    assert verdict.findings == 0, verdict.replay
    assert verdict.replay_exit == 0
    assert verdict.unsettled == []
    assert broker.starts == 1  # nobody restarted the broker: it reconnected by itself

"""The network between the broker and NATS dropped and restored mid-load (a proxy the test cuts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from nats.aio.client import Client

from unstuck.embedded import EmbeddedNats

from .harness import BUILTIN, Bus, Load, record, verify
from .proxy import CuttableProxy

pytestmark = pytest.mark.slow


async def test_network_to_nats_cut_and_restored_mid_load_loses_and_duplicates_nothing(
    nats_server: EmbeddedNats, make_bus: Callable[..., Bus], observer: Client, tmp_path
) -> None:
    assert nats_server.port is not None
    proxy = await CuttableProxy(nats_server.host, nats_server.port).start()
    bus = make_bus(nats_server.url)
    try:
        broker = bus.broker(adapters=BUILTIN, nats_url=proxy.url)
        await asyncio.to_thread(broker.start)  # the proxy runs on this loop: wait in a thread
        load = Load(nats_server.url, "network", total=240).start()
        await load.wait_accepted(80)
        accepted_at_cut = len(load.accepted)
        await proxy.cut()
        await asyncio.sleep(2.0)  # the link stays down for two seconds
        await proxy.restore()
        repaired = time.monotonic()
        await load.finish()

        verdict = await verify(observer, nats_server.url, tmp_path, "network_cut", load)
        recovery = load.first_ack_after(repaired)
        record(
            "network_cut",
            {
                **verdict.figures(),
                "accepted_before_fault": accepted_at_cut,
                "proxy_connections": proxy.connections,
                "recovery_seconds": round(recovery, 2) if recovery is not None else None,
            },
        )
        assert broker.alive, broker.log_tail()
        assert broker.starts == 1
        assert proxy.connections >= 4  # the broker's and the adapters' connections, each made again
        assert verdict.cases_in == 240
        assert verdict.lost == 0
        assert verdict.duplicated == 0
        assert verdict.findings == 0, verdict.replay
        assert verdict.replay_exit == 0
        assert verdict.count.half_written == []
        assert verdict.unsettled == []
    finally:
        await proxy.close()

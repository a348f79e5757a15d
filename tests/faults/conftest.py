"""Fixtures of the fault suite: a scenario's processes, stopped at the end whatever happened."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from unstuck.embedded import EmbeddedNats

from .harness import Bus, write_config


@pytest.fixture
def make_bus(tmp_path: Path) -> Iterator[Callable[..., Bus]]:
    """``make_bus(nats_url, retry=..., departments=...)``: the processes of one scenario."""
    buses: list[Bus] = []

    def make(nats_url: str, **config: Any) -> Bus:
        path = write_config(tmp_path / f"unstuck-{len(buses)}.toml", **config)
        bus = Bus(tmp_path, nats_url, path)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.stop()


@pytest_asyncio.fixture
async def observer(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    """The test's own connection, for verification and department statistics."""
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.25)
    yield nc
    await nc.close()

"""/healthz: ready only while the broker is connected to NATS and the case stream is there."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import datetime

import pytest_asyncio

from conftest import running_broker
from unstuck.broker import Broker
from unstuck.clock import CHINA, SimulatedClock
from unstuck.embedded import EmbeddedNats
from unstuck.metrics import MetricsServer
from unstuck.testing import fast_config
from unstuck.workcalendar import WorkingCalendar


@pytest_asyncio.fixture
async def metrics_server(broker: Broker) -> AsyncIterator[MetricsServer]:
    server = MetricsServer(broker.metrics, "127.0.0.1:0", broker.health).start()
    yield server
    server.stop()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def healthz_until(server: MetricsServer, code: int, timeout: float = 30.0) -> dict[str, object]:
    """Poll /healthz until it answers ``code``; return its body."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = await asyncio.to_thread(get, f"http://{server.address}/healthz")
        if seen[0] == code:
            return json.loads(seen[1])
        await asyncio.sleep(0.1)
    raise AssertionError(f"/healthz never answered {code}; last {seen}")


async def test_healthz_is_ready_with_nats_and_the_stream_and_503_when_nats_server_dies(
    broker: Broker, metrics_server: MetricsServer, nats_server: EmbeddedNats
) -> None:
    status, body = await asyncio.to_thread(get, f"http://{metrics_server.address}/healthz")
    assert status == 200
    ready = json.loads(body)
    assert ready["ready"] is True
    assert ready["nats_connected"] is True
    assert ready["stream_ok"] is True
    assert ready["stream"] == "UNSTUCK_CASES"

    nats_server.kill()
    down = await healthz_until(metrics_server, 503)
    assert down["ready"] is False
    assert down["nats_connected"] is False

    nats_server.restart()
    back = await healthz_until(metrics_server, 200)
    assert back["nats_connected"] is True
    assert back["stream_ok"] is True


async def test_metrics_endpoint_serves_the_catalogue_and_unknown_paths_get_404(
    metrics_server: MetricsServer,
) -> None:
    status, body = await asyncio.to_thread(get, f"http://{metrics_server.address}/metrics")
    assert status == 200
    assert b'unstuck_department_stalled{department="renshe"} 0.0' in body
    assert b"unstuck_nats_connected 1.0" in body
    status, _ = await asyncio.to_thread(get, f"http://{metrics_server.address}/cases")
    assert status == 404


async def test_healthz_warns_from_1_november_that_next_years_calendar_is_not_published(
    nats_server: EmbeddedNats, nats_client
) -> None:
    clock = SimulatedClock(datetime(2026, 10, 31, 23, 59, tzinfo=CHINA))
    calendar = WorkingCalendar(unpublished_years={2027})  # 2027 not published, whatever the library has
    async with running_broker(nats_server, fast_config(), clock, nats_client, calendar) as broker:
        server = MetricsServer(broker.metrics, "127.0.0.1:0", broker.health).start()
        try:
            before = await healthz_until(server, 200)
            assert before["warnings"] == []
            clock.set(datetime(2026, 11, 1, 0, 0, tzinfo=CHINA))
            after = await healthz_until(server, 200)
        finally:
            server.stop()
    assert after["ready"] is True  # a warning, not a reason to take the broker out of service
    [warning] = after["warnings"]
    assert warning.startswith("the working calendar for 2027 is not published")
    assert "Add [2027]" in warning and "calendar override file" in warning

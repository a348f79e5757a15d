"""The pytest kit (``unstuck.testing``), registered as a pytest plugin through the ``pytest11`` entry point.

Fixtures start a real nats-server (the same launcher as ``unstuck serve``), a broker on a simulated
clock, and the built-in or your own adapters. Helpers send coordination requests and API calls.

    async def test_my_adapter_answers(nats_client, serve_adapter):
        await serve_adapter(MyAdapter())
        reply = await send_coordination(nats_client, "zhujian", matter="permit")
        assert_reply(reply, outcome="resolved")
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client

from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import LoadedAdapter, discover, wrap_adapter
from unstuck.clock import CHINA, SimulatedClock
from unstuck.config import Config, RetryPolicy
from unstuck.embedded import EmbeddedNats
from unstuck.schemas import AdapterError, CoordinationReply, CoordinationRequest
from unstuck.schemas.subjects import api_subject, coordinate_subject

__all__ = [
    "ApiError",
    "api_call",
    "assert_reply",
    "coordination_request",
    "fast_config",
    "send_coordination",
]

DEFAULT_START = datetime(2026, 9, 28, 9, 0, tzinfo=CHINA)


class ApiError(AssertionError):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


def fast_config(**retry: Any) -> Config:
    """A configuration with short timeouts, for tests that must not wait long."""
    policy = {
        "timeout_seconds": 0.5,
        "attempts": 3,
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "jitter_seconds": 0.01,
        "stalled_retry_seconds": 0.5,
        **retry,
    }
    config = Config()
    config.retry = RetryPolicy(**policy)
    config.broker.metrics_address = "127.0.0.1:0"
    config.staff.update(
        {"leader-gao": "leader_in_charge", "director-ma": "director", "head-sun": "section_head"}
    )
    config.window.duty_leader = "leader-gao"
    return config


def coordination_request(department: str, **fields: Any) -> CoordinationRequest:
    """A valid request with sensible defaults; override any field."""
    base: dict[str, Any] = {
        "request_id": f"TEST-{department}-0001-c1",
        "case_id": "TEST-0001",
        "department": department,
        "category": "hard",
        "matter": "unknown_matter",
        "matter_title": "測試事項",
        "facts": {},
        "question": "請答覆",
        "deadline": date(2026, 10, 9),
        "reply_by": datetime.now(UTC) + timedelta(seconds=30),
        "attempt": 1,
    }
    base.update(fields)
    return CoordinationRequest.model_validate(base)


async def send_coordination(
    nc: Client, department: str, timeout: float = 5.0, **fields: Any
) -> CoordinationReply | AdapterError:
    """Send a coordination request as the broker would; returns the validated reply or the adapter's error."""
    request = coordination_request(department, **fields)
    msg = await nc.request(
        coordinate_subject(department), request.model_dump_json().encode(), timeout=timeout
    )
    headers = msg.headers or {}
    if "Nats-Service-Error-Code" in headers:
        try:
            return AdapterError.model_validate_json(msg.data)
        except ValueError:
            return AdapterError(error=headers.get("Nats-Service-Error", "error"))
    return CoordinationReply.model_validate_json(msg.data)


def assert_reply(reply: CoordinationReply | AdapterError, outcome: str | None = None, **fields: Any) -> None:
    """Assert that an adapter answered (not an error) with this outcome and these field values."""
    assert isinstance(reply, CoordinationReply), f"expected a reply, got error {reply!r}"
    if outcome is not None:
        assert reply.outcome.value == outcome, (
            f"outcome {reply.outcome.value!r} != {outcome!r}: {reply.message}"
        )
    for key, value in fields.items():
        assert getattr(reply, key) == value, f"{key}: {getattr(reply, key)!r} != {value!r}"


async def api_call(nc: Client, verb: str, body: dict[str, Any], timeout: float = 10.0) -> Any:
    """Call the broker's API; returns the result, raises ApiError with the broker's error."""
    msg = await nc.request(api_subject(verb), json.dumps(body, ensure_ascii=False).encode(), timeout=timeout)
    reply = json.loads(msg.data)
    if not reply["ok"]:
        raise ApiError(reply["error"])
    return reply["result"]


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[Callable[..., EmbeddedNats]]:
    """Start extra nats-servers (each in its own data directory); all are stopped at the end."""
    servers: list[EmbeddedNats] = []

    def start(**options: Any) -> EmbeddedNats:
        server = EmbeddedNats(tmp_path / f"nats-{len(servers)}", **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def nats_server(nats_server_factory: Callable[..., EmbeddedNats]) -> EmbeddedNats:
    """A fresh nats-server with JetStream for this test; ``.kill()`` and ``.restart()`` work."""
    return nats_server_factory()


@pytest_asyncio.fixture
async def nats_client(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    import nats

    nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    yield nc
    await nc.close()


@pytest.fixture
def sim_clock() -> SimulatedClock:
    return SimulatedClock(DEFAULT_START)


@pytest.fixture
def unstuck_config() -> Config:
    return fast_config()


@pytest_asyncio.fixture
async def broker(
    nats_server: EmbeddedNats, sim_clock: SimulatedClock, unstuck_config: Config
) -> AsyncIterator[Any]:
    """A running broker on its own connection, with the simulated clock."""
    import nats

    from unstuck.broker import Broker

    nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    b = Broker(nc, unstuck_config, sim_clock)
    await b.start()
    yield b
    await b.stop()
    await nc.close()


@pytest_asyncio.fixture
async def serve_adapter(nats_server: EmbeddedNats) -> AsyncIterator[Callable[..., Awaitable[AdapterHost]]]:
    """``await serve_adapter(obj_or_loaded, ...)`` serves adapters on their own connection until the test ends."""
    import nats

    hosts: list[tuple[AdapterHost, Client]] = []

    async def serve(*adapters: Any, **host_options: Any) -> AdapterHost:
        loaded: list[LoadedAdapter] = []
        for obj in adapters:
            if isinstance(obj, LoadedAdapter):
                loaded.append(obj)
                continue
            wrapped = wrap_adapter(type(obj).__name__, obj)
            assert wrapped is not None, f"{obj!r} is not a valid adapter (see docs/adapters.md)"
            loaded.append(wrapped)
        nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        host = AdapterHost(nc, loaded, **host_options)
        await host.start()
        hosts.append((host, nc))
        return host

    yield serve
    for host, nc in hosts:
        await host.stop()
        await nc.close()


@pytest_asyncio.fixture
async def builtin_adapters(serve_adapter: Callable[..., Awaitable[AdapterHost]]) -> AdapterHost:
    """The installed adapters for renshe, scjg and chengguan, served."""
    found = discover()
    return await serve_adapter(*(found[c] for c in ("renshe", "scjg", "chengguan")))

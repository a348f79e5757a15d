"""The pytest kit (``unstuck.testing``), registered as a pytest plugin through the ``pytest11`` entry point.

Fixtures start a real nats-server (the same launcher as ``unstuck serve``), a broker on a simulated
clock, and the built-in or your own adapters. Helpers send coordination requests and API calls,
assert on the replies, and run the conformance check of ``unstuck adapters check``.

    @pytest.fixture
    def unstuck_adapter():
        return ZhujianAdapter()

    async def test_rental_of_an_illegal_structure_cannot_be_filed(nats_client, adapter_under_test):
        reply = await send_coordination(
            nats_client, "zhujian", matter="rental_registration", facts={"illegal_structure": True}
        )
        assert_reply(reply, outcome="cannot")

See docs/adapters.md for every fixture and helper.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import nats.errors
import pytest
import pytest_asyncio
from nats.aio.client import Client
from pydantic import ValidationError

from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import LoadedAdapter, discover, wrap_adapter
from unstuck.clock import CHINA, SimulatedClock
from unstuck.config import Config, RetryPolicy
from unstuck.conformance import ConformanceReport, check_adapter, render
from unstuck.connection import close_client
from unstuck.embedded import EmbeddedNats
from unstuck.schemas import AdapterError, CoordinationReply, CoordinationRequest
from unstuck.schemas.identifiers import with_check_character
from unstuck.schemas.subjects import api_subject, coordinate_subject

__all__ = [
    "ApiError",
    "api_call",
    "assert_conformant",
    "assert_error",
    "assert_reply",
    "call_adapter",
    "coordination_request",
    "fast_config",
    "send_coordination",
    "send_raw",
    "wait_for",
]

DEFAULT_START = datetime(2026, 9, 28, 9, 0, tzinfo=CHINA)


class ApiError(AssertionError):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


def resident_id(n: int) -> str:
    """The ``n``-th made-up resident id number for tests and workloads (valid by its check digit): born in Dandong
    on 1 January 1950 plus ``n // 1000`` days, sequence ``n % 1000``."""
    born = date(1950, 1, 1) + timedelta(days=n // 1000)
    return with_check_character(f"210602{born:%Y%m%d}{n % 1000:03d}")


def credit_code(n: int) -> str:
    """The ``n``-th made-up unified social credit code for tests and workloads (valid by its check character)."""
    return with_check_character(f"91210600MA{n:07d}", "enterprise")


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
    return await send_raw(nc, department, request.model_dump_json().encode(), timeout)


async def send_raw(
    nc: Client, department: str, payload: bytes, timeout: float = 5.0
) -> CoordinationReply | AdapterError:
    """Send any bytes to a department's subject (a malformed request, say); the reply or the adapter's error.

    An adapter that has just started may not yet be seen as a responder by a connection opened before
    it (nats-server answers "no responders" for a moment): that answer is retried for up to a second.
    """
    for _ in range(20):
        try:
            msg = await nc.request(coordinate_subject(department), payload, timeout=timeout)
            break
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.05)
    else:
        msg = await nc.request(coordinate_subject(department), payload, timeout=timeout)
    headers = msg.headers or {}
    if "Nats-Service-Error-Code" in headers:
        try:
            return AdapterError.model_validate_json(msg.data)
        except ValueError:
            # an error reply without an AdapterError body (an adapter that failed): the header says why
            text = f"{headers['Nats-Service-Error-Code']} {headers.get('Nats-Service-Error', '')}".strip()
            return AdapterError(error=text[:200])
    try:
        return CoordinationReply.model_validate_json(msg.data)
    except ValidationError as exc:
        raise AssertionError(
            f"the reply of {department} does not validate as a CoordinationReply (the broker would count "
            f"it as the department's fault): {exc}"
        ) from exc


def assert_reply(reply: CoordinationReply | AdapterError, outcome: str | None = None, **fields: Any) -> None:
    """Assert that an adapter answered (not an error) with this outcome and these field values."""
    assert isinstance(reply, CoordinationReply), f"expected a reply, got error {reply!r}"
    if outcome is not None:
        assert reply.outcome.value == outcome, (
            f"outcome {reply.outcome.value!r} != {outcome!r}: {reply.message}"
        )
    for key, value in fields.items():
        assert getattr(reply, key) == value, f"{key}: {getattr(reply, key)!r} != {value!r}"


def assert_error(reply: CoordinationReply | AdapterError, field: str | None = None) -> AdapterError:
    """Assert that an adapter refused the request with an error (naming ``field``, if given)."""
    assert isinstance(reply, AdapterError), f"expected an error, got a reply {reply!r}"
    if field is not None:
        assert reply.field == field, f"error names field {reply.field!r}, not {field!r}: {reply.error}"
    return reply


async def call_adapter(adapter: Any, department: str | None = None, **fields: Any) -> CoordinationReply:
    """Call an adapter's ``unstuck_coordinate`` in process (no NATS), through the same hook checks the host uses."""
    loaded = adapter if isinstance(adapter, LoadedAdapter) else wrap_adapter(type(adapter).__name__, adapter)
    assert loaded is not None, f"{adapter!r} is not a valid adapter (see docs/adapters.md)"
    request = coordination_request(department or loaded.department.code, **fields)
    reply = await loaded.coordinate(request)
    return reply if isinstance(reply, CoordinationReply) else CoordinationReply.model_validate(reply)


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout:g}s")


async def assert_conformant(nc: Client, department: str, timeout_seconds: float = 2.0) -> ConformanceReport:
    """Run the checks of ``unstuck adapters check`` against the adapter serving ``department``."""
    report = await check_adapter(nc, department, timeout_seconds)
    assert report.passed, "conformance check failed:\n" + render(report)
    return report


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
    await close_client(nc)


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
    b = Broker(nc, unstuck_config, sim_clock)  # it learns each served adapter's department from the bus
    await b.start()
    yield b
    await b.stop()
    await close_client(nc)


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
        await close_client(nc)


@pytest_asyncio.fixture
async def builtin_adapters(serve_adapter: Callable[..., Awaitable[AdapterHost]]) -> AdapterHost:
    """The installed adapters for renshe, scjg and chengguan, served."""
    found = discover()
    return await serve_adapter(*(found[c] for c in ("renshe", "scjg", "chengguan")))


@pytest.fixture
def unstuck_adapter() -> Any:
    """Override in your conftest.py or test module: return the adapter object under test."""
    raise pytest.UsageError(
        "define a fixture `unstuck_adapter` returning your adapter object, e.g.\n"
        "    @pytest.fixture\n    def unstuck_adapter():\n        return MyAdapter()"
    )


@pytest_asyncio.fixture
async def adapter_under_test(
    unstuck_adapter: Any, serve_adapter: Callable[..., Awaitable[AdapterHost]]
) -> LoadedAdapter:
    """Your ``unstuck_adapter``, served on the test's nats-server exactly as ``unstuck adapters run`` would."""
    host = await serve_adapter(unstuck_adapter)
    return next(iter(host.endpoints.values())).adapter


@pytest.fixture
def plugin_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Install a throwaway distribution with real entry points for this test only.

    ``plugin_distribution("city-rules", {"unstuck.plugins": {"city": "city_rules:CityRules"}},
    {"city_rules": "...source..."})`` writes the modules and a ``*.dist-info`` directory into a
    temporary directory put first on ``sys.path``, where ``importlib.metadata`` finds it as it finds
    any installed package. Everything is removed again when the test ends.
    """
    import importlib
    import sys

    site = tmp_path / "site-packages"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))
    created: list[str] = []

    def install(name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> Path:
        for module, source in modules.items():
            (site / f"{module}.py").write_text(source, encoding="utf-8")
            created.append(module)
        info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
        )
        lines = []
        for group, names in entry_points.items():
            lines.append(f"[{group}]")
            lines.extend(f"{ep} = {target}" for ep, target in names.items())
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        importlib.invalidate_caches()
        return info

    yield install
    for module in created:
        sys.modules.pop(module, None)

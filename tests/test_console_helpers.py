"""What the web apps' tests share: a bus (nats-server, broker, the built-in adapters), the console and,
when asked, the applicant's portal, running on an event loop of their own in a background thread, so
that a test can drive a real browser (Playwright's synchronous API) or an HTTP client while the bus
answers; a valid intake form, and signing in over HTTP. No test lives here."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats

from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import discover
from unstuck.broker import Broker
from unstuck.clock import SimulatedClock
from unstuck.config import Config
from unstuck.connection import close_client
from unstuck.console import PasswordStore, RunningConsole, serve_in_background
from unstuck.embedded import EmbeddedNats
from unstuck.portal import Limits, RunningPortal
from unstuck.portal import serve_in_background as serve_portal
from unstuck.testing import DEFAULT_START, fast_config

T = TypeVar("T")

STAFF = {
    "w-zhang": "clerk",
    "w-li": "clerk",
    "leader-gao": "leader_in_charge",  # the duty leader
    "director-ma": "director",
}
PASSWORD = "correct horse battery"  # every test account's console password
ONLINE_OWNER = "w-li"  # who answers for the cases reported through the portal

# a valid intake form (sample 01's shop sign), as staff type it
INTAKE = {
    "channel": "window",
    "applicant_kind": "enterprise",
    "applicant_name": "丹東市振興區味道小廚餐飲店",
    "id_number": "92210603MA0KC8QX2K",
    "phone": "13904151234",
    "matter_title": "二樓門頭招牌設置",
    "matter": "shop_sign",
    "window": "城管局戶外廣告審批窗口",
    "department": "chengguan",
    "description": "餐飲店位於臨街商住樓二樓，申請設置門頭招牌，窗口未予辦理。",
    "category": "cannot",
    "facts": "floor=2\nbuilding=臨街商住樓",
}


def console_config() -> Config:
    config = fast_config()
    config.staff.clear()
    config.staff.update(STAFF)
    config.window.duty_leader = "leader-gao"
    config.console.address = "127.0.0.1:0"
    return config


class ConsoleBus:
    """nats-server, a broker on a simulated clock, the built-in adapters and the console, in a thread."""

    def __init__(self, directory: Path, config: Config | None = None, portal: Limits | None = None) -> None:
        """``portal``: start the applicant's portal as well, with these limits."""
        self.directory = directory
        self.config = config or console_config()
        self.portal_limits = portal
        self.portal: RunningPortal | None = None
        if portal is not None:
            self.config.broker.online_owner = ONLINE_OWNER
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="console-bus", daemon=True)
        self.server: EmbeddedNats | None = None
        self.clock = SimulatedClock(DEFAULT_START)
        self.console: RunningConsole | None = None
        self.data_dir = directory / "data"
        self.portals: list[RunningPortal] = []

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    @property
    def url(self) -> str:
        assert self.console is not None
        return self.console.url.rstrip("/")

    def start(self) -> ConsoleBus:
        self.server = EmbeddedNats(self.directory / "nats").start()
        self.thread.start()
        passwords = PasswordStore(self.data_dir)
        for staff_id in STAFF:
            passwords.set(staff_id, PASSWORD)
        self.run(self._start())
        return self

    async def _start(self) -> None:
        assert self.server is not None
        self.nc = await nats.connect(self.server.url)
        self.broker = Broker(self.nc, self.config, self.clock)
        await self.broker.start()
        found = discover()
        self.adapter_nc = await nats.connect(self.server.url)
        self.host = AdapterHost(self.adapter_nc, [found[c] for c in ("renshe", "scjg", "chengguan")])
        await self.host.start()
        self.console = await serve_in_background(self.config, self.data_dir, nats_url=self.server.url)
        if self.portal_limits is not None:
            self.portal = await self.start_portal(self.portal_limits)

    async def start_portal(self, limits: Limits) -> RunningPortal:
        """Another portal on this bus, with ``limits`` of its own (stopped with the bus)."""
        assert self.server is not None
        started = await serve_portal(
            self.config, nats_url=self.server.url, address="127.0.0.1:0", limits=limits
        )
        self.portals.append(started)
        return started

    def portal_url(self, running: RunningPortal | None = None) -> str:
        found = running or self.portal
        assert found is not None
        return found.url.rstrip("/")

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if self.server is not None:
                self.server.stop()

    async def _stop(self) -> None:
        for running in self.portals:
            await running.stop()
        if self.console is not None:
            await self.console.stop()
        await self.host.stop()
        await self.broker.stop()
        await close_client(self.adapter_nc)
        await close_client(self.nc)

    def events(self, case_id: str) -> list[dict[str, Any]]:
        """The case's stored events (envelopes), read from the broker's store."""

        async def read() -> list[dict[str, Any]]:
            return [e.fields for e in await self.broker.store.read_case(case_id)]

        return self.run(read())

    def state(self, case_id: str) -> Any:
        return self.broker.state_of(case_id)

    def ask(self, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        """An anonymous API request (a read), answered by the broker: its whole reply."""

        async def ask() -> dict[str, Any]:
            from unstuck.schemas.subjects import api_subject

            msg = await self.nc.request(api_subject(verb), json.dumps(body).encode(), timeout=10)
            return dict(json.loads(msg.data))

        return self.run(ask())


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def signed_in(bus: ConsoleBus, staff: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=bus.url, follow_redirects=True, timeout=30)
    token = csrf_of(client.get("/login").text)
    page = client.post(
        "/login", data={"csrf": token, "username": staff, "password": PASSWORD, "next": "/queue"}
    )
    assert page.status_code == 200 and f"{staff}（" in page.text, page.text[:500]
    return client, csrf_of(page.text)

"""Assembling the parts: find or start NATS, connect, run the broker and the adapter host."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from .embedded import EmbeddedNats, running_url

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(".unstuck")


class NoServer(RuntimeError):
    """No NATS_URL and no embedded server running in this directory."""


def data_dir(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get("UNSTUCK_DATA_DIR") or DEFAULT_DATA_DIR)


def find_server(directory: Path) -> str | None:
    """NATS_URL if set, else the embedded server started in ``directory``, else None."""
    return os.environ.get("NATS_URL") or running_url(directory)


def require_server(directory: Path) -> str:
    url = find_server(directory)
    if url is None:
        raise NoServer(
            f"no NATS server: NATS_URL is not set and no embedded server runs in {directory}/. "
            "Start one with `unstuck serve` (or `unstuck demo --keep-running`) in this directory, "
            "or set NATS_URL=nats://host:4222"
        )
    return url


@dataclass
class Connection:
    url: str
    embedded: EmbeddedNats | None = None
    clients: list[Client] = field(default_factory=list)
    closing: bool = False

    async def connect(self, name: str, **options: Any) -> Client:
        async def on_error(exc: Exception) -> None:
            log.debug("nats %s: %s", name, exc)

        async def on_disconnect() -> None:
            if not self.closing:
                log.warning("nats %s: disconnected from %s; reconnecting", name, self.url)

        async def on_reconnect() -> None:
            if not self.closing:
                log.warning("nats %s: reconnected", name)

        opts: dict[str, Any] = {
            "name": name,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.25,
            "connect_timeout": 2,
            "error_cb": on_error,
            "disconnected_cb": on_disconnect,
            "reconnected_cb": on_reconnect,
        }
        user, password = os.environ.get("UNSTUCK_NATS_USER"), os.environ.get("UNSTUCK_NATS_PASSWORD")
        if user and password:
            opts.update(user=user, password=password)
        creds = os.environ.get("UNSTUCK_NATS_CREDS")
        if creds:
            opts["user_credentials"] = creds
        opts.update(options)
        nc = await nats.connect(self.url, **opts)
        self.clients.append(nc)
        return nc

    async def close(self) -> None:
        self.closing = True
        for nc in self.clients:
            try:
                await nc.drain()
            except Exception:
                try:
                    await nc.close()
                except Exception:
                    pass
        self.clients.clear()
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def open_connection(directory: Path, allow_embedded: bool, **embedded_options: Any) -> Connection:
    """Use NATS_URL or a server already running here; otherwise start the embedded one if allowed."""
    url = find_server(directory)
    if url is not None:
        return Connection(url=url)
    if not allow_embedded:
        require_server(directory)
    server = EmbeddedNats(directory, **embedded_options).start()
    log.info("embedded nats-server on %s (data in %s)", server.url, directory)
    return Connection(url=server.url, embedded=server)


class Bus:
    """NATS (found or embedded), the broker, its metrics server and, optionally, an adapter host."""

    def __init__(
        self,
        config: Any,
        clock: Any,
        directory: Path,
        metrics_address: str | None = None,
        adapters: list[Any] | None = None,
        slow: dict[str, Any] | None = None,
        ticker: bool = True,
        allow_embedded: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock
        self.directory = directory
        self.metrics_address = metrics_address or config.broker.metrics_address
        self.adapters = adapters or []
        self.slow = slow
        self.ticker = ticker
        self.allow_embedded = allow_embedded
        self.conn: Connection | None = None
        self.broker: Any = None
        self.host: Any = None
        self.metrics_server: Any = None

    async def start(self) -> Bus:
        from unstuck.adapters.host import AdapterHost

        from .broker import API_VERBS, Broker
        from .metrics import Metrics, MetricsServer

        self.conn = open_connection(self.directory, self.allow_embedded)
        nc = await self.conn.connect("unstuck-broker")
        known = {a.department.code: a.department.name for a in self.adapters}
        metrics = Metrics(
            sorted(set(known) | set(self.config.department_codes())),
            API_VERBS,
            policy=self.config.retry_policy,
        )
        self.broker = Broker(nc, self.config, self.clock, metrics=metrics, known_departments=known)
        await self.broker.start()
        try:
            self.metrics_server = MetricsServer(metrics, self.metrics_address, self.broker.health).start()
        except OSError as exc:
            host = self.metrics_address.rpartition(":")[0] or "127.0.0.1"
            log.warning("%s; serving metrics on a free port instead", exc)
            self.metrics_server = MetricsServer(metrics, f"{host}:0", self.broker.health).start()
        if self.adapters:
            adapter_nc = await self.conn.connect("unstuck-adapters")
            self.host = AdapterHost(adapter_nc, self.adapters, slow=self.slow)
            await self.host.start()
        if self.ticker:
            self.broker._spawn(self.broker.run_ticker(self.config.broker.tick_seconds))
        return self

    @property
    def url(self) -> str:
        return self.conn.url if self.conn else ""

    async def stop(self) -> None:
        if self.host is not None:
            await self.host.stop()
        if self.broker is not None:
            await self.broker.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.conn is not None:
            await self.conn.close()

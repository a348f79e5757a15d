"""Assembling the parts: find or start NATS, connect, run the broker and the adapter host."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from .embedded import EmbeddedNats, running_url
from .natsconfig import Credential, credential_from_env, inbox_prefix
from .natsprivate import server_requires_auth

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


class ApiPrefixClient(Client):
    """A NATS client whose JetStream API may sit under another prefix (the auditor's account imports it)."""

    def __init__(self, js_api_prefix: str | None = None) -> None:
        super().__init__()
        self.js_api_prefix = js_api_prefix

    def jetstream(self, **opts: Any) -> Any:
        if self.js_api_prefix:
            opts.setdefault("prefix", self.js_api_prefix)
        return super().jetstream(**opts)


def tls_context_from_env() -> ssl.SSLContext | None:
    """TLS for clients: UNSTUCK_NATS_TLS_CA (the server's CA), UNSTUCK_NATS_TLS_CERT/KEY (client certificate)."""
    ca, cert, key = (os.environ.get(f"UNSTUCK_NATS_TLS_{k}") for k in ("CA", "CERT", "KEY"))
    if not (ca or cert):
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
    if cert:
        context.load_cert_chain(cert, key or None)
    return context


@dataclass
class Connection:
    url: str
    embedded: EmbeddedNats | None = None
    clients: list[Client] = field(default_factory=list)
    closing: bool = False

    async def connect(self, name: str, auth: Credential | None = None, **options: Any) -> Client:
        async def on_error(exc: Exception) -> None:
            if "permissions violation" in str(exc).lower():
                log.warning("nats %s: %s (see docs/security.md)", name, exc)
            else:
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
        # credentials: given by the caller (one process, several principals), else the environment
        auth = auth or credential_from_env()
        if auth is not None:
            opts.update(user=auth.user, password=auth.password, inbox_prefix=inbox_prefix(auth.user))
        creds = os.environ.get("UNSTUCK_NATS_CREDS")
        if creds:
            opts["user_credentials"] = creds
        tls = tls_context_from_env()
        if tls is not None:
            opts["tls"] = tls
        opts.update(options)
        nc = ApiPrefixClient(auth.js_api_prefix if auth else None)
        await nc.connect(self.url, **opts)
        self.clients.append(nc)
        return nc

    async def close(self) -> None:
        self.closing = True
        for nc in self.clients:
            await close_client(nc)
        self.clients.clear()
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


async def close_client(nc: Client, timeout: float = 5.0) -> None:
    """Drain, then close; never wait longer than ``timeout`` (a close can stall on a dead connection)."""
    for step in (nc.drain, nc.close):
        try:
            await asyncio.wait_for(step(), timeout)
            return
        except Exception as exc:
            log.debug("closing NATS connection: %s failed: %s", step.__name__, exc)


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
        secure: bool = False,
    ) -> None:
        self.config = config
        self.clock = clock
        self.directory = directory
        self.metrics_address = metrics_address or config.broker.metrics_address
        self.adapters = adapters or []
        self.slow = slow
        self.ticker = ticker
        self.allow_embedded = allow_embedded
        self.secure = secure  # NATS authorisation from <directory>/nats-server.conf, one user per component
        self.conn: Connection | None = None
        self.broker: Any = None
        self.host: Any = None
        self.hosts: list[Any] = []  # secure: one adapter host per department, each on its own credentials
        self.metrics_server: Any = None

    async def start(self) -> Bus:
        from unstuck.adapters.host import AdapterHost
        from unstuck.adapters.registry import installed_departments

        from .broker import API_VERBS, Broker
        from .metrics import Metrics, MetricsServer

        credentials = None
        if self.secure:
            from unstuck.adapters.registry import discover

            from .natsconfig import CredentialStore, prepare_embedded, registry_departments

            codes = [*discover(), *(a.department.code for a in self.adapters)]
            departments = registry_departments(self.config, codes)
            generated = prepare_embedded(self.directory, departments, self.config.broker.stream)
            credentials = CredentialStore(self.directory)
            self.conn = open_connection(
                self.directory, self.allow_embedded, config_file=generated.config_file
            )
        else:
            self.conn = open_connection(self.directory, self.allow_embedded)
        nc = await self.conn.connect(
            "unstuck-broker", auth=credentials.get("broker") if credentials else None
        )
        if credentials is not None and not server_requires_auth(nc):
            from .natsconfig import SecurityConfigError

            url = self.conn.url
            await self.conn.close()
            raise SecurityConfigError(
                f"--secure, but the NATS server at {url} lets anyone in: stop it (or unset NATS_URL) "
                "so the embedded server starts with the generated configuration"
            )
        known = {a.department.code: a.department.name for a in self.adapters}
        metrics = Metrics(
            sorted(set(known) | set(self.config.department_codes())),
            API_VERBS,
            policy=self.config.retry_policy,
        )
        # a department whose adapter package is installed is known without a line of configuration
        installed = {code: name for code, name in installed_departments().items() if code not in known}
        self.broker = Broker(nc, self.config, self.clock, metrics=metrics, departments=known | installed)
        await self.broker.start()
        try:
            self.metrics_server = MetricsServer(metrics, self.metrics_address, self.broker.health).start()
        except OSError as exc:
            host = self.metrics_address.rpartition(":")[0] or "127.0.0.1"
            log.warning("%s; serving metrics on a free port instead", exc)
            self.metrics_server = MetricsServer(metrics, f"{host}:0", self.broker.health).start()
        if self.adapters and credentials is not None:
            for adapter in self.adapters:
                code = adapter.department.code
                dept_nc = await self.conn.connect(
                    f"unstuck-adapter-{code}", auth=credentials.get(f"dept-{code}")
                )
                self.hosts.append(AdapterHost(dept_nc, [adapter], slow=self.slow))
                await self.hosts[-1].start()
        elif self.adapters:
            adapter_nc = await self.conn.connect("unstuck-adapters")
            self.host = AdapterHost(adapter_nc, self.adapters, slow=self.slow)
            await self.host.start()
        if self.ticker:
            self.broker.start_ticker(self.config.broker.tick_seconds)
        return self

    @property
    def url(self) -> str:
        return self.conn.url if self.conn else ""

    async def stop(self) -> None:
        for host in [self.host, *self.hosts]:
            if host is not None:
                await host.stop()
        if self.broker is not None:
            await self.broker.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.conn is not None:
            await self.conn.close()

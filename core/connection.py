"""Finding NATS and connecting to it: ``NATS_URL``, a server already running here, or the embedded one."""

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
        self.acting_as: str | None = None  # the principal whose own API subjects this client uses

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

    async def connect(self, name: str, auth: Credential | None = None, **options: Any) -> ApiPrefixClient:
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

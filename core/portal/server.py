"""Serving the portal: ``unstuck portal`` (in the foreground), and ``serve_in_background`` for a
process that already runs an event loop (``unstuck demo --keep-running``, the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from unstuck.config import Config
from unstuck.connection import Connection, require_server
from unstuck.natsconfig import PORTAL, Credential, SecurityConfigError, credential_from_env, local_credential
from unstuck.schemas.subjects import VIA_NATS
from unstuck.web.busclient import BusClient
from unstuck.web.serving import QuietServer, bind, url_of

from .app import create_app
from .context import Portal
from .limits import Limits

log = logging.getLogger("unstuck.portal")

DEFAULT_ADDRESS = "127.0.0.1:8490"


def portal_credential(data_dir: Path) -> Credential | None:
    """The portal's NATS credentials: ``UNSTUCK_NATS_AUTH_FILE`` (or user and password variables), else
    ``<data dir>/credentials/portal.env`` when ``unstuck nats-config`` wrote one, else none (an open bus)."""
    return credential_from_env() or local_credential(data_dir, PORTAL, fallback=None)


@dataclass
class RunningPortal:
    """A portal served in the background: its ``url``; ``await stop()`` ends it."""

    url: str
    portal: Portal
    server: uvicorn.Server
    task: asyncio.Task[Any]
    connection: Connection

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
        await self.connection.close()


async def serve_in_background(
    config: Config,
    *,
    nats_url: str,
    credential: Credential | None = None,
    address: str = DEFAULT_ADDRESS,
    limits: Limits | None = None,
    secure_cookies: bool = False,
    or_free_port: bool = False,
) -> RunningPortal:
    """Start the portal on the running event loop; returns once it listens. ``address``: host:port
    (port 0: a free one); ``or_free_port``: when it is taken, a free port of the same host instead."""
    portal = Portal(config, limits or Limits())
    try:
        sock = bind(address)
    except OSError as exc:
        if not or_free_port:
            raise
        log.warning("portal: %s is taken (%s); listening on a free port instead", address, exc)
        sock = bind(f"{address.rpartition(':')[0] or '127.0.0.1'}:0")
    connection = Connection(url=nats_url)
    try:
        nc = await connection.connect("unstuck-portal", auth=credential)
    except BaseException:
        sock.close()
        raise
    portal.bus = BusClient(nc, via=VIA_NATS)
    app = create_app(portal, secure_cookies=secure_cookies)
    server = QuietServer(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="unstuck-portal")
    while not server.started:
        if task.done():
            await connection.close()
            task.result()
            raise RuntimeError("the portal stopped while starting")
        await asyncio.sleep(0.02)
    running = RunningPortal(url_of(sock), portal, server, task, connection)
    log.info("applicant portal on %s", running.url)
    return running


class PortalStartError(RuntimeError):
    """The portal cannot start (no bus to connect to, credentials refused); the message says why."""


def serve(config: Config, data_dir: Path, address: str | None = None, secure_cookies: bool = False) -> int:
    """``unstuck portal``: serve until Ctrl-C or SIGTERM. Raises NoServer when no bus can be found,
    PortalStartError when it cannot connect, OSError when the address cannot be listened on."""
    url = require_server(data_dir)
    try:
        credential = portal_credential(data_dir)
    except SecurityConfigError as exc:
        raise PortalStartError(str(exc)) from exc

    async def run() -> None:
        try:
            running = await serve_in_background(
                config,
                nats_url=url,
                credential=credential,
                address=address or DEFAULT_ADDRESS,
                secure_cookies=secure_cookies,
            )
        except OSError:
            raise
        except Exception as exc:
            hint = (
                " (the portal's credentials: portal.env, from unstuck nats-config)"
                if "uthoriz" in str(exc)
                else ""
            )
            raise PortalStartError(f"cannot connect to NATS at {url}: {exc}{hint}") from exc
        print(f"unstuck portal: {running.url}  (NATS {url}; Ctrl-C stops)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await running.stop()

    asyncio.run(run())
    return 0

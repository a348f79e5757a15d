"""Serving the console: ``unstuck console`` (in the foreground), and ``serve_in_background`` for a
process that already runs an event loop (``unstuck demo --keep-running``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from unstuck.config import Config
from unstuck.connection import Connection, require_server
from unstuck.natsconfig import CONSOLE, Credential, CredentialStore, SecurityConfigError, credential_from_env
from unstuck.web.busclient import BusClient
from unstuck.web.serving import QuietServer, bind, url_of

from .app import create_app
from .context import Console

log = logging.getLogger("unstuck.console")


def console_credential(data_dir: Path) -> Credential | None:
    """The console's NATS credentials: ``UNSTUCK_NATS_AUTH_FILE`` (or user and password variables), else
    ``<data dir>/credentials/console.env`` when ``unstuck nats-config`` wrote one, else none (an open bus)."""
    given = credential_from_env()
    if given is not None:
        return given
    store = CredentialStore(data_dir)
    if store.file(CONSOLE).exists():
        return store.get(CONSOLE)
    return None


@dataclass
class RunningConsole:
    """A console served in the background: its ``url``; ``await stop()`` ends it."""

    url: str
    console: Console
    server: uvicorn.Server
    task: asyncio.Task[Any]
    connection: Connection
    passwords: dict[str, str] = field(default_factory=dict, repr=False)

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
        await self.connection.close()


async def connect(url: str, credential: Credential | None) -> tuple[Connection, BusClient]:
    conn = Connection(url=url)
    nc = await conn.connect("unstuck-console", auth=credential)
    return conn, BusClient(nc)


async def serve_in_background(
    config: Config,
    data_dir: Path,
    *,
    nats_url: str,
    credential: Credential | None = None,
    secure: bool = False,
    address: str | None = None,
    sign_in: Iterable[str] = (),
    or_free_port: bool = False,
) -> RunningConsole:
    """Start the console on the running event loop; returns once it listens.

    ``nats_url``: the bus; ``credential``: the console's NATS user (``secure``: read from
    ``<data_dir>/credentials/console.env`` when not given); ``address``: host:port, by default
    ``[console] address`` (port 0: a free port); ``sign_in``: staff ids to give a fresh random password
    when they have none yet (a demo's, returned in ``passwords`` to print); ``or_free_port``: when the
    address is taken, listen on a free port of the same host instead of failing (OSError)."""
    if credential is None and secure:
        credential = CredentialStore(data_dir).get(CONSOLE)
    console = Console(config, Path(data_dir))
    passwords = {}
    for staff_id in sign_in:
        if staff_id in config.staff and not console.passwords.has(staff_id):
            passwords[staff_id] = secrets.token_urlsafe(9)
            console.passwords.set(staff_id, passwords[staff_id])
    wanted = address or config.console.address
    try:
        sock = bind(wanted)
    except OSError as exc:
        if not or_free_port:
            raise
        log.warning("console: %s is taken (%s); listening on a free port instead", wanted, exc)
        sock = bind(f"{wanted.rpartition(':')[0] or '127.0.0.1'}:0")
    try:
        connection, console.bus = await connect(nats_url, credential)
    except BaseException:
        sock.close()
        raise
    server = QuietServer(
        uvicorn.Config(create_app(console), log_level="warning", access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name="unstuck-console")
    while not server.started:
        if task.done():
            await connection.close()
            task.result()
            raise RuntimeError("the console stopped while starting")
        await asyncio.sleep(0.02)
    running = RunningConsole(url_of(sock), console, server, task, connection, passwords)
    log.info("window console on %s", running.url)
    return running


class ConsoleStartError(RuntimeError):
    """The console cannot start (no bus to connect to, credentials refused); the message says why."""


def serve(config: Config, data_dir: Path, address: str | None = None) -> int:
    """``unstuck console``: serve until Ctrl-C or SIGTERM. Raises NoServer when no bus can be found,
    ConsoleStartError when it cannot connect, OSError when the address cannot be listened on."""
    url = require_server(data_dir)
    try:
        credential = console_credential(data_dir)
    except SecurityConfigError as exc:
        raise ConsoleStartError(str(exc)) from exc

    async def run() -> None:
        try:
            running = await serve_in_background(
                config, data_dir, nats_url=url, credential=credential, address=address
            )
        except OSError:
            raise
        except Exception as exc:
            hint = (
                " (set UNSTUCK_NATS_AUTH_FILE to the console's credentials file)"
                if "uthoriz" in str(exc)
                else ""
            )
            raise ConsoleStartError(f"cannot connect to NATS at {url}: {exc}{hint}") from exc
        print(f"unstuck console: {running.url}  (NATS {url}; Ctrl-C stops)", flush=True)
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

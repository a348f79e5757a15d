"""``unstuck notify`` as a process: connect as the ``notifier`` principal, deliver until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from prometheus_client import start_http_server

from unstuck.config import Config
from unstuck.connection import Connection, require_server
from unstuck.natsconfig import NOTIFIER, credential_from_env, local_credential
from unstuck.plugins.manager import make_plugin_manager
from unstuck.schemas.subjects import NOTIFY_STREAM

from .delivery import Delivery
from .runner import NotifyRunner

log = logging.getLogger(__name__)


def serve(config: Config, data_dir: Path) -> int:
    """Deliver until Ctrl-C or SIGTERM. Raises NoServer when no bus can be found."""
    url = require_server(data_dir)
    # the environment's credentials, else <data_dir>/credentials/notifier.env (none: a bus without auth)
    auth = credential_from_env() or local_credential(data_dir, NOTIFIER, fallback=None)
    pm = make_plugin_manager(config.deadlines.working_days, config.escalation_chains())
    config_dir = config.source.parent if config.source is not None else None
    delivery = Delivery(config.notify, pm, config_dir)

    async def run() -> None:
        conn = Connection(url=url)
        nc = await conn.connect("unstuck-notify", auth=auth)
        runner = NotifyRunner(nc.jetstream(), delivery)
        if config.notify.metrics_address:
            host, _, port = config.notify.metrics_address.rpartition(":")
            start_http_server(int(port), host, registry=runner.registry)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stopping.set)
        ready = asyncio.Event()
        task = asyncio.create_task(runner.run(ready))
        await asyncio.wait({task, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            sms = "SMS through a plugin" if delivery.can_send_sms() else "no SMS plugin"
            print(
                f"unstuck notify: delivering from {NOTIFY_STREAM} (NATS {url}; {sms}; Ctrl-C stops)",
                flush=True,
            )
        try:
            await task
        finally:
            await conn.close()

    asyncio.run(run())
    return 0

"""A running bus: NATS (found or embedded), the broker, its metrics server and the adapter hosts."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from .connection import Connection, open_connection
from .natsprivate import server_requires_auth

log = logging.getLogger(__name__)


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
        if secure:  # who acts is proven by the subject NATS lets each principal use: never anonymous
            self.config = config.model_copy(deep=True)
            self.config.broker.require_identity = True
        self.conn: Connection | None = None
        self.broker: Any = None
        self.ledger: Any = None
        self.host: Any = None
        self.hosts: list[Any] = []  # secure: one adapter host per department, each on its own credentials
        self.metrics_server: Any = None

    async def start(self) -> Bus:
        from unstuck.adapters.host import AdapterHost

        from .broker import API_VERBS, Broker
        from .ledger import Ledger
        from .metrics import Metrics, MetricsServer

        # the ledger first: a wrong [ledger] setting stops the start before anything runs
        self.ledger = await asyncio.to_thread(Ledger.from_config, self.config.ledger, self.directory)
        credentials = None
        if self.secure:
            from unstuck.adapters.registry import discover

            from .natsconfig import CredentialStore, prepare_embedded, registry_departments

            codes = [*discover(), *(a.department.code for a in self.adapters)]
            departments = registry_departments(self.config, codes)
            generated = prepare_embedded(
                self.directory, departments, self.config.broker.stream, staff=sorted(self.config.staff)
            )
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
        # the departments served here are known at once; any other adapter is learned from the bus
        self.broker = Broker(
            nc, self.config, self.clock, metrics=metrics, departments=known, ledger=self.ledger
        )
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
        if self.ledger is not None:
            await asyncio.to_thread(self.ledger.close)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.conn is not None:
            await self.conn.close()

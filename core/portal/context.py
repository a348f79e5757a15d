"""What the portal's pages share: the configuration, the bus, the limits and the counters."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from unstuck.config import Config
from unstuck.schemas.subjects import PORTAL
from unstuck.web.busclient import BusClient, BusError
from unstuck.web.text import simplified

from .limits import Limiter, Limits


@dataclass
class Portal:
    """The portal's state: no case is kept here, only the departments' names for a minute."""

    config: Config
    limits: Limits = field(default_factory=Limits)
    bus: BusClient | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        # the session only carries the CSRF token: a new secret per start costs an open form at most
        self.secret = secrets.token_urlsafe(32)
        self.limiter = Limiter(self.limits)
        self.requests = Counter(
            "unstuck_portal_requests",
            "Portal form submissions by page and outcome",
            ["page", "outcome"],
            registry=self.registry,
        )
        self.form_errors = Counter(
            "unstuck_portal_form_errors",
            "Fields the portal refused before asking the bus, by field",
            ["field"],
            registry=self.registry,
        )
        self._departments: tuple[float, list[tuple[str, str]]] | None = None

    async def call(self, verb: str, body: dict[str, Any] | None = None) -> Any:
        if self.bus is None:
            raise BusError("网站尚未连接总线：请稍后重试", "unavailable")
        return await self.bus.call(verb, PORTAL, body)

    async def departments(self) -> list[tuple[str, str]]:
        """(code, name in simplified characters) of every department on the bus, asked once a minute."""
        now = time.monotonic()
        if self._departments and now - self._departments[0] < 60:
            return self._departments[1]
        listed = (await self.call("departments.list", {})).get("departments") or []
        found = [(str(d["code"]), simplified(str(d.get("name") or d["code"]))) for d in listed]
        self._departments = (now, found)
        return found

"""The departments the broker knows: the configured ones, and every adapter that answers on the bus.

An adapter host registers each department as the NATS micro service ``unstuck-<code>`` with the
department's name and escalation chain in its metadata (``adapters/host.py``; the Node example does
the same). The broker asks ``$SRV.INFO`` at start and every ``[broker] discovery_seconds``, and asks
``$SRV.INFO.unstuck-<code>`` at once when a request names a department it does not know yet: a
department that joined a second ago is routed without a restart, whatever is installed beside the
broker. A department once known stays known while the broker runs (and comes back from the open
cases that name it after a restart): if its adapter goes away, its requests stall and escalate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import nats.errors
from nats.aio.client import Client

from unstuck.schemas.common import DEPARTMENT_CODE_PATTERN
from unstuck.schemas.department import LEVEL_NAMES
from unstuck.schemas.subjects import SERVICE_PREFIX

log = logging.getLogger(__name__)
ALL_SERVICES = "$SRV.INFO"


def info_subject(code: str) -> str:
    return f"{ALL_SERVICES}.{SERVICE_PREFIX}{code}"


class Departments:
    """Code → name of every department the bus knows, learned from configuration and discovery.

    ``names`` is the one mapping the rest of the broker reads (routing, the status report, the
    lifecycle's ``known_departments``); it only grows. ``chains`` holds the escalation chain each
    adapter declares, which the configuration's ``[departments.<code>.chain]`` overrides.
    """

    def __init__(
        self,
        nc: Client,
        names: dict[str, str],
        on_learned: Callable[[str], None] = lambda code: None,
        answer_seconds: float = 0.5,
    ) -> None:
        self.nc = nc
        self.names = names
        self.chains: dict[str, dict[str, str]] = {}
        self.versions: dict[str, str] = {}
        self.on_learned = on_learned
        self.answer_seconds = answer_seconds

    def __contains__(self, code: object) -> bool:
        return code in self.names

    def learn(self, info: dict[str, Any]) -> str | None:
        """Take in one ``$SRV.INFO`` answer; the department code when it is one of ours."""
        if not str(info.get("name", "")).startswith(SERVICE_PREFIX):
            return None
        meta = info.get("metadata") or {}
        code = str(meta.get("department") or info["name"].removeprefix(SERVICE_PREFIX))
        if not re.fullmatch(DEPARTMENT_CODE_PATTERN, code):
            log.warning("departments: ignoring service %s: %r is not a department code", info["name"], code)
            return None
        chain = _chain(meta.get("chain"))
        if chain:
            self.chains[code] = chain
        if info.get("version"):
            self.versions[code] = str(info["version"])
        if code not in self.names:
            self.names[code] = str(meta.get("name") or code)
            log.info("departments: %s (%s) joined: its adapter answers on the bus", code, self.names[code])
            self.on_learned(code)
        return code

    def remember(self, codes: Iterable[str]) -> None:
        """Departments named by cases already on record (their adapters may be gone: they still stall)."""
        for code in codes:
            if code not in self.names:
                self.names[code] = code
                self.on_learned(code)

    async def ensure(self, codes: Iterable[str]) -> None:
        """Ask the bus for each department not known yet (no answer: it stays unknown, the caller refuses)."""
        for code in codes:
            if code not in self.names and re.fullmatch(DEPARTMENT_CODE_PATTERN, code):
                for info in await self._ask(info_subject(code), first_only=True):
                    self.learn(info)

    async def discover(self) -> None:
        """Learn every department whose adapter answers ``$SRV.INFO`` now."""
        for info in await self._ask(ALL_SERVICES, first_only=False):
            self.learn(info)

    async def keep_discovering(self, every_seconds: float) -> None:
        while True:
            try:
                await self.discover()
            except Exception as exc:  # the next round tries again
                log.warning("departments: discovery failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(every_seconds)

    async def _ask(self, subject: str, first_only: bool) -> list[dict[str, Any]]:
        """The answers to one ``$SRV`` request: the first within ``answer_seconds``, then those right behind it."""
        if not self.nc.is_connected:
            return []
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        found: list[dict[str, Any]] = []
        try:
            await self.nc.publish(subject, b"", reply=inbox)
            await self.nc.flush()
            while True:
                try:
                    wait = self.answer_seconds if not found else min(self.answer_seconds, 0.1)
                    msg = await sub.next_msg(timeout=wait)
                except nats.errors.TimeoutError:
                    break
                if not msg.data:  # the server's "no responders" status
                    break
                try:
                    found.append(json.loads(msg.data))
                except ValueError:
                    continue
                if first_only:
                    break
        finally:
            await sub.unsubscribe()
        return found


def _chain(raw: Any) -> dict[str, str]:
    """An adapter's declared chain from its metadata (JSON), kept to the known levels and non-empty names."""
    try:
        chain = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    if not isinstance(chain, dict):
        return {}
    return {str(k): str(v) for k, v in chain.items() if k in LEVEL_NAMES.values() and str(v).strip()}

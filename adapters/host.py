"""The adapter host: serves department adapters on NATS as micro services.

Per department: endpoint ``unstuck.dept.<code>.coordinate`` in queue group ``unstuck.dept.<code>``,
registered as NATS micro service ``unstuck-<code>`` so ``$SRV.PING``/``$SRV.STATS`` find it. nats-py
runs one subscription's callbacks one after another, so each request is handled in its own task,
bounded by a per-department semaphore. A repeated ``request_id`` gets the first answer again; a
request whose ``reply_by`` has passed is dropped unanswered (the broker has stopped waiting).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service, ServiceConfig
from pydantic import ValidationError

from unstuck.schemas import AdapterError, CoordinationReply, CoordinationRequest
from unstuck.schemas.subjects import coordinate_subject, department_queue
from unstuck.tasks import cancel_and_wait

from .registry import LoadedAdapter

log = logging.getLogger(__name__)
SERVICE_VERSION = "0.1.0"


@dataclass
class SlowSpell:
    """Fault injection for demos and tests: the department's system is down for ``for_seconds``.

    A request arriving during the spell is answered only when the spell ends (and never sooner than
    ``delay_seconds``), as when a back-office system hangs and then catches up.
    """

    delay_seconds: float
    for_seconds: float
    started: float = field(default_factory=time.monotonic)

    def delay(self) -> float:
        elapsed = time.monotonic() - self.started
        if elapsed >= self.for_seconds:
            return 0.0
        return max(self.delay_seconds, self.for_seconds - elapsed)


@dataclass
class DepartmentCounters:
    handled: int = 0
    replayed: int = 0
    expired: int = 0
    malformed: int = 0
    failed: int = 0


class DepartmentEndpoint:
    def __init__(
        self, adapter: LoadedAdapter, concurrency: int, remember: int, slow: SlowSpell | None
    ) -> None:
        self.adapter = adapter
        self.code = adapter.department.code
        self.slots = asyncio.Semaphore(concurrency)
        self.answers: OrderedDict[str, bytes] = OrderedDict()
        self.in_flight: dict[str, asyncio.Future[bytes | AdapterError]] = {}
        self.remember = remember
        self.slow = slow
        self.counters = DepartmentCounters()
        self.tasks: set[asyncio.Task[None]] = set()
        self.service: Service | None = None

    async def on_request(self, request: Request) -> None:
        await self.slots.acquire()  # backpressure: the subscription waits when every slot is busy
        task = asyncio.create_task(self._handle(request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, request: Request) -> None:
        try:
            await self._answer(request)
        except Exception:
            log.exception("%s: unexpected failure answering a request", self.code)
        finally:
            self.slots.release()

    async def _answer(self, request: Request) -> None:
        try:
            parsed = CoordinationRequest.model_validate_json(request.data)
        except ValidationError as exc:
            self.counters.malformed += 1
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "body"
            body = AdapterError(
                error=f"invalid coordination request: {where}: {err['msg']}"[:200],
                field=where,
                fix="send a CoordinationRequest as in schemas/json/coordination-request.json",
            )
            await request.respond_error("400", body.error, data=body.model_dump_json().encode())
            return
        if parsed.department != self.code:
            self.counters.malformed += 1
            body = AdapterError(
                error=f"request for {parsed.department} reached {self.code}",
                field="department",
                fix=f"send it to unstuck.dept.{parsed.department}.coordinate",
            )
            await request.respond_error("400", body.error, data=body.model_dump_json().encode())
            return
        if parsed.reply_by < datetime.now(UTC):
            self.counters.expired += 1
            log.info("%s: dropped %s: reply_by %s has passed", self.code, parsed.request_id, parsed.reply_by)
            return
        cached = self.answers.get(parsed.request_id)
        if cached is not None:
            self.counters.replayed += 1
            await request.respond(cached)
            return
        pending = self.in_flight.get(parsed.request_id)
        if pending is not None:
            self.counters.replayed += 1
            answer = await asyncio.shield(pending)
            if isinstance(answer, AdapterError):  # the first try failed: this repeat gets the same error
                await request.respond_error("500", answer.error, data=answer.model_dump_json().encode())
            else:
                await request.respond(answer)
            return
        future: asyncio.Future[bytes | AdapterError] = asyncio.get_running_loop().create_future()
        self.in_flight[parsed.request_id] = future
        try:
            if self.slow is not None and (delay := self.slow.delay()):
                await asyncio.sleep(delay)
            reply = await self.adapter.coordinate(parsed)
            if not isinstance(reply, CoordinationReply):
                reply = CoordinationReply.model_validate(reply)
            body = reply.model_dump_json().encode()
        except Exception as exc:
            self.counters.failed += 1
            log.warning("%s: adapter failed on %s: %s", self.code, parsed.request_id, exc)
            error = AdapterError(
                error=f"adapter {self.code} failed: {type(exc).__name__}: {exc}"[:200],
                fix="the department's adapter raised; see its log (the broker retries)",
            )
            future.set_result(error)
            await request.respond_error("500", error.error, data=error.model_dump_json().encode())
            return
        finally:
            self.in_flight.pop(parsed.request_id, None)
        self.counters.handled += 1
        self.answers[parsed.request_id] = body
        while len(self.answers) > self.remember:
            self.answers.popitem(last=False)
        future.set_result(body)
        await request.respond(body)


def _stats_of(endpoint: DepartmentEndpoint) -> Callable[[Any], dict[str, Any]]:
    """The ``data`` of the micro service's STATS: the host's own counters for the department."""

    def stats(_endpoint_stats: Any) -> dict[str, Any]:
        return dict(endpoint.counters.__dict__)

    return stats


class AdapterHost:
    """Serves adapters on one NATS connection until stopped."""

    def __init__(
        self,
        nc: Client,
        adapters: list[LoadedAdapter],
        concurrency: int = 32,
        remember: int = 100_000,
        slow: dict[str, SlowSpell] | None = None,
    ) -> None:
        self.nc = nc
        slow = slow or {}
        self.endpoints = {
            a.department.code: DepartmentEndpoint(a, concurrency, remember, slow.get(a.department.code))
            for a in adapters
        }

    async def start(self) -> None:
        for code, endpoint in self.endpoints.items():
            dept = endpoint.adapter.department
            service = await add_service(
                self.nc,
                ServiceConfig(
                    name=f"unstuck-{code}",
                    version=SERVICE_VERSION,
                    description=f"{dept.name} ({code}) coordination adapter",
                    metadata={
                        "department": code,
                        "name": dept.name,
                        "adapter": endpoint.adapter.name,
                        "matters": ",".join(dept.matters),
                    },
                    stats_handler=_stats_of(endpoint),
                ),
            )
            await service.add_endpoint(
                EndpointConfig(
                    name="coordinate",
                    subject=coordinate_subject(code),
                    queue_group=department_queue(code),
                    handler=endpoint.on_request,
                    metadata={"department": code},
                )
            )
            endpoint.service = service
        await self.nc.flush()

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop taking requests, let those in hand finish for ``grace_seconds``, then cancel the rest."""
        for endpoint in self.endpoints.values():
            if endpoint.service is not None:
                await endpoint.service.stop()
        in_hand = [t for e in self.endpoints.values() for t in e.tasks]
        if in_hand:
            await asyncio.wait(in_hand, timeout=grace_seconds)
            await cancel_and_wait(in_hand)

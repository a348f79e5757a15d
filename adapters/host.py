"""The adapter host: serves department adapters on NATS as micro services.

Per department: endpoint ``unstuck.dept.<code>.coordinate`` in queue group ``unstuck.dept.<code>``,
registered as NATS micro service ``unstuck-<code>`` (its version the adapter package's, its metadata
the department's name, matters and escalation chain) so ``$SRV.PING``/``$SRV.INFO``/``$SRV.STATS`` find
it and the broker learns the department from it. nats-py runs one subscription's callbacks one after
another, so each request is handled in its own task, bounded by a per-department semaphore.

The adapter's own code never runs on the loop that serves NATS (``isolation.py``): an ``async def``
hook runs on the adapter's own event loop, a plain ``def`` one in a worker thread, each department
with its own bound on hooks running. A hook still running when the request's ``reply_by`` is near
is answered for: a 504 error saying the hook blocks, so a slow or blocked adapter delays no other
and the broker (or ``adapters check``) hears why. A repeated ``request_id`` gets the first answer
again; a request whose ``reply_by`` has passed is dropped unanswered (the broker has stopped waiting).
"""

from __future__ import annotations

import asyncio
import json
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
from unstuck.schemas.coordination import OVERRAN_CODE
from unstuck.schemas.subjects import SERVICE_PREFIX, coordinate_subject, department_queue
from unstuck.tasks import cancel_and_wait

from .isolation import AdapterLoop
from .registry import LoadedAdapter

log = logging.getLogger(__name__)
ANSWER_MARGIN_SECONDS = 0.25
"""A hook still running this long before ``reply_by`` is answered for (the 504), so the answer arrives
while the broker still waits; a tenth of the reply window when that is shorter."""
REMEMBERED_FAILURES = 256  # distinct failures whose traceback was logged (each one logged once)


def validation_detail(exc: ValidationError) -> str:
    """Every error of a pydantic validation, as ``field: message`` joined by ``; ``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


def failure_text(exc: BaseException) -> str:
    """An exception in one line with its type: a validation error with every field it names."""
    if isinstance(exc, ValidationError):
        return f"ValidationError: {exc.title}: {validation_detail(exc)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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


class DepartmentCounters:
    handled: int = 0
    replayed: int = 0
    expired: int = 0
    malformed: int = 0
    failed: int = 0
    overran: int = 0  # answered for with a 504: the hook was still running near reply_by


class DepartmentEndpoint:
    def __init__(
        self, adapter: LoadedAdapter, concurrency: int, remember: int, slow: SlowSpell | None
    ) -> None:
        self.adapter = adapter
        self.code = adapter.department.code
        self.slots = asyncio.Semaphore(concurrency)  # requests in hand
        self.calls = asyncio.Semaphore(concurrency)  # hooks running, blocked ones included
        self.answers: OrderedDict[str, bytes] = OrderedDict()
        self.in_flight: dict[str, asyncio.Future[bytes | AdapterError]] = {}
        self.remember = remember
        self.slow = slow
        self.counters = DepartmentCounters()
        self.tasks: set[asyncio.Task[None]] = set()
        self.service: Service | None = None
        self.loop = AdapterLoop(self.code)
        self.logged_failures: OrderedDict[str, None] = OrderedDict()

    async def on_request(self, request: Request) -> None:
        await self.slots.acquire()  # backpressure: the subscription waits when every slot is busy
        self._spawn(self._handle(request))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, request: Request) -> None:
        try:
            await self._answer(request)
        except Exception:
            log.exception("%s: unexpected failure answering a request", self.code)
        finally:
            self.slots.release()

    async def _refuse(self, request: Request, code: str, body: AdapterError) -> None:
        await request.respond_error(code, body.error, data=body.model_dump_json().encode())

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
                detail=validation_detail(exc)[:4000],
            )
            await self._refuse(request, "400", body)
            return
        if parsed.department != self.code:
            self.counters.malformed += 1
            body = AdapterError(
                error=f"request for {parsed.department} reached {self.code}",
                field="department",
                fix=f"send it to unstuck.dept.{parsed.department}.coordinate",
            )
            await self._refuse(request, "400", body)
            return
        window = (parsed.reply_by - datetime.now(UTC)).total_seconds()
        if window <= 0:
            self.counters.expired += 1
            log.info("%s: dropped %s: reply_by %s has passed", self.code, parsed.request_id, parsed.reply_by)
            return
        cached = self.answers.get(parsed.request_id)
        if cached is not None:
            self.counters.replayed += 1
            await request.respond(cached)
            return
        call = self.in_flight.get(parsed.request_id)
        if call is not None:  # a repeat while the first try runs: it gets the same answer
            self.counters.replayed += 1
        else:
            call = self._start(parsed)
        margin = min(ANSWER_MARGIN_SECONDS, window / 10)
        limit = max(window - margin, 0.0)
        try:
            answer = await asyncio.wait_for(asyncio.shield(call), timeout=limit)
        except TimeoutError:
            await self._refuse(request, OVERRAN_CODE, await self._overran(parsed, limit, margin / 2))
            return
        if isinstance(answer, AdapterError):  # the first try failed: a repeat gets the same error
            await self._refuse(request, "500", answer)
        else:
            await request.respond(answer)

    def _start(self, parsed: CoordinationRequest) -> asyncio.Future[bytes | AdapterError]:
        """Run the hook for a new request id, on the adapter's side; its answer is remembered."""
        future: asyncio.Future[bytes | AdapterError] = asyncio.get_running_loop().create_future()
        self.in_flight[parsed.request_id] = future
        self._spawn(self._call(parsed, future))
        return future

    async def _call(self, parsed: CoordinationRequest, future: asyncio.Future[bytes | AdapterError]) -> None:
        try:
            future.set_result(await self._run_hook(parsed))
        except asyncio.CancelledError:  # stopping
            future.cancel()
            raise
        except Exception as exc:
            self.counters.failed += 1
            future.set_result(self._failed(parsed, exc))
        finally:
            self.in_flight.pop(parsed.request_id, None)

    async def _run_hook(self, parsed: CoordinationRequest) -> bytes:
        """The adapter's answer as sent, remembered for repeats of the request id."""
        async with self.calls:
            if self.slow is not None and (delay := self.slow.delay()):
                await asyncio.sleep(delay)
            reply = await asyncio.wrap_future(self.loop.submit(lambda: self.adapter.coordinate(parsed)))
        if not isinstance(reply, CoordinationReply):
            reply = CoordinationReply.model_validate(reply)
        body = reply.model_dump_json().encode()
        self.counters.handled += 1
        self.answers[parsed.request_id] = body
        while len(self.answers) > self.remember:
            self.answers.popitem(last=False)
        return body

    def _failed(self, parsed: CoordinationRequest, exc: Exception) -> AdapterError:
        """Log the adapter's exception (its traceback the first time it is seen) and word the error."""
        text = failure_text(exc)
        first = text not in self.logged_failures
        self.logged_failures[text] = None
        while len(self.logged_failures) > REMEMBERED_FAILURES:
            self.logged_failures.popitem(last=False)
        log.error(
            "%s: adapter %s failed on %s: %s%s",
            self.code,
            self.adapter.name,
            parsed.request_id,
            text,
            "" if first else " (the same failure as before; its traceback was logged then)",
            exc_info=exc if first else None,
        )
        return AdapterError(
            error=f"adapter {self.code} failed: {text}"[:200],
            fix="the department's adapter raised; see its log (the broker retries)",
            detail=text[:4000],
        )

    async def _overran(self, parsed: CoordinationRequest, seconds: float, probe: float) -> AdapterError:
        """The 504 for a hook still running near ``reply_by``: whether it blocks its loop (the loop does not
        run a callback within ``probe`` seconds), and the fix."""
        self.counters.overran += 1
        if self.adapter.is_async and not await self.loop.responsive(probe):
            why = (
                "blocked: its async def hook blocks the adapter's event loop (a blocking call such as "
                "time.sleep or a synchronous client inside async def)"
            )
            fix = (
                "make the hook plain `def` (it then runs in a worker thread) or await only non-blocking calls"
            )
        else:
            why = (
                "the hook is still running (a plain def hook runs in a worker thread; it blocks nothing else)"
            )
            fix = (
                "answer within the reply window: reply `accepted` with an expected_date for work that "
                "takes longer, or make the slow call faster"
            )
        error = AdapterError(
            error=f"adapter {self.code}: no answer for {seconds:.1f}s while the hook was running"[:200],
            fix=fix,
            detail=f"{parsed.request_id}: {why}",
        )
        # a warning the first time for each cause, then at info: a stuck back office must not flood the log
        level = logging.WARNING if why not in self.logged_failures else logging.INFO
        self.logged_failures[why] = None
        log.log(level, "%s: %s on %s: %s", self.code, error.error, parsed.request_id, why)
        return error


def _stats_of(endpoint: DepartmentEndpoint) -> Callable[[Any], dict[str, Any]]:
    """The ``data`` of the micro service's STATS: the host's own counters for the department."""

    def stats(_endpoint_stats: Any) -> dict[str, Any]:
        return dict(endpoint.counters.__dict__)

    return stats


def service_metadata(adapter: LoadedAdapter) -> dict[str, str]:
    """What the broker learns a department from (``$SRV.INFO``): code, name, matters, escalation chain."""
    dept = adapter.department
    return {
        "department": dept.code,
        "name": dept.name,
        "adapter": adapter.name,
        "matters": ",".join(dept.matters),
        "chain": json.dumps(dept.chain, ensure_ascii=False, sort_keys=True),
    }


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
            if endpoint.slow is not None:  # the spell is counted from when the department starts serving
                endpoint.slow.started = time.monotonic()
            dept = endpoint.adapter.department
            service = await add_service(
                self.nc,
                ServiceConfig(
                    name=f"{SERVICE_PREFIX}{code}",
                    version=endpoint.adapter.version,
                    description=f"{dept.name} ({code}) coordination adapter",
                    metadata=service_metadata(endpoint.adapter),
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

    async def stop(self, grace_seconds: float = 1.0) -> None:
        """Stop taking requests, let those in hand finish for ``grace_seconds``, then cancel the rest.

        A hook that blocks is not waited for: its thread is a daemon and ends with the process."""
        for endpoint in self.endpoints.values():
            if endpoint.service is not None:
                await endpoint.service.stop()
        in_hand = [t for e in self.endpoints.values() for t in e.tasks]
        if in_hand:
            await asyncio.wait(in_hand, timeout=grace_seconds)
            await cancel_and_wait(in_hand, timeout=grace_seconds)
        for endpoint in self.endpoints.values():
            endpoint.loop.stop()

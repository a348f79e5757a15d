"""The coordinator: asks departments over NATS request/reply, with a retry policy per department.

Each department is a bulkhead: its own concurrency limit and retry schedule, so a department that
never answers holds only its own slots. Every failed attempt, every valid reply and every stall is
handed to the broker (the sink) to be recorded as an event.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import nats.errors
from nats.aio.client import Client
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from unstuck.schemas import CoordinationReply, CoordinationRequest
from unstuck.schemas.subjects import coordinate_subject

from .clock import WALL, WallClock
from .config import Config, RetryPolicy
from .metrics import Metrics
from .replyjudge import judge_reply
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)


class AttemptFailure(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CoordinationSink(Protocol):
    """What the coordinator tells the broker; each call records an event (False: stop asking)."""

    async def attempt_failed(
        self, case_id: str, request_id: str, attempt: int, reason: str, detail: str
    ) -> bool: ...

    async def stalled(self, case_id: str, request_id: str, attempts: int, last_reason: str) -> bool: ...

    async def replied(self, case_id: str, reply: CoordinationReply, attempt: int) -> bool: ...

    def still_awaiting(self, case_id: str, request_id: str) -> bool: ...


@dataclass
class DepartmentStats:
    """Live figures for ``unstuck status``: recent reply times and attempt counts."""

    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    attempts: int = 0
    retries: int = 0
    timeouts: int = 0
    errors: int = 0
    invalid: int = 0
    no_responders: int = 0
    last_good_reply: float | None = None  # unix time on the wall clock

    def p(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


RequestBuilder = Callable[[int, datetime], CoordinationRequest]


class Coordinator:
    def __init__(
        self, nc: Client, config: Config, metrics: Metrics, sink: CoordinationSink, wall: WallClock = WALL
    ) -> None:
        self.nc = nc
        self.config = config
        self.metrics = metrics
        self.sink = sink
        self.wall = wall  # reply times, the last good reply, the time an adapter must answer by
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.bulkheads: dict[str, asyncio.Semaphore] = {}
        self.policies: dict[str, RetryPolicy] = {}
        self.stats: dict[str, DepartmentStats] = {}
        self.stopping = False

    def _awaiting(self, case_id: str, request_id: str) -> bool:
        return not self.stopping and self.sink.still_awaiting(case_id, request_id)

    def policy(self, department: str) -> RetryPolicy:
        if department not in self.policies:
            self.policies[department] = self.config.retry_policy(department)
        return self.policies[department]

    def department_stats(self, department: str) -> DepartmentStats:
        return self.stats.setdefault(department, DepartmentStats())

    def ensure(
        self,
        case_id: str,
        request_id: str,
        department: str,
        attempts_so_far: int,
        stalled: bool,
        build: RequestBuilder,
    ) -> None:
        """Start asking ``department`` unless a task for this request already runs."""
        if request_id in self.tasks:
            return
        task = asyncio.create_task(
            self._run(case_id, request_id, department, attempts_so_far, stalled, build),
            name=f"coordinate {request_id}",
            context=contextvars.Context(),  # the department's answer is not the caller's act
        )
        self.tasks[request_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(request_id, None))

    async def stop(self) -> None:
        self.stopping = True
        await cancel_and_wait(list(self.tasks.values()))

    async def _run(
        self, case_id: str, request_id: str, department: str, done: int, stalled: bool, build: RequestBuilder
    ) -> None:
        try:
            await self._coordinate(case_id, request_id, department, done, stalled, build)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("coordination %s to %s failed unexpectedly", request_id, department)

    async def _coordinate(
        self, case_id: str, request_id: str, department: str, done: int, stalled: bool, build: RequestBuilder
    ) -> None:
        policy = self.policy(department)
        attempt = done
        if not stalled and done < policy.attempts:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(policy.attempts - done),
                wait=wait_exponential(
                    multiplier=policy.backoff_initial_seconds, max=policy.backoff_max_seconds
                )
                + wait_random(0, policy.jitter_seconds),
                retry=retry_if_exception_type(AttemptFailure),
                reraise=True,
            )
            try:
                async for try_ in retrying:
                    with try_:
                        attempt = done + try_.retry_state.attempt_number
                        if await self._one(
                            case_id,
                            request_id,
                            department,
                            attempt,
                            policy,
                            build,
                            last=attempt >= policy.attempts,
                        ):
                            return
            except AttemptFailure as failure:
                if not self._awaiting(case_id, request_id):
                    return
                self.metrics.stalls.labels(department).inc()
                if not await self.sink.stalled(case_id, request_id, attempt, failure.reason):
                    return
            except _Stop:
                return
        # the slow schedule: keep asking until the department answers or the case no longer waits
        while self._awaiting(case_id, request_id):
            await asyncio.sleep(policy.stalled_retry_seconds)
            if not self._awaiting(case_id, request_id):
                return
            attempt += 1
            try:
                if await self._one(case_id, request_id, department, attempt, policy, build, last=False):
                    return
            except AttemptFailure:
                continue
            except _Stop:
                return

    async def _one(
        self,
        case_id: str,
        request_id: str,
        department: str,
        attempt: int,
        policy: RetryPolicy,
        build: RequestBuilder,
        last: bool,
    ) -> bool:
        """One attempt. True when answered; raises AttemptFailure to retry; _Stop when the case moved on."""
        if not self._awaiting(case_id, request_id):
            raise _Stop
        request = build(attempt, self.wall.now() + timedelta(seconds=policy.timeout_seconds))
        reason, reply, detail = await self.ask(department, request, policy)
        if reply is not None:
            if not await self.sink.replied(case_id, reply, attempt):
                raise _Stop
            return True
        if not last:
            self.metrics.retries.labels(department).inc()
            self.department_stats(department).retries += 1
            if not await self.sink.attempt_failed(case_id, request_id, attempt, reason, detail):
                raise _Stop
        raise AttemptFailure(reason, detail)

    async def ask(
        self, department: str, request: CoordinationRequest, policy: RetryPolicy
    ) -> tuple[str, CoordinationReply | None, str]:
        """Send one request and classify what came back: (outcome or failure reason, reply, detail)."""
        sem = self.bulkheads.setdefault(department, asyncio.Semaphore(policy.concurrency))
        stats = self.department_stats(department)
        payload = request.model_dump_json().encode()
        async with sem:
            self.metrics.in_flight.labels(department).inc()
            stats.attempts += 1
            started = self.wall.counter()
            try:
                msg = await self.nc.request(
                    coordinate_subject(department), payload, timeout=policy.timeout_seconds
                )
            except nats.errors.NoRespondersError:
                stats.no_responders += 1
                return self._failed(department, "no_responders", f"no adapter serves {department}")
            except nats.errors.TimeoutError:
                stats.timeouts += 1
                return self._failed(department, "timeout", f"no reply within {policy.timeout_seconds}s")
            finally:
                self.metrics.in_flight.labels(department).dec()
            elapsed = self.wall.counter() - started
        reason, reply, detail = judge_reply(request, department, msg.data, msg.headers)
        if reply is None:
            if reason == "error":
                stats.errors += 1
                return self._failed(department, reason, detail)
            if reason == "timeout":
                stats.timeouts += 1
                return self._failed(department, reason, detail)
            return self._invalid(department, detail)
        self.metrics.requests.labels(department, reply.outcome.value).inc()
        self.metrics.reply_seconds.labels(department).observe(elapsed)
        stats.last_good_reply = self.wall.unix()
        self.metrics.last_good_reply.labels(department).set(stats.last_good_reply)
        stats.latencies.append(elapsed)
        return reply.outcome.value, reply, ""

    def _failed(self, department: str, reason: str, detail: str) -> tuple[str, None, str]:
        self.metrics.requests.labels(department, reason).inc()
        return reason, None, detail

    def _invalid(self, department: str, detail: str) -> tuple[str, None, str]:
        self.metrics.invalid_replies.labels(department).inc()
        self.department_stats(department).invalid += 1
        log.warning("invalid reply from %s: %s", department, detail)
        return self._failed(department, "invalid_reply", detail)


class _Stop(Exception):
    """The case no longer waits for this department."""

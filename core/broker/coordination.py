"""The broker's side of coordination: starting the coordinator on each awaited reply (``Requests``),
and recording what it reports as events (``Outcomes``, the coordinator's CoordinationSink)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import pluggy

from unstuck import lifecycle as lc
from unstuck.coordinator import RequestBuilder
from unstuck.eventstore import StoredEvent, StoreUnavailable
from unstuck.schemas import Category, CoordinationReply, CoordinationRequest

from .rules import Rules

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Requests:
    state_of: Callable[[str], lc.CaseState]
    start: Callable[[str, str, str, int, bool, RequestBuilder], None]  # Coordinator.ensure

    def resume(self, states: Iterable[lc.CaseState]) -> None:
        for state in states:
            if state.watched:
                for c in state.coordinations.values():
                    if c.awaiting_reply:
                        self.ask(state, c)

    def ask(self, state: lc.CaseState, c: lc.Coordination) -> None:
        case_id = state.case_id

        def build(attempt: int, reply_by: datetime) -> CoordinationRequest:
            s = self.state_of(case_id)
            intake = s.intake
            return CoordinationRequest(
                request_id=c.request_id,
                case_id=case_id,
                department=c.department,
                category=Category(s.category or "hard"),
                matter=intake["matter"],
                matter_title=intake["matter_title"],
                facts=intake.get("facts", {}),
                question=c.question,
                deadline=s.due_date or c.deadline,
                reply_by=reply_by,
                attempt=attempt,
            )

        self.start(case_id, c.request_id, c.department, c.attempts, c.status == "stalled", build)


@dataclass(eq=False)
class Outcomes:
    """Each call records an event (False: stop asking)."""

    state_of: Callable[[str], lc.CaseState]
    execute: Callable[[str, Callable[[lc.CaseState], lc.Command]], Awaitable[list[StoredEvent]]]
    rules: Rules
    pm: pluggy.PluginManager

    def still_awaiting(self, case_id: str, request_id: str) -> bool:
        state = self.state_of(case_id)
        c = state.coordinations.get(request_id) if state.exists and state.watched else None
        return (
            c is not None and c.awaiting_reply and (state.state in lc.OPEN_STATES or c.review_of is not None)
        )

    async def attempt_failed(
        self, case_id: str, request_id: str, attempt: int, reason: str, detail: str
    ) -> bool:
        return await self._record(
            case_id,
            lambda s: lc.RecordAttemptFailure(
                request_id=request_id, attempt=attempt, reason=reason, detail=detail
            ),
        )

    async def stalled(self, case_id: str, request_id: str, attempts: int, last_reason: str) -> bool:
        dept = self.state_of(case_id).coordinations[request_id].department
        try:
            self.pm.hook.unstuck_on_stall(department=dept, case_id=case_id, attempts=attempts)
        except Exception as exc:  # a broken plugin must not keep the stall off the record
            log.error("plugin failed in unstuck_on_stall for %s: %s", dept, exc)
        return await self._record(
            case_id,
            lambda s: lc.RecordStall(
                request_id=request_id,
                attempts=attempts,
                last_reason=last_reason,
                chain=self.rules.chain(dept),
            ),
        )

    async def replied(self, case_id: str, reply: CoordinationReply, attempt: int) -> bool:
        return await self._record(case_id, lambda s: self.rules.reply(reply, attempt, None))

    async def _record(self, case_id: str, build: Callable[[lc.CaseState], lc.Command]) -> bool:
        while True:
            try:
                await self.execute(case_id, build)
                return True
            except lc.Refused as exc:
                log.info("coordination result for %s not recorded: %s", case_id, exc)
                return False
            except StoreUnavailable as exc:
                # nothing was stored; keep the result and try again when JetStream is back
                log.warning("case %s: %s; retrying in 1s", case_id, exc)
                await asyncio.sleep(1.0)

"""The command runner: decide under the case's lock, append, fold in, then react.

On a conflict (another writer appended first) the case is rebuilt from the stream and decided again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from unstuck import lifecycle as lc
from unstuck.clock import Clock, WallClock
from unstuck.eventstore import AppendConflict, EventStore, ExpectedHead, StoredEvent, StoreUnavailable
from unstuck.metrics import Metrics
from unstuck.tasks import KeyedLocks

from .casebook import CaseBook
from .errors import ApiFailure
from .identity import CALLER, Caller

Build = Callable[[lc.CaseState], lc.Command]
"""Builds the lifecycle command from the case's state."""


@dataclass(eq=False)
class CommandRunner:
    book: CaseBook
    store: EventStore
    clock: Clock  # stamps the events
    wall: WallClock  # times the appends
    metrics: Metrics
    react: Callable[[list[StoredEvent]], None]  # acts on stored events: coordinate, notify, count
    unsure: Callable[[str], None]  # told of a case whose append went unanswered (its head is checked later)
    locks: KeyedLocks = field(default_factory=KeyedLocks)  # one per case being decided

    async def execute(self, case_id: str, build: Build, stored_before: bool = True) -> list[StoredEvent]:
        """Decide and append; ``stored_before``: the case may exist on the stream (False for a case
        number just allocated, which saves reading its subject back)."""
        async with self.locks.hold(case_id):
            if stored_before:
                await self.book.ensure(case_id)
            for _ in range(5):
                state = self.book.state_of(case_id)
                new_events = stamped(lc.decide(state, build(state)), CALLER.get())
                if not new_events:
                    return []
                started = self.wall.counter()
                try:
                    head = ExpectedHead(state.seq, state.head_hash, self.book.stream_seqs.get(case_id, 0))
                    stored = await self.store.append(case_id, head, new_events, self.clock.now())
                except AppendConflict:
                    self.metrics.append_conflicts.inc()
                    await self.book.reload(case_id)
                    continue
                except StoreUnavailable:
                    # the events may be stored all the same (an acknowledgement lost on the way back):
                    # the follower then applies them, and their head is recorded later
                    self.unsure(case_id)
                    raise
                self.metrics.append_seconds.observe(self.wall.counter() - started)
                for event, decided in zip(stored, new_events, strict=True):
                    self.book.apply_own(event, decided.data)  # the decided payload is the stored one
                    self.metrics.events.labels(event.type).inc()
                self.react(stored)
                return stored
            raise ApiFailure("conflict", f"case {case_id} kept changing under concurrent writers; try again")

    def reply(self, stored: list[StoredEvent]) -> dict[str, Any]:
        """What the API answers to a command: the case, its state now, the events appended, and the
        due date the window tells the applicant."""
        case_id = stored[0].case_id if stored else None
        state = self.book.state_of(case_id) if case_id else None
        return {
            "case_id": case_id,
            "state": state.state if state else None,
            "events": [{"seq": e.seq, "type": e.type, "hash": e.hash} for e in stored],
            **due_dates(state),
        }


def stamped(events: list[lc.NewEvent], caller: Caller | None) -> list[lc.NewEvent]:
    """The decided events with ``auth`` on those whose actor is the caller (how it was proven); the
    broker's own events (system) and a department's answers on the bus carry none."""
    if caller is None:
        return events
    return [replace(e, auth=caller.auth) if e.actor == caller.actor else e for e in events]


def due_dates(state: Any) -> dict[str, Any]:
    """``due_date`` of a case (None before it is classified), and ``due_date_provisional`` when its
    state has one."""
    out = {"due_date": _json_date(getattr(state, "due_date", None))}
    if hasattr(state, "due_date_provisional"):
        out["due_date_provisional"] = _json_date(state.due_date_provisional)
    return out


def _json_date(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def constant(command: object) -> Build:
    """A builder that ignores the state (the command was computed beforehand)."""
    return lambda _state: command

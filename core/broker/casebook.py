"""The case book: every case's state, folded from the stream in stream order.

There is one way an event gets into a case, ``fold``: it must continue the case's chain (next seq,
previous hash) and carry a valid payload of its type. The follower folds what the stream delivers,
the command runner what it has just appended (the follower then skips those), and a conflict
rebuilds one case from the stream. Observers (gauges, indexes) see each change as (old, new, type).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from unstuck import lifecycle as lc
from unstuck.eventstore import EventStore, OwnDecision, StoredEvent, decision_events, sealed_event
from unstuck.schemas.events import EventSchemaError, parse_payload
from unstuck.schemas.subjects import case_subject

log = logging.getLogger(__name__)

Observer = Callable[[lc.CaseState, lc.CaseState, str], None]
"""Told of every change of a case: (old state, new state, event type or "reload")."""


@dataclass(eq=False)
class CaseBook:
    store: EventStore
    on_rejected: Callable[[], None]  # a stream message not applied (`unstuck replay --verify` says why)
    observers: list[Observer] = field(default_factory=list)
    states: dict[str, lc.CaseState] = field(default_factory=dict)
    stream_seqs: dict[str, int] = field(default_factory=dict)  # case -> stream sequence of its last message
    applied_seq: int = 0
    catch_up_to: int = 0  # the stream's last sequence when the broker started
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    own_seqs: set[int] = field(default_factory=set)  # appended and folded here: the follower skips them

    def state_of(self, case_id: str) -> lc.CaseState:
        return self.states.get(case_id) or lc.CaseState(case_id=case_id)

    async def follow(self) -> Any:
        """Follow the stream from its first message; ``wait_caught_up`` tells when the book is rebuilt."""
        self.catch_up_to = await self.store.last_seq()
        if self.catch_up_to == 0:
            self.caught_up.set()
        return await self.store.follow(self.on_stored, start_seq=1)

    async def wait_caught_up(self, stall_seconds: float = 60.0) -> None:
        """Wait until the follower has applied the stream as it was at start; fail loudly if it stops moving."""
        loop = asyncio.get_running_loop()
        last_progress = (self.applied_seq, loop.time())
        while not self.caught_up.is_set():
            try:
                await asyncio.wait_for(self.caught_up.wait(), timeout=1.0)
            except TimeoutError:
                if self.applied_seq != last_progress[0]:
                    last_progress = (self.applied_seq, loop.time())
                elif loop.time() - last_progress[1] > stall_seconds:
                    raise RuntimeError(
                        f"the broker stopped catching up with stream {self.store.stream} at message "
                        f"{self.applied_seq} of {self.catch_up_to}; check the NATS server and its log"
                    ) from None

    async def on_stored(
        self, stream_seq: int, subject: str, body: bytes, own: OwnDecision | None = None
    ) -> None:
        """The follower: apply each stored decision's events in stream order. A decision of this
        broker's is never parsed again: applied already (``own_seqs``), or, when the follower sees it
        before the append's acknowledgement, applied from the events the store sealed (``own``)."""
        if stream_seq in self.own_seqs:
            self.own_seqs.discard(stream_seq)  # applied already: no need to parse and check it again
        elif own is not None:
            for fields, data in own:
                self.apply(fields, stream_seq, data)
        else:
            for event_body in decision_events(body):
                try:
                    if (fields := self._sealed(stream_seq, subject, event_body)) is not None:
                        self.apply(fields, stream_seq)
                except Exception as exc:
                    self._reject("stream message %s could not be applied: %s", stream_seq, exc)
        self.applied_seq = max(self.applied_seq, stream_seq)
        if not self.caught_up.is_set() and self.applied_seq >= self.catch_up_to:
            self.caught_up.set()

    def apply(self, fields: dict[str, Any], stream_seq: int, data: Any = None) -> lc.CaseState | None:
        """Fold one stored event into its case and tell the observers; ``data``: its payload, if parsed."""
        change = self.fold(fields, stream_seq, data)
        if change is None:
            return None
        for observe in self.observers:
            observe(change[0], change[1], fields["type"])
        return change[1]

    def apply_own(self, event: StoredEvent, data: Any) -> None:
        """An event this broker has just appended: applied now, skipped when the follower delivers it."""
        if (
            self.apply(event.fields, event.stream_seq, data) is not None
            and event.stream_seq > self.applied_seq
        ):
            self.own_seqs.add(event.stream_seq)

    def fold(self, fields: dict[str, Any], stream_seq: int, data: Any = None) -> tuple[Any, Any] | None:
        """The one apply path: (old, new) state of the case, or None (applied already, or rejected)."""
        case_id = fields["case_id"]
        old = self.state_of(case_id)
        seq = int(fields["seq"])
        if seq <= old.seq:
            return None
        if seq != old.seq + 1 or fields.get("prev_hash") != old.head_hash:
            self._reject("case %s: event seq %s does not continue head %s", case_id, seq, old.seq)
            return None
        if data is None:
            try:
                data = parse_payload(fields["type"], fields["data"], int(fields.get("v", 1)))
            except EventSchemaError as exc:
                self._reject("case %s: event %s not applied: %s", case_id, seq, exc)
                return None
        meta = lc.EventMeta(seq=seq, at=datetime.fromisoformat(fields["at"]), hash=fields["hash"])
        new = self.states[case_id] = lc.evolve(old, fields["type"], data, meta)
        self.stream_seqs[case_id] = stream_seq
        return old, new

    async def reload(self, case_id: str) -> None:
        """Rebuild one case from the stream (after a conflict); the observers see the whole change once."""
        events = await self.store.read_case(case_id)
        old = self.state_of(case_id)
        self.states.pop(case_id, None)
        self.stream_seqs.pop(case_id, None)
        for e in events:
            if (fields := self._sealed(e.stream_seq, case_subject(case_id), e.body)) is not None:
                self.fold(fields, e.stream_seq)
        if events:  # appends must name the subject's real last message, applied or not
            self.stream_seqs[case_id] = events[-1].stream_seq
        for observe in self.observers:
            observe(old, self.state_of(case_id), "reload")

    def _sealed(self, stream_seq: int, subject: str, body: bytes) -> dict[str, Any] | None:
        """The fields of a stored event `unstuck replay --verify` would pass on its own: sealed bytes, a
        valid envelope, stored under its own case's subject; None (and counted) otherwise."""
        fields, problems = sealed_event(subject, body)
        if problems:  # not written by a broker (put into the stream by something else)
            self._reject("stream message %s not applied: %s", stream_seq, "; ".join(problems))
            return None
        return fields

    def _reject(self, message: str, *args: object) -> None:
        log.error(message + "; run `unstuck replay --verify`", *args)
        self.on_rejected()

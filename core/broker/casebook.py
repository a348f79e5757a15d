"""The case book: the state of every open case, folded from the stream in stream order.

There is one way an event gets into a case, ``fold``: it must continue the case's chain (next seq,
previous hash) and carry a valid payload of its type. The follower folds what the stream delivers,
the command runner what it has just appended (the follower then skips those), and a conflict
rebuilds one case from the stream. Observers (gauges, indexes) see each change as (old, new, type).

Memory follows the open work, not the history: ``states`` holds the open cases only. A case that is
closed (銷號) or evaluated moves to ``closed``, a small most-recently-used set, and leaves memory
when that set is full; ``ensure`` reads it back from its own subject when a command or a read needs
it (a late rating, a reopen, ``case show``), and so does the follower when an event of such a case
arrives. Reading a case back is not a change: the observers are not told.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from unstuck import lifecycle as lc
from unstuck.eventstore import EventStore, OwnDecision, StoredEvent, decision_events, sealed_event
from unstuck.ledger.folding import NotFolded, fold
from unstuck.schemas.subjects import case_subject

log = logging.getLogger(__name__)

Observer = Callable[[lc.CaseState, lc.CaseState, str], None]
"""Told of every change of a case: (old state, new state, event type or "reload")."""

CLOSED_KEPT = 1024
"""How many closed or evaluated cases stay in memory after their last change (most recent first)."""


@dataclass(eq=False)
class CaseBook:
    store: EventStore
    on_rejected: Callable[[], None]  # a stream message not applied (`unstuck replay --verify` says why)
    observers: list[Observer] = field(default_factory=list)
    states: dict[str, lc.CaseState] = field(default_factory=dict)  # the open cases
    closed: OrderedDict[str, lc.CaseState] = field(
        default_factory=OrderedDict
    )  # recently closed, oldest first
    closed_kept: int = CLOSED_KEPT
    invites_ratings: bool = (
        True  # 邀評 on ([deadlines] invite_rating_days): a closed case stays until invited
    )
    stream_seqs: dict[str, int] = field(
        default_factory=dict
    )  # case in memory -> stream seq of its last message
    known_cases: int = 0  # cases ever opened on the stream (counted as they are folded, kept in snapshots)
    loads: int = 0  # cases read back from their subject
    written_seq: int = 0  # the stream sequence of this broker's last append (read-your-writes)
    followed_from: int = 0  # the stream sequence the follower started at (1: the whole stream was read)
    applied_seq: int = 0
    catch_up_to: int = 0  # the stream's last sequence when the broker started
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    own_seqs: set[int] = field(default_factory=set)  # appended and folded here: the follower skips them

    def state_of(self, case_id: str) -> lc.CaseState:
        """The case as this book holds it; an empty state if it is not in memory (see ``ensure``)."""
        state = self.states.get(case_id)
        if state is None and (state := self.closed.get(case_id)) is not None:
            self.closed.move_to_end(case_id)
        return state or lc.CaseState(case_id=case_id)

    def in_memory(self, case_id: str) -> bool:
        return case_id in self.states or case_id in self.closed

    def resident(self) -> Iterator[lc.CaseState]:
        """Every case in memory: the open ones, then the recently closed ones."""
        yield from self.states.values()
        yield from self.closed.values()

    async def ensure(self, case_id: str) -> None:
        """Have ``case_id`` in memory if it is stored: a closed case is read back from its subject."""
        if not self.in_memory(case_id):
            await self.load(case_id)

    async def load(self, case_id: str, before: int | None = None) -> None:
        """Read one case back from its subject (its messages before stream sequence ``before``)."""
        events = await self.store.read_case(case_id, before=before)
        if self.in_memory(case_id):  # applied or read meanwhile: what is in memory is as new or newer
            return
        state, last = lc.CaseState(case_id=case_id), 0
        subject = case_subject(case_id)
        for e in events:
            if (fields := self._sealed(e.stream_seq, subject, e.body)) is None:
                continue
            if (new := self._next(state, fields)) is not None:
                state, last = new, e.stream_seq
        if state.exists:
            self.loads += 1
            self._place(state, last)

    async def follow(self, start_seq: int = 1) -> Any:
        """Follow the stream from ``start_seq`` (1, or the message after a snapshot's last);
        ``wait_caught_up`` tells when the book holds the stream as it was at start."""
        self.catch_up_to = await self.store.last_seq()
        self.followed_from = start_seq
        self.applied_seq = max(self.applied_seq, start_seq - 1)
        if self.catch_up_to <= self.applied_seq:
            self.caught_up.set()
        return await self.store.follow(self.on_stored, start_seq=start_seq)

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
                await self._read_back_before(fields, stream_seq)
                self.apply(fields, stream_seq, data)
        else:
            for event_body in decision_events(body):
                try:
                    if (fields := self._sealed(stream_seq, subject, event_body)) is not None:
                        await self._read_back_before(fields, stream_seq)
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
        self.written_seq = max(self.written_seq, event.stream_seq)
        if (
            self.apply(event.fields, event.stream_seq, data) is not None
            and event.stream_seq > self.applied_seq
        ):
            self.own_seqs.add(event.stream_seq)

    def fold(self, fields: dict[str, Any], stream_seq: int, data: Any = None) -> tuple[Any, Any] | None:
        """The one apply path: (old, new) state of the case, or None (applied already, or rejected)."""
        old = self.state_of(fields["case_id"])
        new = self._next(old, fields, data)
        if new is None:
            return None
        if not old.exists:
            self.known_cases += 1
        self._place(new, stream_seq)
        return old, new

    def _next(self, old: lc.CaseState, fields: dict[str, Any], data: Any = None) -> lc.CaseState | None:
        """``old`` with one stored event folded in; None if applied already or rejected."""
        try:
            folded = fold(old, fields, data)
        except NotFolded as exc:
            self._reject("%s", exc)
            return None
        return folded.state if folded is not None else None

    def _place(self, state: lc.CaseState, stream_seq: int) -> None:
        """Keep ``state`` where it belongs: with the open cases (and the closed ones whose `cannot` review,
        bad rating's follow-up or 邀評 is still owed), or first among the recently closed."""
        case_id = state.case_id
        self.stream_seqs[case_id] = stream_seq
        if state.followed(self.invites_ratings):
            self.states[case_id] = state
            self.closed.pop(case_id, None)
            return
        self.states.pop(case_id, None)
        self.closed[case_id] = state
        self.closed.move_to_end(case_id)
        while len(self.closed) > max(self.closed_kept, 1):  # never the case just placed
            gone, _ = self.closed.popitem(last=False)
            self.stream_seqs.pop(gone, None)

    async def _read_back_before(self, fields: dict[str, Any], stream_seq: int) -> None:
        """Before a later event of a case no longer in memory: read the case back up to this message."""
        if int(fields["seq"]) > 1 and not self.in_memory(fields["case_id"]):
            await self.load(fields["case_id"], before=stream_seq)

    def restore(self, states: list[tuple[lc.CaseState, int]], known_cases: int, covers: int) -> None:
        """Start from a snapshot: its open cases (each with its last message's stream sequence)."""
        for state, stream_seq in states:
            self._place(state, stream_seq)
        self.known_cases = known_cases
        self.applied_seq = covers

    async def reload(self, case_id: str) -> None:
        """Rebuild one case from the stream (after a conflict); the observers see the whole change once."""
        events = await self.store.read_case(case_id)
        old = self.state_of(case_id)
        self.states.pop(case_id, None)
        self.closed.pop(case_id, None)
        self.stream_seqs.pop(case_id, None)
        state, last = lc.CaseState(case_id=case_id), 0
        for e in events:
            if (fields := self._sealed(e.stream_seq, case_subject(case_id), e.body)) is not None:
                state = self._next(state, fields) or state
            last = e.stream_seq  # appends must name the subject's real last message, applied or not
        if state.exists:
            if not old.exists:
                self.known_cases += 1
            self._place(state, last)
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

"""The health watcher (every 2 s: is NATS connected, is the stream there; gauges and /healthz), and the
recorded heads (the heads bucket) it keeps in step with the stream after a failure.

A crash can fall between an append and its head, and an append can fail without an answer while
the events are stored all the same; either leaves a recorded head behind the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client

from unstuck import lifecycle as lc
from unstuck.eventstore import EventStore
from unstuck.metrics import Metrics

from .background import Background
from .casebook import CaseBook

log = logging.getLogger(__name__)

UNSURE_HEAD_ROUNDS = 5  # health-watcher rounds (2 s each) a case's head is re-checked after a failed append


@dataclass(eq=False)
class HeadKeeper:
    book: CaseBook
    store: EventStore
    unsure: dict[str, int] = field(default_factory=dict)  # cases whose append went unanswered -> rounds left

    def mark_unsure(self, case_id: str) -> None:
        self.unsure[case_id] = UNSURE_HEAD_ROUNDS

    async def record_unsure(self) -> None:
        """Record the unsure cases' heads from what the follower applied. The follower may apply such
        events a little later (after a reconnect), so each case is checked for a few rounds; the event
        store never moves a recorded head backwards."""
        heads = {
            case_id: (state.seq, state.head_hash, self.book.stream_seqs.get(case_id, 0))
            for case_id in self.unsure
            if (state := self.book.state_of(case_id)).seq > 0
        }
        try:
            await self.store.heads.reconcile(heads)
        except Exception as exc:
            log.warning("heads of %d case(s) not checked yet: %s", len(heads), exc)
            return
        for case_id in list(self.unsure):
            self.unsure[case_id] -= 1
            if self.unsure[case_id] <= 0:
                del self.unsure[case_id]

    async def reconcile_recent(self, window: int = 10_000) -> None:
        """After a crash, record the heads of the cases with an event among the last ``window`` messages."""
        recent = {
            case_id: (state.seq, state.head_hash, stream_seq)
            for case_id, stream_seq in self.book.stream_seqs.items()
            if stream_seq > self.book.catch_up_to - window and (state := self.book.state_of(case_id)).seq > 0
        }
        try:
            behind = await self.store.heads.reconcile(recent)
        except Exception as exc:
            log.warning("heads not reconciled: %s", exc)
            return
        if behind:
            log.warning(
                "recorded the heads of %d case(s) the last writer appended but did not record", behind
            )


@dataclass(eq=False)
class HealthWatcher:
    nc: Client
    js: Any
    book: CaseBook
    heads: HeadKeeper
    metrics: Metrics
    background: Background
    stream_ok: bool = False
    calendar_warnings: Callable[[], list[str]] = lambda: []  # warned about, not a reason to be unready

    async def watch(self) -> None:
        while not self.background.stopping.is_set():
            self.metrics.nats_connected.set(1 if self.nc.is_connected else 0)
            try:
                await self.js.stream_info(self.book.store.stream)
                self.stream_ok = True
            except Exception:
                self.stream_ok = False
            self.metrics.stream_ready.set(1 if self.stream_ok else 0)
            if self.stream_ok and self.heads.unsure:
                await self.heads.record_unsure()
            await self.background.pause(2.0)

    def health(self) -> dict[str, object]:
        connected = self.nc.is_connected
        return {
            "ready": bool(connected and self.stream_ok and self.book.caught_up.is_set()),
            "nats_connected": connected,
            "stream": self.book.store.stream,
            "stream_ok": self.stream_ok,
            "cases": self.book.known_cases,
            "open_cases": sum(1 for s in self.book.states.values() if s.state in lc.OPEN_STATES),
            "applied_seq": self.book.applied_seq,
            "warnings": self.calendar_warnings(),
        }

"""The projector: the case stream folded into the ledger's tables, batch by batch.

A durable JetStream pull consumer (``unstuck_ledger`` by default, acknowledging all up to a message)
hands out the stream's messages in order. Each message's events pass the same check the broker's
case book applies (``eventstore.sealed_event``: sealed bytes, a valid envelope, the case's own
subject) and are folded with ``lifecycle.evolve``; the rows of every case a batch touches are
rewritten with the batch's new position in one transaction, and only after the commit is the batch
acknowledged. The position is the truth: a message at or below it is skipped, and on start (or after
a failed write) the consumer is set to deliver from the position on, so a projector killed at any
point resumes with nothing lost and nothing doubled.

Only open cases are kept in memory. An event of a case not in memory (closed or evaluated and then
reopened, rated late, given accountability; or any case after a restart) rebuilds that case from its
own subject, reading the messages below the one being applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from unstuck import lifecycle as lc
from unstuck.eventstore import EventStore, decision_events, sealed_event
from unstuck.schemas.subjects import CASE_PREFIX, LEDGER_CONSUMER, case_subject

from .database import Batch, Ledger
from .folding import NotFolded, fold
from .rows import accountability_rows, case_row, coordination_rows, rating_row

log = logging.getLogger(__name__)

DEFAULT_NAME = LEDGER_CONSUMER
CLOSED_KEPT = 1024
"""Closed or evaluated cases the projector keeps after their last change, most recent last."""


class Projector:
    """Folds stream ``stream`` into ``ledger``; ``run()`` until ``stop()``, or ``catch_up()`` once.

    Counters (plain attributes): ``messages`` and ``events`` applied, ``rejected`` events not applied,
    ``batches`` written, ``lag`` messages still to project after the last batch.
    """

    def __init__(
        self, js: JetStreamContext, stream: str, ledger: Ledger, name: str = DEFAULT_NAME, batch: int = 256
    ) -> None:
        self.js = js
        self.stream = stream
        self.ledger = ledger
        self.name = name
        self.batch_size = batch
        self.store = EventStore(js, stream)
        self.states: dict[str, lc.CaseState] = {}  # open cases
        # the last CLOSED_KEPT closed or evaluated cases: a rating soon after the closing needs no read-back
        self.closed: OrderedDict[str, lc.CaseState] = OrderedDict()
        self.position = 0
        self.messages = self.events = self.rejected = self.batches = self.lag = 0
        self._sub: Any = None
        self._stopping = asyncio.Event()
        self._advanced = asyncio.Event()

    async def start(self) -> None:
        """Read the position and (re)bind the consumer to deliver from just after it."""
        self.position = await self.ledger.position(self.name)
        self.states.clear()
        self.closed.clear()
        last = await self.store.last_seq()
        if self.position > last:  # the stream was deleted and created again: its rows are another's
            log.warning(
                "the ledger holds stream %s up to message %d but the stream ends at %d (created again?): "
                "projecting it again from its start",
                self.stream,
                self.position,
                last,
            )
            await self.ledger.reset(self.name)
            self.position = 0
        await self._bind()

    async def _bind(self) -> None:
        if self._sub is not None:
            await self._unsubscribe()
        try:
            info = await self.js.consumer_info(self.stream, self.name)
        except nats.js.errors.NotFoundError:
            info = None
        fits = info is not None and info.ack_floor is not None and not info.num_ack_pending
        if fits and info is not None and info.ack_floor is not None:
            fits = int(info.ack_floor.stream_seq or 0) == self.position
        if info is not None and not fits:
            await self.js.delete_consumer(self.stream, self.name)
        if not fits:
            await self.js.add_consumer(
                self.stream,
                ConsumerConfig(
                    durable_name=self.name,
                    description="unstuck ledger: the case stream projected into the ledger database",
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=self.position + 1,
                    ack_policy=AckPolicy.ALL,
                    ack_wait=120.0,
                    filter_subject=f"{CASE_PREFIX}.>",
                ),
            )
        self._sub = await self.js.pull_subscribe_bind(durable=self.name, stream=self.stream)

    async def _unsubscribe(self) -> None:
        if self._sub is None:
            return
        try:
            await self._sub.unsubscribe()
        except Exception as exc:  # a closed connection: nothing to undo
            log.debug("ledger projector: unsubscribe: %s", exc)
        self._sub = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Project new messages as they come until ``stop()``. A failed batch (the database or NATS
        away) is logged and retried from the position the database holds, once a second."""
        try:
            while not self._stopping.is_set():
                try:
                    if self._sub is None:
                        await self.start()
                    await self.step(timeout=0.5)
                except Exception as exc:
                    log.error(
                        "ledger projector: %s; resuming from the ledger's position",
                        f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                    )
                    await self._unsubscribe()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), 1.0)
        finally:
            await self._unsubscribe()

    async def catch_up(self, stall_seconds: float = 30.0) -> int:
        """Project up to the stream's last message at the time of the call, then return the position."""
        await self.start()
        target = await self.store.last_seq()
        last_move = time.monotonic()
        try:
            while self.position < target:
                if await self.step(timeout=1.0):
                    last_move = time.monotonic()
                elif time.monotonic() - last_move > stall_seconds:
                    raise RuntimeError(
                        f"the ledger stopped at message {self.position} of {target} of stream {self.stream}; "
                        "check the NATS server"
                    )
        finally:
            await self._unsubscribe()
        return self.position

    async def wait_for(self, stream_seq: int, timeout: float) -> bool:
        """True once the ledger holds everything up to ``stream_seq`` (read your writes); False after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.position < stream_seq:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), left)
            except TimeoutError:
                return False
        return True

    async def step(self, timeout: float) -> int:
        """Fetch one batch, write it, acknowledge it; the number of messages projected."""
        try:
            msgs = await self._sub.fetch(self.batch_size, timeout=timeout)
        except nats.errors.TimeoutError:
            return 0
        batch = Batch(self.name, self.stream, from_seq=self.position, to_seq=self.position)
        touched: dict[str, tuple[lc.CaseState, int]] = {}
        for msg in msgs:
            seq = int(msg.metadata.sequence.stream)
            if seq <= batch.to_seq:
                continue  # projected already (a redelivery, or a batch written before a crash)
            await self._apply(seq, msg.subject, bytes(msg.data or b""), batch, touched)
            batch.to_seq = seq
        if batch.to_seq > batch.from_seq:
            self._rows(batch, touched)
            try:
                await self.ledger.write(batch)
            except BaseException:
                self.states.clear()  # memory ran ahead of the database: rebuilt from it on restart
                self.closed.clear()
                raise
            self._moved(batch.to_seq, touched)
        if msgs:
            await msgs[-1].ack()  # acknowledges the whole batch (AckPolicy.ALL), after the commit
            self.lag = int(msgs[-1].metadata.num_pending or 0)
        return batch.to_seq - batch.from_seq

    def _moved(self, seq: int, touched: dict[str, tuple[lc.CaseState, int]]) -> None:
        self.position = seq
        self.batches += 1
        for case_id, (state, _) in touched.items():
            if state.state not in lc.OPEN_STATES:  # closed or evaluated: rebuilt from its subject if it moves
                self.states.pop(case_id, None)
                self.closed[case_id] = state
                self.closed.move_to_end(case_id)
        while len(self.closed) > CLOSED_KEPT:
            self.closed.popitem(last=False)
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def _apply(
        self, seq: int, subject: str, body: bytes, batch: Batch, touched: dict[str, tuple[lc.CaseState, int]]
    ) -> None:
        """Fold one stored decision's events into memory, noting the cases it changes."""
        self.messages += 1
        for event_body in decision_events(body):
            fields, problems = sealed_event(subject, event_body)
            if problems:
                self._reject("stream message %s not projected: %s", seq, "; ".join(problems))
                continue
            case_id = fields["case_id"]
            state = self.states.get(case_id) or self.closed.pop(case_id, None)
            if state is None:
                state = await self._rebuild(case_id, seq) if int(fields["seq"]) > 1 else lc.CaseState(case_id)
            try:
                folded = fold(state, fields)
            except NotFolded as exc:
                self._reject("stream message %s: %s", seq, exc)
                continue
            if folded is None:
                continue
            self.states[case_id] = folded.state
            touched[case_id] = (folded.state, seq)
            self.events += 1
            if folded.type == "case.evaluated":
                batch.ratings.append(rating_row(case_id, folded.meta.seq, folded.meta.at, folded.data))

    async def _rebuild(self, case_id: str, before: int) -> lc.CaseState:
        """A case not in memory, as its own subject holds it below stream sequence ``before``."""
        state = lc.CaseState(case_id)
        subject = case_subject(case_id)
        for stored in await self.store.read_case(case_id, before=before):
            fields, problems = sealed_event(subject, stored.body)
            if problems:
                continue  # counted when it was first projected
            try:
                folded = fold(state, fields)
            except NotFolded:
                continue
            if folded is not None:
                state = folded.state
        return state

    def _rows(self, batch: Batch, touched: dict[str, tuple[lc.CaseState, int]]) -> None:
        key, personal = self.ledger.key, self.ledger.personal_data
        for case_id, (state, seq) in touched.items():
            if state.opened_at is None:
                continue  # no case.opened applied: nothing to show
            batch.cases[case_id] = case_row(state, seq, key, personal)
            batch.coordinations[case_id] = coordination_rows(state)
            batch.accountability[case_id] = accountability_rows(state, personal)

    def _reject(self, message: str, *args: object) -> None:
        self.rejected += 1
        log.error(message + "; run `unstuck replay --verify`", *args)

"""The event store: every case an append-only, hash-chained subject of the JetStream stream.

Appends carry ``Nats-Msg-Id`` (the event id: a retried append is stored once) and
``Nats-Expected-Last-Subject-Sequence`` (two writers cannot fork a case). A decision of several
events is one atomic batch (ADR-50, nats-server 2.12+): all of it is stored or none, so a crash
between its events cannot leave a half-written decision. The head of each case (seq, hash) is also
written to a KV bucket outside the stream, so a cut-off tail is detectable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from ulid import ULID

from unstuck.schemas import CURRENT_VERSIONS
from unstuck.schemas.subjects import CASE_PREFIX, HEADS_BUCKET, STREAM, case_subject

from .canonical import seal
from .heads import HeadBook
from .lifecycle import NewEvent
from .natsprivate import connection_of

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071
STREAM_NOT_FOUND = 10059
BATCH_DUPLICATE_MSG_ID = 10201  # a retried batch whose first try was stored
BATCH_RETRY_ERRORS = ("too many inflight", "incomplete", "batch is unknown", "in process")


class AppendConflict(Exception):
    """Another writer appended to the case first; reload and decide again."""


class StoreUnavailable(Exception):
    """JetStream did not accept the append (down, out of storage); nothing was acknowledged."""


class _Busy(Exception):
    """JetStream asked to send the batch again (another batch in process, too many in flight)."""


_NO_ACKNOWLEDGEMENT = (
    nats.errors.TimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
)
T = TypeVar("T")


class _AlreadyStored(Exception):
    """A retried batch was refused as a duplicate: its first try was stored."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: the exact body bytes, its parsed fields and where it sits in the stream."""

    body: bytes
    fields: dict[str, Any]
    stream_seq: int

    @property
    def case_id(self) -> str:
        return str(self.fields["case_id"])

    @property
    def seq(self) -> int:
        return int(self.fields["seq"])

    @property
    def type(self) -> str:
        return str(self.fields["type"])

    @property
    def hash(self) -> str:
        return str(self.fields["hash"])


@dataclass(frozen=True, slots=True)
class ExpectedHead:
    """Where the writer believes the case ends: its last seq and hash, and that event's stream sequence
    (0, "" and 0 for a case with no events). An append after any other head is an AppendConflict."""

    seq: int = 0
    hash: str = ""
    stream_seq: int = 0


def _reseal(events: list[tuple[bytes, str]], prev_hash: str) -> list[tuple[bytes, str]]:
    """The same events under new event ids, chained again from ``prev_hash``."""
    out = []
    for body, _ in events:
        fields = {k: v for k, v in json.loads(body).items() if k != "hash"}
        fields.update(event_id=str(ULID()), prev_hash=prev_hash)
        new_body, prev_hash = seal(fields)
        out.append((new_body, fields["event_id"]))
    return out


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def envelope_fields(
    case_id: str, seq: int, event: NewEvent, at: datetime, prev_hash: str, event_id: str | None = None
) -> dict[str, Any]:
    """Every field of the envelope except ``hash``."""
    return {
        "event_id": event_id or str(ULID()),
        "case_id": case_id,
        "seq": seq,
        "type": event.type,
        "at": iso(at),
        "actor": event.actor,
        "data": event.data.model_dump(mode="json", exclude_none=True),
        "prev_hash": prev_hash,
        "v": CURRENT_VERSIONS[event.type],
    }


class EventStore:
    def __init__(
        self,
        js: JetStreamContext,
        stream: str = STREAM,
        replicas: int = 1,
        heads_bucket: str = HEADS_BUCKET,
        timeout: float = 5.0,
    ) -> None:
        self.js = js
        self.stream = stream
        self.replicas = replicas
        self.timeout = timeout
        self.heads = HeadBook(js, heads_bucket, replicas)
        self.atomic = False  # the stream stores a multi-event decision as one atomic batch
        self._incomplete: dict[str, list[tuple[bytes, str]]] = {}  # half-written decisions to complete
        self._completing: asyncio.Task[None] | None = None
        self.on_completed: Callable[[list[StoredEvent]], None] | None = None

    async def ensure(self) -> None:
        """Create the stream and the heads bucket if missing; idempotent, safe with several brokers."""
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{CASE_PREFIX}.>"],
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            deny_delete=True,
            deny_purge=True,
            allow_rollup_hdrs=False,
            allow_atomic=True,
            duplicate_window=120.0,
            description="unstuck case events: one subject per case, hash-chained",
        )
        try:
            info = await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            try:
                info = await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                info = await self.js.stream_info(self.stream)  # another broker created it meanwhile
        else:
            if not (info.config.deny_delete and info.config.deny_purge):
                raise RuntimeError(
                    f"stream {self.stream} exists without deny_delete/deny_purge; "
                    "it cannot hold an audit record: recreate it or use another --stream"
                )
        if not info.config.allow_atomic:
            try:  # a stream created before atomic batches were used
                info.config.allow_atomic = True
                info = await self.js.update_stream(info.config)
            except nats.js.errors.APIError as exc:
                log.warning("stream %s cannot take atomic batches: %s", self.stream, exc.description)
        # a server before 2.12 ignores allow_atomic: decisions are then appended one event at a time
        self.atomic = bool(info.config.allow_atomic)
        if not self.atomic:
            log.warning(
                "nats-server does not support atomic batch publish: a crash between the events of one "
                "decision can leave it half-written; upgrade to nats-server 2.12 or newer"
            )
        await self.heads.ensure()

    async def append(
        self,
        case_id: str,
        head: ExpectedHead,
        events: Sequence[NewEvent],
        at: datetime,
        event_ids: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Append ``events`` after ``head``; raises AppendConflict or StoreUnavailable.

        ``event_ids`` (default: new ULIDs) make a retried append idempotent: the same ids are stored once.
        """
        if case_id in self._incomplete:
            if not await self._complete(case_id):
                raise StoreUnavailable(
                    f"an earlier decision on {case_id} is half-stored; completing it first"
                )
            raise AppendConflict(f"an earlier decision on {case_id} was completed first")
        if len(events) > 1 and self.atomic:
            return await self._append_atomic(case_id, head, events, at, event_ids)
        stored: list[StoredEvent] = []
        subject = case_subject(case_id)
        expected, prev_hash = head.stream_seq, head.hash
        for i, event in enumerate(events):
            fields = envelope_fields(
                case_id, head.seq + 1 + i, event, at, prev_hash, event_ids[i] if event_ids else None
            )
            body, digest = seal(fields)
            headers = {
                "Nats-Msg-Id": fields["event_id"],
                "Nats-Expected-Last-Subject-Sequence": str(expected),
            }
            try:
                stream_seq = int((await self._publish(subject, body, headers)).seq)
            except AppendConflict:
                # nats-server checks the expected sequence before the duplicate window: a retry of an
                # append whose acknowledgement was lost is refused as a conflict, though it is stored
                stream_seq = await self._stored_last(subject, fields["event_id"])
            stored.append(StoredEvent(body=body, fields={**fields, "hash": digest}, stream_seq=stream_seq))
            expected = stream_seq
            prev_hash = digest
        if stored:
            await self.heads.record(case_id, stored[-1].seq, stored[-1].hash, stored[-1].stream_seq)
        return stored

    async def _append_atomic(
        self,
        case_id: str,
        head: ExpectedHead,
        events: Sequence[NewEvent],
        at: datetime,
        event_ids: Sequence[str] | None,
    ) -> list[StoredEvent]:
        """One decision, one atomic batch: the expected subject sequence is checked on its first event."""
        subject = case_subject(case_id)
        sealed: list[tuple[dict[str, Any], bytes]] = []
        prev_hash = head.hash
        for i, event in enumerate(events):
            fields = envelope_fields(
                case_id, head.seq + 1 + i, event, at, prev_hash, event_ids[i] if event_ids else None
            )
            body, digest = seal(fields)
            sealed.append(({**fields, "hash": digest}, body))
            prev_hash = digest
        try:
            last_stream = await self._publish_batch(
                subject, [(body, fields["event_id"]) for fields, body in sealed], head.stream_seq
            )
            first = last_stream - len(sealed) + 1  # a batch is stored at consecutive sequences
            stored = [
                StoredEvent(body=body, fields=fields, stream_seq=first + i)
                for i, (fields, body) in enumerate(sealed)
            ]
        except (_AlreadyStored, StoreUnavailable) as exc:
            # nats-server 2.15 can store the first events of a batch and then refuse the rest when it
            # runs out of storage: a half-written decision. It is completed (its remaining events
            # are sealed already), here or in the background, before anything else is appended.
            self._incomplete[case_id] = [(body, fields["event_id"]) for fields, body in sealed]
            if not await self._complete(case_id, notify=False):
                self._repair_soon()
                if isinstance(exc, StoreUnavailable):
                    raise
                raise StoreUnavailable(f"append to {case_id} is half-stored; completing it") from exc
            stored = []
        if not stored:
            stored = await self._find_stored(case_id, [fields["event_id"] for fields, _ in sealed])
        await self.heads.record(case_id, stored[-1].seq, stored[-1].hash, stored[-1].stream_seq)
        return stored

    async def _complete(self, case_id: str, notify: bool = True) -> bool:
        """Store the rest of a half-written decision; True when nothing of it is left to store.

        With ``notify``, ``on_completed`` gets the whole decision once it is stored: the caller that
        decided it was told "unavailable", so the broker acts on it from here.
        """
        decision = self._incomplete[case_id]
        subject = case_subject(case_id)
        try:
            last = await self.js.get_msg(self.stream, subject=subject)  # the last on the subject
        except nats.js.errors.NotFoundError:
            last = None
        except Exception as exc:
            log.debug("cannot read the head of %s: %s", case_id, exc)
            return False
        ids = [event_id for _, event_id in decision]
        stored = 0
        if last is not None:
            with contextlib.suppress(ValueError):
                stored = ids.index(json.loads(bytes(last.data or b"{}")).get("event_id")) + 1
        if stored == 0:  # none of it: nothing to complete
            del self._incomplete[case_id]
            return True
        assert last is not None
        last_seq = int(last.seq or 0)
        if stored == len(decision):
            del self._incomplete[case_id]
            await self._completed(case_id, decision, last_seq, notify)
            return True
        log.error(
            "case %s: a decision is half-stored (%s of %s events); completing it", case_id, stored, len(ids)
        )
        rest = decision[stored:]
        for again in (False, True):
            try:
                if len(rest) > 1:
                    last_seq = await self._publish_batch(subject, rest, int(last.seq or 0))
                else:
                    headers = {
                        "Nats-Msg-Id": rest[0][1],
                        "Nats-Expected-Last-Subject-Sequence": str(last.seq),
                    }
                    last_seq = int((await self._publish(subject, rest[0][0], headers)).seq)
                break
            except _AlreadyStored as exc:
                if again:
                    log.error("case %s: the half-stored decision could not be completed: %s", case_id, exc)
                    del self._incomplete[case_id]
                    return True
                # the refused events' ids were remembered as published: seal the rest again under new ids
                rest = _reseal(rest, str(json.loads(bytes(last.data or b"{}")).get("hash", "")))
                decision = self._incomplete[case_id] = decision[:stored] + rest
            except AppendConflict as exc:
                log.error("case %s: the half-stored decision could not be completed: %s", case_id, exc)
                del self._incomplete[case_id]
                return True
            except StoreUnavailable:
                return False
        del self._incomplete[case_id]
        await self._completed(case_id, decision, last_seq, notify)
        return True

    async def _completed(
        self, case_id: str, decision: list[tuple[bytes, str]], last_seq: int, notify: bool
    ) -> None:
        """The decision is whole in the stream (stored at consecutive sequences up to ``last_seq``)."""
        first = last_seq - len(decision) + 1
        events = [
            StoredEvent(body=body, fields=json.loads(body), stream_seq=first + i)
            for i, (body, _) in enumerate(decision)
        ]
        if notify:
            await self.heads.record(case_id, events[-1].seq, events[-1].hash, events[-1].stream_seq)
            if self.on_completed is not None:
                self.on_completed(events)

    def _repair_soon(self) -> None:
        if self._completing is None or self._completing.done():
            self._completing = asyncio.create_task(self._complete_decisions())

    async def _complete_decisions(self) -> None:
        while self._incomplete:
            await asyncio.sleep(1.0)
            for case_id in list(self._incomplete):
                try:
                    await self._complete(case_id)
                except Exception as exc:
                    log.debug("completing %s failed: %s", case_id, exc)

    async def _publish_batch(self, subject: str, messages: list[tuple[bytes, str]], expected: int) -> int:
        """Publish (body, event id) pairs as one atomic batch; returns the stream sequence of the last."""
        nc = connection_of(
            self.js
        )  # batches are plain publishes with headers; the commit answers with a PubAck

        async def send() -> int:
            batch_id = str(ULID())  # a new batch per try; the same Nats-Msg-Ids keep the retry safe
            msg = None
            for i, (body, event_id) in enumerate(messages, start=1):
                headers = {"Nats-Msg-Id": event_id, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(i)}
                if i == 1:
                    headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
                if i < len(messages):
                    await nc.publish(subject, body, headers=headers)
                else:
                    headers["Nats-Batch-Commit"] = "1"
                    msg = await nc.request(subject, body, timeout=self.timeout, headers=headers)
            assert msg is not None
            reply = json.loads(msg.data)
            error = reply.get("error")
            if not error:
                return int(reply["seq"])
            code, description = error.get("err_code"), str(error.get("description", ""))
            if code == WRONG_LAST_SEQUENCE:
                raise AppendConflict(description)
            if code == BATCH_DUPLICATE_MSG_ID:
                raise _AlreadyStored(description)
            if any(text in description for text in BATCH_RETRY_ERRORS):
                raise _Busy(description)
            raise StoreUnavailable(f"JetStream refused the append: {description}")

        return await self._retrying(send, attempts=5)

    async def _stored_last(self, subject: str, event_id: str) -> int:
        """The stream sequence of ``event_id`` when it is the last event on ``subject``; else AppendConflict."""
        try:
            last = await self.js.get_msg(self.stream, subject=subject)
        except nats.js.errors.NotFoundError as exc:
            raise AppendConflict(f"nothing stored on {subject}") from exc
        except Exception as exc:
            raise StoreUnavailable(f"cannot read the last event on {subject}: {exc}") from exc
        if json.loads(bytes(last.data or b"{}")).get("event_id") != event_id:
            raise AppendConflict(f"another writer appended to {subject} first")
        return int(last.seq or 0)

    async def _find_stored(self, case_id: str, event_ids: list[str]) -> list[StoredEvent]:
        """The events of an append whose acknowledgement was lost, as the stream holds them."""
        wanted = set(event_ids)
        found = {
            e.fields.get("event_id"): e
            for e in await self.read_case(case_id)
            if e.fields.get("event_id") in wanted
        }
        if len(found) != len(wanted):
            raise StoreUnavailable(f"append to {case_id} was refused as a duplicate but is not in the stream")
        return [found[i] for i in event_ids]

    async def _publish(self, subject: str, body: bytes, headers: dict[str, str]) -> Any:
        """Publish one message to the stream; returns its PubAck."""

        async def send() -> Any:
            try:
                return await self.js.publish(
                    subject, body, timeout=self.timeout, stream=self.stream, headers=headers
                )
            except nats.js.errors.APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    raise AppendConflict(str(exc.description)) from exc
                raise StoreUnavailable(f"JetStream refused the append: {exc.description}") from exc

        return await self._retrying(send, attempts=3)

    async def _retrying(self, send: Callable[[], Awaitable[T]], attempts: int) -> T:
        """The one publish-and-retry loop: ``send`` again while no acknowledgement came back or the server
        was busy; the same ``Nats-Msg-Id`` makes each retry safe (JetStream stores an id once)."""
        for attempt in range(1, attempts + 1):
            try:
                return await send()
            except _Busy as exc:
                if attempt == attempts:
                    raise StoreUnavailable(f"JetStream refused the append: {exc}") from exc
                await asyncio.sleep(0.05 * attempt)
            except _NO_ACKNOWLEDGEMENT as exc:
                if attempt == attempts:
                    raise StoreUnavailable(
                        f"JetStream did not acknowledge the append: {type(exc).__name__}"
                    ) from exc
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def read_case(self, case_id: str) -> list[StoredEvent]:
        """Every stored event of one case, in order."""
        subject = case_subject(case_id)
        out: list[StoredEvent] = []
        seq = 0
        while True:
            try:
                msg = await self.js.get_msg(self.stream, seq=seq + 1, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return out
            seq = int(msg.seq or 0)
            body = bytes(msg.data or b"")
            out.append(StoredEvent(body=body, fields=json.loads(body), stream_seq=seq))

    async def last_seq(self) -> int:
        info = await self.js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def follow(
        self, on_message: Callable[[int, str, bytes], Awaitable[None]], start_seq: int = 1
    ) -> Any:
        """Deliver every message from ``start_seq`` on, in order, then new ones as they arrive.

        An ordered consumer: it survives reconnects and restarts itself on a gap. Returns the
        subscription; ``on_message(stream_seq, subject, body)`` is awaited for each message in turn.
        """

        async def deliver(msg: Any) -> None:
            await on_message(msg.metadata.sequence.stream, msg.subject, msg.data)

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start_seq, 1)
        )
        return await self.js.subscribe(
            f"{CASE_PREFIX}.>",
            cb=deliver,
            ordered_consumer=True,
            stream=self.stream,
            config=config,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )

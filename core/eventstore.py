"""The event store: every case an append-only, hash-chained subject of the JetStream stream.

Storage format 2: a decision (all the events one command produces) is ONE message on
``unstuck.case.<case_id>``. Its body is the decision's events, one per line, each the canonical JSON
of its envelope with its ``hash`` (``seal``); ``seq``, ``prev_hash`` and ``hash`` chain the events of
a case across decisions. A JetStream message is stored whole or not at all, so a decision is atomic
by construction. Appends carry ``Nats-Msg-Id`` (the decision id, which is its first event's id: a
retried append is stored once) and ``Nats-Expected-Last-Subject-Sequence`` (the case's last message:
two writers cannot fork a case). The stream's metadata names the format; a stream of another format
is refused, never misread. The head of each case (seq, hash) is also written to a KV bucket outside
the stream, off the append's path (``heads.py``), so a cut-off tail is detectable.
"""

from __future__ import annotations

import asyncio
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
from unstuck.schemas.subjects import (
    CASE_PREFIX,
    FORMAT_METADATA_KEY,
    HEADS_BUCKET,
    STORAGE_FORMAT,
    STREAM,
    case_subject,
    storage_format_problem,
)

from .canonical import check_body, seal
from .directget import DirectGetError, direct_batches
from .envelope import envelope_problem
from .heads import HeadBook, update_made_before
from .lifecycle import NewEvent

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071
HISTORY_BATCH = 1000  # messages per direct get while following stored history (at most 4 MiB a batch)


class AppendConflict(Exception):
    """Another writer appended to the case first; reload and decide again."""


class StoreUnavailable(Exception):
    """JetStream did not accept the append (down, out of storage); nothing was acknowledged."""


class StoreFormatError(Exception):
    """The stream was written in another storage format; the message names it."""


_NO_ACKNOWLEDGEMENT = (
    nats.errors.TimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
)
T = TypeVar("T")

OwnDecision = list[tuple[dict[str, Any], Any]]
"""The sealed events of a decision being appended: (envelope fields with hash, payload model) each."""
OnMessage = Callable[[int, str, bytes, OwnDecision | None], Awaitable[None]]


def decision_body(event_bodies: Sequence[bytes]) -> bytes:
    """The stored message of one decision: its sealed events, one per line (canonical JSON has no
    raw newline, so a line is always one whole event)."""
    return b"\n".join(event_bodies)


def decision_events(message_body: bytes) -> list[bytes]:
    """The event bodies of one stored decision, in order."""
    return message_body.split(b"\n")


def _fields_of(event_body: bytes) -> dict[str, Any]:
    """The parsed envelope of a stored event; {} when it is not a JSON object (a forged message:
    the follower and ``unstuck replay --verify`` report it)."""
    try:
        obj = json.loads(event_body)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def sealed_event(subject: str, body: bytes) -> tuple[dict[str, Any], list[str]]:
    """A stored event judged on its own, as ``unstuck replay --verify`` would: its fields, and what is
    wrong with it (empty when it is sealed bytes with a valid envelope stored under its own case's
    subject). Every reader that folds the stream (the broker's case book, the ledger's projector)
    applies only events with no problem, so none of them applies an event the auditor would report."""
    fields, problems = check_body(body)
    if not problems and (problem := envelope_problem(fields)) is not None:
        problems = [f"envelope: {problem}"]
    if not problems and subject != case_subject(fields["case_id"]):
        problems = [f"stored under {subject}, not its case's subject"]
    return fields, problems


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: its exact bytes (one line of its decision's message), its parsed fields and
    the stream sequence of the message that holds it."""

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
    """Where the writer believes the case ends: its last seq and hash, and the stream sequence of its
    last message (0, "" and 0 for a case with no events). An append after any other head is an
    AppendConflict."""

    seq: int = 0
    hash: str = ""
    stream_seq: int = 0


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def envelope_fields(
    case_id: str, seq: int, event: NewEvent, at: datetime, prev_hash: str, event_id: str | None = None
) -> dict[str, Any]:
    """Every field of the envelope except ``hash``; ``auth`` only where the actor's identity was checked."""
    fields = {
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
    if event.auth is not None:
        fields["auth"] = event.auth
    return fields


def seal_decision(
    case_id: str,
    head: ExpectedHead,
    events: Sequence[NewEvent],
    at: datetime,
    event_ids: Sequence[str] | None = None,
) -> list[tuple[bytes, dict[str, Any]]]:
    """The sealed events of one decision after ``head``: (body, fields with hash) each, chained."""
    sealed = []
    prev_hash = head.hash
    for i, event in enumerate(events):
        fields = envelope_fields(
            case_id, head.seq + 1 + i, event, at, prev_hash, event_ids[i] if event_ids else None
        )
        body, prev_hash = seal(fields)
        fields["hash"] = prev_hash
        sealed.append((body, fields))
    return sealed


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
        self.in_flight: dict[str, OwnDecision] = {}  # decision id -> its sealed events, while appending

    async def ensure(self) -> None:
        """Create the stream (marked with the storage format) and the heads bucket if missing;
        idempotent, safe with several brokers. Raises StoreFormatError on a stream of another format."""
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{CASE_PREFIX}.>"],
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            deny_delete=True,
            deny_purge=True,
            allow_rollup_hdrs=False,
            duplicate_window=120.0,
            allow_direct=True,  # auditors read with direct gets, which answer only the asker's inbox
            description="unstuck case events: one subject per case, one message per decision, hash-chained",
            metadata={FORMAT_METADATA_KEY: str(STORAGE_FORMAT)},
        )
        try:
            info = await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            try:
                info = await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                info = await self.js.stream_info(self.stream)  # another broker created it meanwhile
        if not (info.config.deny_delete and info.config.deny_purge):
            raise RuntimeError(
                f"stream {self.stream} exists without deny_delete/deny_purge; "
                "it cannot hold an audit record: recreate it or use another --stream"
            )
        problem = storage_format_problem(self.stream, info.config.metadata, int(info.state.messages))
        if problem is not None:
            raise StoreFormatError(problem)
        unmarked = (info.config.metadata or {}).get(FORMAT_METADATA_KEY) is None  # new and empty: mark it
        was_direct = bool(info.config.allow_direct)
        if unmarked or not was_direct:  # a stream made before direct gets: allow them
            info.config.metadata = {**(info.config.metadata or {}), **(config.metadata or {})}
            info.config.allow_direct = True
            needs = [f"metadata {FORMAT_METADATA_KEY}={STORAGE_FORMAT}"] if unmarked else []
            needs += ["direct gets allowed (allow_direct)"] if not was_direct else []
            await update_made_before(self.js, info.config, " and ".join(needs))
        await self.heads.ensure()

    async def append(
        self,
        case_id: str,
        head: ExpectedHead,
        events: Sequence[NewEvent],
        at: datetime,
        event_ids: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Append one decision (``events``) after ``head`` as one message; raises AppendConflict or
        StoreUnavailable.

        ``event_ids`` (default: new ULIDs) make a retried append idempotent: the decision id is the
        first event's id, and JetStream stores a message id once.
        """
        if not events:
            return []
        sealed = seal_decision(case_id, head, events, at, event_ids)
        subject = case_subject(case_id)
        decision_id = sealed[0][1]["event_id"]
        headers = {
            "Nats-Msg-Id": decision_id,
            "Nats-Expected-Last-Subject-Sequence": str(head.stream_seq),
        }
        self.in_flight[decision_id] = [
            (fields, e.data) for (_, fields), e in zip(sealed, events, strict=True)
        ]
        try:
            ack = await self._publish(subject, decision_body([body for body, _ in sealed]), headers)
            stream_seq = int(ack.seq)
        except AppendConflict:
            # nats-server checks the expected sequence before the duplicate window: a retry of an
            # append whose acknowledgement was lost is refused as a conflict, though it is stored
            stream_seq = await self._stored_last(subject, decision_id)
        finally:
            del self.in_flight[decision_id]
        stored = [StoredEvent(body=body, fields=fields, stream_seq=stream_seq) for body, fields in sealed]
        self.heads.note(case_id, stored[-1].seq, stored[-1].hash, stream_seq)  # written off this path
        return stored

    async def _stored_last(self, subject: str, decision_id: str) -> int:
        """The stream sequence of decision ``decision_id`` when it is the last message on ``subject``;
        else AppendConflict."""
        try:
            last = await self.js.get_msg(self.stream, subject=subject)
        except nats.js.errors.NotFoundError as exc:
            raise AppendConflict(f"nothing stored on {subject}") from exc
        except Exception as exc:
            raise StoreUnavailable(f"cannot read the last decision on {subject}: {exc}") from exc
        first = _fields_of(decision_events(bytes(last.data or b""))[0])
        if first.get("event_id") != decision_id:
            raise AppendConflict(f"another writer appended to {subject} first")
        return int(last.seq or 0)

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
        """The publish-and-retry loop: ``send`` again while no acknowledgement came back; the same
        ``Nats-Msg-Id`` makes each retry safe (JetStream stores an id once)."""
        for attempt in range(1, attempts + 1):
            try:
                return await send()
            except _NO_ACKNOWLEDGEMENT as exc:
                if attempt == attempts:
                    raise StoreUnavailable(
                        f"JetStream did not acknowledge the append: {type(exc).__name__}"
                    ) from exc
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def read_case(self, case_id: str, before: int | None = None) -> list[StoredEvent]:
        """Every stored event of one case, in order; with ``before``, only those of messages whose
        stream sequence is below it (the case as it stood when that message was written)."""
        subject = case_subject(case_id)
        out: list[StoredEvent] = []
        seq = 0
        while before is None or seq + 1 < before:
            try:
                msg = await self.js.get_msg(self.stream, seq=seq + 1, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return out
            seq = int(msg.seq or 0)
            if before is not None and seq >= before:
                return out
            for body in decision_events(bytes(msg.data or b"")):
                out.append(StoredEvent(body=body, fields=_fields_of(body), stream_seq=seq))
        return out

    async def last_seq(self) -> int:
        info = await self.js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def follow(self, on_message: OnMessage, start_seq: int = 1) -> Any:
        """Deliver every message from ``start_seq`` on, in order, then new ones as they arrive.

        The messages already stored are read first by batched direct gets, one batch in memory at a
        time (``unstuck.directget``): a broker starting without a snapshot folds years of history
        without the server pushing it all into the client's buffers. The new ones then come through
        an ordered consumer, which survives reconnects and restarts itself on a gap. Returns its
        subscription; ``on_message(stream_seq, subject, body, own)`` is awaited for each message in
        turn, ``own`` being the sealed events of a decision this store is appending right now (the
        follower can see it before the append's acknowledgement), else None.
        """
        in_flight = self.in_flight

        def own_of(headers: dict[str, str] | None) -> OwnDecision | None:
            return in_flight.get(headers.get("Nats-Msg-Id", "")) if headers and in_flight else None

        async def deliver(msg: Any) -> None:
            await on_message(msg.metadata.sequence.stream, msg.subject, msg.data, own_of(msg.headers))

        next_seq = await self._read_stored(on_message, own_of, max(start_seq, 1))
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=next_seq)
        return await self.js.subscribe(
            f"{CASE_PREFIX}.>",
            cb=deliver,
            ordered_consumer=True,
            stream=self.stream,
            config=config,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )

    async def _read_stored(
        self,
        on_message: OnMessage,
        own_of: Callable[[dict[str, str] | None], OwnDecision | None],
        seq: int,
    ) -> int:
        """Hand over the messages stored now from ``seq`` on, a batch at a time; the sequence to
        follow from next. A stream that does not answer direct gets is left to the consumer."""
        end = await self.last_seq()
        try:
            # the stream holds case subjects only: no subject filter, which costs the server a match per message
            async for got in direct_batches(
                self.js, self.stream, ">", start_seq=seq, end_seq=end, batch=HISTORY_BATCH
            ):
                for msg in got:
                    await on_message(msg.seq, msg.subject, msg.data, own_of(msg.headers))
                seq = got[-1].seq + 1
        except DirectGetError as exc:
            log.warning("stream %s read through a consumer from message %d: %s", self.stream, seq, exc)
        return seq

"""Snapshots of the open cases, stored beside the stream, so that start-up never replays history.

A snapshot holds every open case's state with the stream sequence of its last message, the count
of cases ever opened, the applicant quota's index of the day, and ``covers``: the stream sequence
up to which the states are complete. It is one object, ``<stream>`` in the JetStream object store
bucket ``UNSTUCK_SNAPSHOTS`` (chunked, with a SHA-256 digest the object store checks), written
after a start-up that had to read the stream from its start, every ``[broker] snapshot_seconds``
while cases change, and when the broker stops.

Start-up reads it back and checks it against the chain before trusting it (``verify``): for each
open case, the last message stored on its subject. If that message is the one the snapshot names,
its last event must carry the snapshot's seq and hash; if it came later than ``covers``, the
follower folds it next and the chain check of every fold proves it continues the snapshot's head;
anything else (a case the snapshot has wrong) is read back from its subject instead. The follower
then reads the stream from ``covers + 1`` only.

The state codec is exact (``decode_state(encode_state(s)) == s``, each value of its own type): plain
JSON values stay as they are, a datetime, date, tuple or frozenset is tagged with its type.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import zlib
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import nats.js.errors
import orjson
from nats.js.api import ObjectStoreConfig, StorageType

from unstuck import lifecycle as lc
from unstuck.eventstore import decision_events
from unstuck.lifecycle.state import CaseStatus, CoordinationStatus
from unstuck.schemas.coordination import Outcome
from unstuck.schemas.subjects import SNAPSHOTS_BUCKET, case_subject

from .casebook import CaseBook
from .quota import ApplicantQuota

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
INTERNED_UP_TO = 40  # characters: strings this short are shared between the states read back
VERIFY_CONCURRENCY = 64

_STATE_FIELDS = tuple(f.name for f in fields(lc.CaseState))
_COORDINATION_FIELDS = tuple(f.name for f in fields(lc.Coordination))


def _tag(value: Any) -> Any:
    """``value`` as JSON, each value that JSON would lose tagged with its type."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, tuple):
        return {"$t": [_tag(v) for v in value]}
    if isinstance(value, frozenset):
        return {"$fs": [_tag(v) for v in sorted(value)]}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, lc.Coordination):
        return {"$co": {name: _tag(getattr(value, name)) for name in _COORDINATION_FIELDS}}
    if hasattr(value, "items"):
        return {"$m": {key: _tag(v) for key, v in value.items()}}
    raise TypeError(f"a case state holds a {type(value).__name__}, which the snapshot codec cannot keep")


def _untag(value: Any) -> Any:
    if isinstance(value, str):
        # the same short words (codes, states, staff ids) recur in every case: kept once
        return sys.intern(value) if len(value) <= INTERNED_UP_TO else value
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    ((tag, inner),) = value.items()
    if tag == "$dt":
        return datetime.fromisoformat(inner)
    if tag == "$d":
        return date.fromisoformat(inner)
    if tag == "$t":
        return tuple(_untag(v) for v in inner)
    if tag == "$fs":
        return frozenset(_untag(v) for v in inner)
    if tag == "$co":
        co = {name: _untag(v) for name, v in inner.items()}
        co["status"] = CoordinationStatus(co["status"])
        co["outcome"] = Outcome(co["outcome"]) if co["outcome"] is not None else None
        return lc.Coordination(**co)
    if tag == "$m":
        return {sys.intern(key): _untag(v) for key, v in inner.items()}
    raise ValueError(f"unknown tag {tag!r} in a snapshot")


def encode_state(state: lc.CaseState) -> dict[str, Any]:
    return {name: _tag(getattr(state, name)) for name in _STATE_FIELDS}


def decode_state(encoded: dict[str, Any]) -> lc.CaseState:
    # a field added since the snapshot was written takes its default
    values = {name: _untag(encoded[name]) for name in _STATE_FIELDS if name in encoded}
    values["state"] = CaseStatus(values["state"]) if values["state"] else ""
    return lc.CaseState(**values)


@dataclass
class Snapshot:
    covers: int  # the stream sequence up to which the states are complete
    states: list[tuple[lc.CaseState, int]]  # each open case, with the stream seq of its last message
    known_cases: int
    quota: dict[str, Any]
    taken_at: float

    def encode(self, stream: str) -> bytes:
        """A header line, then one line per open case (so reading it back never holds the whole
        document as JSON values next to the states), deflated."""
        header = {
            "format": SNAPSHOT_FORMAT,
            "stream": stream,
            "covers": self.covers,
            "known_cases": self.known_cases,
            "quota": self.quota,
            "taken_at": self.taken_at,
            "states": len(self.states),
        }
        lines = [orjson.dumps(header)]
        lines += [orjson.dumps([seq, encode_state(s)]) for s, seq in self.states]
        return zlib.compress(b"\n".join(lines), 6)

    @classmethod
    def decode(cls, raw: bytes, stream: str) -> Snapshot:
        text = zlib.decompress(raw)
        end = text.find(b"\n")
        header = orjson.loads(text[: end if end >= 0 else len(text)])
        if header.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"snapshot format {header.get('format')!r}, this broker reads {SNAPSHOT_FORMAT}")
        if header.get("stream") != stream:
            raise ValueError(f"snapshot of stream {header.get('stream')!r}, not {stream!r}")
        states: list[tuple[lc.CaseState, int]] = []
        start = end + 1 if end >= 0 else len(text)
        while start < len(text):
            stop = text.find(b"\n", start)
            stop = len(text) if stop < 0 else stop
            seq, encoded = orjson.loads(text[start:stop])
            states.append((decode_state(encoded), int(seq)))
            start = stop + 1
        if len(states) != header.get("states"):
            raise ValueError(f"snapshot holds {len(states)} case(s), its header says {header.get('states')}")
        return cls(
            covers=int(header["covers"]),
            states=states,
            known_cases=int(header["known_cases"]),
            quota=header.get("quota") or {},
            taken_at=float(header.get("taken_at") or 0),
        )


@dataclass(eq=False)
class SnapshotKeeper:
    """Takes, stores, loads and verifies the snapshots of one broker's case book."""

    js: Any
    book: CaseBook
    quota: ApplicantQuota
    replicas: int = 1
    saved_covers: int = 0  # the stream sequence the last stored (or loaded) snapshot covers
    _bucket: Any = None

    @property
    def stream(self) -> str:
        return self.book.store.stream

    async def bucket(self) -> Any:
        if self._bucket is None:
            try:
                self._bucket = await self.js.object_store(SNAPSHOTS_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                self._bucket = await self.js.create_object_store(
                    SNAPSHOTS_BUCKET,
                    config=ObjectStoreConfig(
                        description="unstuck: snapshots of the open cases, one object per case stream",
                        storage=StorageType.FILE,
                        replicas=self.replicas,
                    ),
                )
        return self._bucket

    def take(self) -> Snapshot:
        """The book as it is now (states are immutable: the copy is a list of references)."""
        book = self.book
        return Snapshot(
            covers=book.applied_seq,
            states=[(s, book.stream_seqs.get(s.case_id, 0)) for s in book.states.values()],
            known_cases=book.known_cases,
            quota=self.quota.export(),
            taken_at=time.time(),
        )

    async def save(self) -> int:
        """Store a snapshot of the book now; the sequence it covers."""
        snapshot = self.take()
        raw = await asyncio.to_thread(snapshot.encode, self.stream)
        bucket = await self.bucket()
        await bucket.put(self.stream, raw)
        self.saved_covers = snapshot.covers
        log.info(
            "snapshot of %d open case(s) stored, covering stream %s up to message %d (%d bytes)",
            len(snapshot.states),
            self.stream,
            snapshot.covers,
            len(raw),
        )
        return snapshot.covers

    async def load(self, last_seq: int) -> Snapshot | None:
        """The stored snapshot if there is one this stream can continue from, else None (said why)."""
        try:
            bucket = await self.bucket()
            result = await bucket.get(self.stream)
        except nats.js.errors.ObjectNotFoundError:
            return None
        except Exception as exc:  # a damaged object: start from the stream instead
            log.warning("snapshot of %s not read (%s): reading the stream from its start", self.stream, exc)
            return None
        try:
            snapshot = Snapshot.decode(bytes(result.data or b""), self.stream)
        except Exception as exc:
            log.warning("snapshot of %s not used (%s): reading the stream from its start", self.stream, exc)
            return None
        if snapshot.covers > last_seq:
            log.warning(
                "snapshot of %s covers message %d but the stream ends at %d (recreated?): "
                "reading the stream from its start",
                self.stream,
                snapshot.covers,
                last_seq,
            )
            return None
        return snapshot

    async def verify(self, snapshot: Snapshot) -> list[str]:
        """Check each open case of ``snapshot`` against its subject's last message; the cases it has
        wrong (to be read back from their subjects)."""
        limit = asyncio.Semaphore(VERIFY_CONCURRENCY)
        wrong: list[str] = []

        async def check(state: lc.CaseState, stream_seq: int) -> None:
            async with limit:
                try:
                    msg = await self.js.get_last_msg(self.stream, case_subject(state.case_id))
                except nats.js.errors.NotFoundError:
                    wrong.append(state.case_id)
                    return
            seq = int(msg.seq or 0)
            if seq > snapshot.covers:
                return  # changed since: the follower folds it next, and each fold checks the chain
            if seq != stream_seq or not _ends_with(bytes(msg.data or b""), state):
                wrong.append(state.case_id)

        await asyncio.gather(*(check(s, seq) for s, seq in snapshot.states))
        return wrong


def _ends_with(body: bytes, state: lc.CaseState) -> bool:
    """Whether the decision ``body``'s last event is the state's head (its seq and hash)."""
    events = decision_events(body)
    if not events:
        return False
    try:
        last = orjson.loads(events[-1])
    except orjson.JSONDecodeError:
        return False
    return isinstance(last, dict) and last.get("seq") == state.seq and last.get("hash") == state.head_hash

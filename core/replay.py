"""Audit replay: rebuild every case from the stream itself and prove the record intact.

The auditor does not trust the broker: this module reads the JetStream stream directly (an ordered
consumer from the first message), folds every case with the same ``lifecycle.evolve`` the broker
uses, and, with ``verify``, checks each event's exact stored bytes (canonical JSON, hash), the chain
of each case (seq, prev_hash), event ids, schemas, subjects, and each case's head against the one
the broker recorded outside the stream (the heads KV bucket). docs/audit.md explains every finding.

Memory grows with the number of cases: per case the replayed state and a few numbers (plus, while
verifying, 16 bytes per event for the duplicate-id index). The event bodies are not kept.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import re
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from unstuck.schemas.events import parse_payload
from unstuck.schemas.subjects import HEADS_BUCKET, STREAM

from . import lifecycle as lc
from .canonical import canonical_json

# --- findings -------------------------------------------------------------------------------------

FINDINGS: dict[str, str] = {
    "unreadable": "the stored body is not a JSON object; nothing else can be checked",
    "not_canonical": "the stored bytes are not the canonical JSON of their content (edited after sealing)",
    "hash_mismatch": "the event's hash does not match its content: the event was changed",
    "schema_invalid": "the envelope or the payload does not match the event schema of its type and version",
    "subject_mismatch": "the event is stored under another case's subject than the case_id in its body",
    "seq_gap": "sequence numbers are missing in the middle of the case: events were dropped",
    "seq_repeat": "a sequence number of the case occurs twice: a forged or duplicated event",
    "seq_out_of_order": "an event is stored after a later event of the same case: events were reordered",
    "prev_hash_mismatch": "the event's prev_hash is not the hash of the case's previous event: the chain is broken",
    "duplicate_event_id": "the same event id occurs in more than one stored event",
    "head_missing": "the broker recorded no head for a case that has events in the stream",
    "head_mismatch": "the head the broker recorded outside the stream differs from the stream at that seq",
    "tail_missing": "the stream ends before the head the broker recorded: the case's tail was cut off",
    "untracked_tail": "the stream has events after the head the broker recorded outside the stream",
}
"""Every finding code with its one-line meaning; docs/audit.md gives the step-by-step reading."""

ENVELOPE_KEYS = frozenset(
    {"event_id", "case_id", "seq", "type", "at", "actor", "data", "prev_hash", "hash", "v"}
)
_EVENT_ID = re.compile(r"[0-9A-Za-z_-]{16,64}")
_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TYPE = re.compile(r"[a-z_]+\.[a-z_]+")
_ACTOR = re.compile(r"[^\s.*>]{1,64}")
_HASH = re.compile(r"(?:[0-9a-f]{64})?")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with the record: a stable code, where (case, seq, stream seq) and what."""

    code: str
    case_id: str | None
    seq: int | None
    stream_seq: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "case_id": self.case_id,
            "seq": self.seq,
            "stream_seq": self.stream_seq,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"case {self.case_id}" if self.case_id else "stream"
        if self.seq is not None:
            where += f" seq {self.seq}"
        if self.stream_seq is not None:
            where += f" (stream seq {self.stream_seq})"
        return f"{self.code}: {where}: {self.message}"


class ReplayError(Exception):
    """The stream could not be read (missing, unreachable); the message says what to do."""


# --- per case -------------------------------------------------------------------------------------


@dataclass(slots=True)
class CaseReplay:
    """One case as replayed: its state and the bookkeeping that verification needs (no bodies)."""

    case_id: str
    state: lc.CaseState
    events: int = 0
    last_seq: int = 0
    last_hash: str = ""
    last_stream_seq: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    in_window: bool = False
    frozen: bool = False
    stopped: str | None = None  # why the state stopped folding: "until" or the finding that broke it
    findings: int = 0
    head_seen: str | None = None  # stored hash of this case's event at the recorded head's seq
    holes: list[list[int]] | None = None  # missing seq ranges [lo, hi], only when there are gaps
    edge_hash: dict[int, str] | None = None  # hashes of events beside a hole
    edge_prev: dict[int, str] | None = None  # prev_hash claimed by events beside a hole

    @property
    def intact(self) -> bool:
        return self.findings == 0


@dataclass
class Report:
    """What a replay found: every case's state, and with verification every finding."""

    stream: str
    verified: bool
    subject_prefix: str | None = None
    events: int = 0
    first_stream_seq: int = 0
    last_stream_seq: int = 0
    cases: dict[str, CaseReplay] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    heads_checked: int = 0
    moved_during_replay: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    case_filter: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when verification found nothing wrong (always True without verification)."""
        return not self.findings

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.code] = out.get(f.code, 0) + 1
        return out

    def selected(self) -> list[CaseReplay]:
        """The cases the report is about: all, or those active in the --since/--until window."""
        cases = sorted(self.cases.values(), key=lambda c: c.case_id)
        if self.since is not None:
            return [c for c in cases if c.in_window]
        if self.until is not None:  # a case opened after that moment did not exist yet
            until = self.until
            return [c for c in cases if c.first_at is not None and c.first_at <= until]
        return cases

    def findings_of(self, case_id: str) -> list[Finding]:
        return [f for f in self.findings if f.case_id == case_id]

    def summary(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "verified": self.verified,
            "ok": self.ok,
            "events": self.events,
            "cases": len(self.cases),
            "findings": len(self.findings),
            "by_code": self.counts(),
            "heads_checked": self.heads_checked,
            "first_stream_seq": self.first_stream_seq,
            "last_stream_seq": self.last_stream_seq,
            "seconds": round(self.seconds, 3),
        }


# --- integrity of one body ------------------------------------------------------------------------


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""The canonical form of ``canonical.canonical_json``, built once instead of on every call."""
_DECODE = json.JSONDecoder().decode


def sealed_ok(body: bytes, obj: dict[str, Any]) -> tuple[bool, bool]:
    """(canonical, hash matches) for a stored body, the same verdict as ``canonical.check_body``.

    When the body is canonical, the bytes the hash was computed over are the body without its
    ``,"hash":"<hex>"`` member, so the second canonical dump is replaced by cutting those bytes out.
    The member is found from the end: the envelope keys sorted after ``hash`` (prev_hash, seq, type,
    v) hold scalars, and a quote inside a JSON string is always escaped, so the last occurrence is
    the top-level one.
    """
    canonical = _ENCODER.encode(obj).encode() == body
    stored = obj.get("hash")
    if (
        canonical
        and type(stored) is str
        and obj.keys() <= ENVELOPE_KEYS
        and "event_id" in obj
        and type(obj.get("prev_hash", "")) is str
        and type(obj.get("type", "")) is str
        and type(obj.get("seq", 0)) is int
        and type(obj.get("v", 0)) is int
        and _HEX64.fullmatch(stored)
    ):
        member = b',"hash":"' + stored.encode() + b'"'
        at = body.rfind(member)
        if at >= 0:
            digest = hashlib.sha256(body[:at] + body[at + len(member) :]).hexdigest()
            return True, digest == stored
    rest = {k: v for k, v in obj.items() if k != "hash"}
    return canonical, hashlib.sha256(canonical_json(rest)).hexdigest() == stored


def envelope_problem(obj: dict[str, Any]) -> str | None:
    """What is wrong with the envelope fields (not the payload), or None."""
    keys = obj.keys()
    if keys != ENVELOPE_KEYS:
        missing = sorted(ENVELOPE_KEYS - keys - {"v"})
        extra = sorted(keys - ENVELOPE_KEYS)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing field(s) {', '.join(missing)}")
            if extra:
                parts.append(f"unknown field(s) {', '.join(extra)}")
            return "; ".join(parts)
    checks = (
        ("event_id", _EVENT_ID),
        ("case_id", _CASE_ID),
        ("type", _TYPE),
        ("actor", _ACTOR),
        ("prev_hash", _HASH),
        ("hash", _HASH),
    )
    for name, pattern in checks:
        value = obj[name]
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return f"{name} {value!r} is not valid"
    seq = obj["seq"]
    if type(seq) is not int or seq < 1:
        return f"seq {seq!r} is not a positive integer"
    v = obj.get("v", 1)
    if type(v) is not int or v < 1:
        return f"v {v!r} is not a positive integer"
    if not isinstance(obj["data"], dict):
        return "data is not an object"
    at = obj["at"]
    if not isinstance(at, str):
        return f"at {at!r} is not a timestamp"
    try:
        instant = datetime.fromisoformat(at)
    except ValueError:
        return f"at {at!r} is not an ISO 8601 timestamp"
    if instant.tzinfo is None:
        return f"at {at!r} has no time zone"
    return None


# --- the replayer (pure: bytes in, states and findings out) ---------------------------------------


class Replayer:
    """Feed it the stored messages in stream order; it folds the cases and, verifying, collects findings.

    No I/O: the readers below deliver ``(subject, stream_seq, body)`` and the recorded heads.
    """

    def __init__(
        self,
        stream: str = STREAM,
        verify: bool = False,
        subject_prefix: str | None = None,
        heads: Mapping[str, Head | Mapping[str, Any]] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        case_id: str | None = None,
    ) -> None:
        self.verify = verify
        self.prefix = subject_prefix
        self.heads: dict[str, Head] = {k: compact_head(v) for k, v in (heads or {}).items()}
        self.until = until
        self.since = since
        self.case_filter = case_id
        self.report = Report(
            stream=stream,
            verified=verify,
            subject_prefix=subject_prefix,
            since=since,
            until=until,
            case_filter=case_id,
        )
        self.cases = self.report.cases
        # duplicate event ids: 64-bit fingerprints and stream seqs, bucketed so the final scan is small
        self._ids: list[array[int]] = [array("q") for _ in range(256)]
        self._id_seqs: list[array[int]] = [array("Q") for _ in range(256)]

    # one stored message ---------------------------------------------------------------------------

    def feed(self, subject: str, stream_seq: int, body: bytes) -> None:
        report = self.report
        if not report.first_stream_seq:
            report.first_stream_seq = stream_seq
        report.last_stream_seq = stream_seq
        try:
            obj = _DECODE(body.decode())
        except ValueError as exc:  # UnicodeDecodeError too
            obj = exc
        if not isinstance(obj, dict):
            if self.case_filter and subject.rpartition(".")[2] != self.case_filter:
                return
            report.events += 1
            if self.verify:
                self._find(
                    "unreadable",
                    subject.rpartition(".")[2] or None,
                    None,
                    stream_seq,
                    f"body on {subject} is not a JSON object ({obj if isinstance(obj, Exception) else type(obj).__name__})",
                )
            return
        case_id = obj.get("case_id")
        if not isinstance(case_id, str) or not case_id:
            case_id = subject.rpartition(".")[2]
        if self.case_filter and case_id != self.case_filter:
            return
        report.events += 1
        track = self.cases.get(case_id)
        if track is None:
            track = self.cases[case_id] = CaseReplay(case_id, lc.CaseState(case_id=case_id))
        track.events += 1
        track.last_stream_seq = stream_seq
        seq = obj.get("seq")
        seq = seq if type(seq) is int else None
        intact, data = True, None
        if self.verify:
            intact, data = self._check_event(subject, stream_seq, body, obj, case_id, seq, track)
        if seq is None:
            return
        self._fold(track, obj, seq, intact, data)

    def _check_event(
        self,
        subject: str,
        stream_seq: int,
        body: bytes,
        obj: dict[str, Any],
        case_id: str,
        seq: int | None,
        track: CaseReplay,
    ) -> tuple[bool, Any]:
        """Every per-event check; returns (intact, the validated payload or None)."""
        intact = True
        canonical, hash_ok = sealed_ok(body, obj)
        if not canonical:
            intact = False
            self._find(
                "not_canonical",
                case_id,
                seq,
                stream_seq,
                "stored bytes are not canonical JSON (sorted keys, no spaces, UTF-8)",
                track,
            )
        if not hash_ok:
            intact = False
            self._find(
                "hash_mismatch",
                case_id,
                seq,
                stream_seq,
                f"stored hash {str(obj.get('hash'))[:12]}… does not match the event's content",
                track,
            )
        expected = f"{self.prefix}.{case_id}" if self.prefix else None
        if (expected is not None and subject != expected) or subject.rpartition(".")[2] != case_id:
            self._find(
                "subject_mismatch",
                case_id,
                seq,
                stream_seq,
                f"stored on {subject}, but the body belongs to case {case_id}",
                track,
            )
        problem = envelope_problem(obj)
        data = None
        if problem is None:
            try:
                data = parse_payload(obj["type"], obj["data"], obj.get("v", 1))
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            intact = False
            self._find("schema_invalid", case_id, seq, stream_seq, problem, track)
        event_id = obj.get("event_id")
        if isinstance(event_id, str):
            fp = hash(event_id)
            self._ids[fp & 255].append(fp)
            self._id_seqs[fp & 255].append(stream_seq)
        if seq is not None:
            intact = self._check_chain(track, obj, seq, stream_seq) and intact
        return intact, data

    def _check_chain(self, track: CaseReplay, obj: dict[str, Any], seq: int, stream_seq: int) -> bool:
        """Sequence and prev_hash of one event against what came before it in the case."""
        case_id = track.case_id
        prev_hash = obj.get("prev_hash")
        stored_hash = str(obj.get("hash"))
        head = self.heads.get(case_id)
        expected = track.last_seq + 1
        ok = True
        if seq == expected:
            if prev_hash != track.last_hash:
                ok = False
                what = (
                    "the first event must have an empty prev_hash"
                    if seq == 1
                    else (
                        f"prev_hash {str(prev_hash)[:12]}… is not the hash {track.last_hash[:12]}… of seq {seq - 1}"
                    )
                )
                self._find("prev_hash_mismatch", case_id, seq, stream_seq, what, track)
            track.last_seq, track.last_hash = seq, stored_hash
        elif seq > expected:
            ok = False
            if track.holes is None:
                track.holes, track.edge_hash, track.edge_prev = [], {}, {}
            assert track.edge_hash is not None and track.edge_prev is not None
            track.holes.append([expected, seq - 1])
            if track.last_seq:
                track.edge_hash[track.last_seq] = track.last_hash
            track.edge_prev[seq] = str(prev_hash)
            track.edge_hash[seq] = stored_hash
            track.last_seq, track.last_hash = seq, stored_hash
        else:
            ok = False
            hole = self._hole_of(track, seq)
            if hole is None:
                self._find(
                    "seq_repeat",
                    case_id,
                    seq,
                    stream_seq,
                    f"seq {seq} of case {case_id} is stored again (the case is at seq {track.last_seq})",
                    track,
                )
                return False
            self._fill(track, hole, seq)
            assert track.edge_hash is not None and track.edge_prev is not None
            self._find(
                "seq_out_of_order",
                case_id,
                seq,
                stream_seq,
                f"seq {seq} is stored after seq {track.last_seq} of the same case",
                track,
            )
            before = "" if seq == 1 else track.edge_hash.get(seq - 1)
            if before is not None and prev_hash != before:
                self._find(
                    "prev_hash_mismatch",
                    case_id,
                    seq,
                    stream_seq,
                    f"prev_hash {str(prev_hash)[:12]}… is not the hash of seq {seq - 1}",
                    track,
                )
            after = track.edge_prev.get(seq + 1)
            if after is not None and after != stored_hash:
                self._find(
                    "prev_hash_mismatch",
                    case_id,
                    seq + 1,
                    None,
                    f"prev_hash {after[:12]}… is not the hash {stored_hash[:12]}… of seq {seq}",
                    track,
                )
            track.edge_hash[seq] = stored_hash
            track.edge_prev[seq] = str(prev_hash)
        if head is not None and seq == head[0] and track.head_seen is None:
            track.head_seen = stored_hash
        return ok

    @staticmethod
    def _hole_of(track: CaseReplay, seq: int) -> list[int] | None:
        for hole in track.holes or ():
            if hole[0] <= seq <= hole[1]:
                return hole
        return None

    @staticmethod
    def _fill(track: CaseReplay, hole: list[int], seq: int) -> None:
        assert track.holes is not None
        track.holes.remove(hole)
        lo, hi = hole
        if lo < seq:
            track.holes.append([lo, seq - 1])
        if seq < hi:
            track.holes.append([seq + 1, hi])

    def _fold(self, track: CaseReplay, obj: dict[str, Any], seq: int, intact: bool, data: Any) -> None:
        """Evolve the case's state by this event, as the broker would; stop at the first break."""
        at_text = obj.get("at")
        at: datetime | None = None
        if self.since is not None or self.until is not None or not track.frozen:
            try:
                at = datetime.fromisoformat(at_text) if isinstance(at_text, str) else None
            except ValueError:
                at = None
            if at is not None and at.tzinfo is None:
                at = None
        if at is not None:
            if track.first_at is None:
                track.first_at = at
            track.last_at = at
            if (self.since is None or at >= self.since) and (self.until is None or at <= self.until):
                track.in_window = True
        if track.frozen:
            return
        state = track.state
        if not intact or at is None:
            track.frozen = True
            track.stopped = f"record broken at seq {seq}"
            return
        if seq <= state.seq:
            return  # a repeat: the broker skips it too
        if seq != state.seq + 1 or obj.get("prev_hash") != state.head_hash:
            track.frozen = True
            track.stopped = f"record broken at seq {seq}"
            return
        if self.until is not None and at > self.until:
            track.frozen = True
            track.stopped = "until"
            return
        if data is None:  # not verifying: the payload is validated here, once
            try:
                data = parse_payload(obj["type"], obj["data"], obj.get("v", 1))
            except (ValueError, KeyError, TypeError) as exc:
                track.frozen = True
                track.stopped = f"seq {seq}: {exc}"
                return
        meta = lc.EventMeta(seq=seq, at=at, hash=str(obj.get("hash")))
        try:
            track.state = lc.evolve(state, obj["type"], data, meta)
        except Exception as exc:  # a valid event the lifecycle cannot fold: report, keep going
            track.frozen = True
            track.stopped = f"seq {seq}: evolve failed: {exc}"

    def _find(
        self,
        code: str,
        case_id: str | None,
        seq: int | None,
        stream_seq: int | None,
        message: str,
        track: CaseReplay | None = None,
    ) -> None:
        self.report.findings.append(Finding(code, case_id, seq, stream_seq, message))
        if track is None and case_id is not None:
            track = self.cases.get(case_id)
        if track is not None:
            track.findings += 1

    # after the last message ----------------------------------------------------------------------

    def duplicate_candidates(self) -> list[list[int]]:
        """Groups of stream seqs whose event ids have the same 64-bit fingerprint (to be confirmed)."""
        groups: list[list[int]] = []
        for fps, seqs in zip(self._ids, self._id_seqs, strict=True):
            if len(set(fps)) == len(fps):
                continue
            where: dict[int, list[int]] = {}
            for fp, sseq in zip(fps, seqs, strict=True):
                where.setdefault(fp, []).append(sseq)
            groups += [g for g in where.values() if len(g) > 1]
        return groups

    def finish(self, duplicates: list[list[tuple[int, str, str, int | None]]] | None = None) -> Report:
        """Findings that need the whole stream: gaps left open, duplicate ids, the recorded heads.

        ``duplicates`` are the confirmed groups of (stream_seq, event_id, case_id, seq).
        """
        if not self.verify:
            return self.report
        for track in self.cases.values():
            for lo, hi in sorted(track.holes or ()):
                span = f"seq {lo}" if lo == hi else f"seq {lo}-{hi}"
                self._find(
                    "seq_gap",
                    track.case_id,
                    lo,
                    None,
                    f"{span} missing: no stored event between seq {lo - 1} and seq {hi + 1}",
                    track,
                )
        for group in duplicates or ():
            first = group[0]
            for sseq, event_id, case_id, seq in group[1:]:
                self._find(
                    "duplicate_event_id",
                    case_id,
                    seq,
                    sseq,
                    f"event id {event_id} was already stored at stream seq {first[0]} (case {first[2]} seq {first[3]})",
                )
        self.check_heads()
        self.report.findings.sort(key=_finding_order)
        return self.report

    def check_heads(self, only: set[str] | None = None) -> None:
        """Compare each case's stream tail with the head the broker recorded outside the stream."""
        names = set(self.cases) | set(self.heads)
        if self.case_filter:
            names &= {self.case_filter}
        if only is not None:
            names &= only
        for case_id in sorted(names):
            finding = self.head_finding(case_id)
            if finding is not None:
                self._find(*finding)
        self.report.heads_checked = sum(1 for c in names if c in self.heads)

    def head_finding(self, case_id: str) -> tuple[str, str, int | None, int | None, str] | None:
        track = self.cases.get(case_id)
        head = self.heads.get(case_id)
        if head is None:
            if track is None:
                return None
            return (
                "head_missing",
                case_id,
                track.last_seq,
                None,
                f"no head recorded outside the stream for a case with {track.events} event(s)",
            )
        head_seq, head_hash, _ = head
        last = track.last_seq if track else 0
        if last < head_seq:
            held = f"the stream holds seq 1-{last}" if last else "the stream holds no event of this case"
            return (
                "tail_missing",
                case_id,
                last + 1,
                None,
                f"the broker recorded head seq {head_seq}, but {held}: seq {last + 1}-{head_seq} cut off",
            )
        assert track is not None
        if track.head_seen != head_hash:
            seen = (track.head_seen or "none")[:12]
            return (
                "head_mismatch",
                case_id,
                head_seq,
                None,
                f"the broker recorded hash {head_hash[:12]}… at seq {head_seq}; the stream has {seen}…",
            )
        if last > head_seq:
            return (
                "untracked_tail",
                case_id,
                head_seq + 1,
                None,
                f"the stream has seq {head_seq + 1}-{last} after the recorded head seq {head_seq}",
            )
        return None


_ORDER = {code: i for i, code in enumerate(FINDINGS)}


def _finding_order(f: Finding) -> tuple[str, int, int, int]:
    return (f.case_id or "", f.seq if f.seq is not None else -1, f.stream_seq or 0, _ORDER.get(f.code, 99))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The replay keeps many long-lived objects: the cyclic collector would rescan them again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- reading the stream ---------------------------------------------------------------------------


def _jetstream(target: Client | JetStreamContext) -> JetStreamContext:
    return target if isinstance(target, JetStreamContext) else target.jetstream()


def _ack_fields(reply: str) -> tuple[int, int]:
    """(stream seq, pending) from a JetStream delivery's reply subject ($JS.ACK...)."""
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[8])
    return int(tokens[7]), int(tokens[10])


class _Restart(Exception):
    """The delivery skipped a message (a reconnect) or the consumer went away: start a new consumer."""


async def read_ordered(
    js: JetStreamContext,
    stream: str,
    subject: str,
    on_message: Callable[[Any, int], None],
    end_seq: int | None = None,
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
    batch: int = 2000,
    stall_seconds: float = 20.0,
) -> int:
    """Deliver every message of ``subject`` in ``stream`` once, in order, to ``on_message(msg, stream_seq)``.

    A pull consumer without acks, read in batches with the next batch asked for while the current
    one is processed, into a plain subscription whose callback runs ``on_message`` inline: no task
    per message, and no flow-control pauses when processing is slower than the network. A skipped
    delivery (a reconnect) starts a new consumer after the last message handed over. Stops at
    ``end_seq`` or when nothing is pending; returns the number of messages delivered.
    """
    nc: Client = js._nc
    api_prefix: str = getattr(js, "_prefix", "$JS.API")
    delivered = 0
    last_sseq = 0
    restarts = 0
    while True:
        policy = deliver_policy
        start_seq = None
        if last_sseq and deliver_policy is DeliverPolicy.ALL:
            policy, start_seq = DeliverPolicy.BY_START_SEQUENCE, last_sseq + 1
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=policy,
            opt_start_seq=start_seq,
            filter_subject=None if subject == ">" else subject,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=60.0,
            max_waiting=8,
        )
        info = await js.add_consumer(stream, config)
        if info.num_pending == 0:
            await _delete_consumer(js, stream, info.name)
            return delivered
        try:
            got, last_sseq = await _pull(
                nc,
                js,
                f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{info.name}",
                on_message,
                end_seq,
                batch,
                stall_seconds,
                last_sseq,
            )
            delivered += got
            return delivered
        except _Restart as restart:
            got, last_sseq = restart.args
            delivered += got
            restarts = 0 if got else restarts + 1
            if deliver_policy is not DeliverPolicy.ALL or restarts > 3:
                raise ReplayError(f"stream {stream}: delivery broke off; try again") from None
        finally:
            await _delete_consumer(js, stream, info.name)


async def _delete_consumer(js: JetStreamContext, stream: str, name: str) -> None:
    try:
        await js.delete_consumer(stream, name)
    except Exception:  # an ephemeral consumer also goes away on its own (inactive_threshold)
        pass


async def _pull(
    nc: Client,
    js: JetStreamContext,
    next_subject: str,
    on_message: Callable[[Any, int], None],
    end_seq: int | None,
    batch: int,
    stall_seconds: float,
    last_sseq: int,
) -> tuple[int, int]:
    done = asyncio.Event()
    inbox = nc.new_inbox()
    request = json.dumps({"batch": batch, "expires": int(stall_seconds * 1e9)}).encode()
    count = 0
    cseq = 0
    failure: list[BaseException] = []

    async def deliver(msg: Any) -> None:
        nonlocal count, cseq, last_sseq
        if done.is_set():
            return
        if not msg.reply:  # status: 408 request expired, 409 consumer gone or limits, 100 heartbeat
            status = (msg.headers or {}).get("Status", "")
            if status == "408":
                await nc.publish(next_subject, request, reply=inbox)
            elif status == "409":
                failure.append(_Restart(count, last_sseq))
                done.set()
            return
        tokens = msg.reply.split(".")
        if len(tokens) == 9:
            sseq, dseq, pending = int(tokens[5]), int(tokens[6]), int(tokens[8])
        else:
            sseq, dseq, pending = int(tokens[7]), int(tokens[8]), int(tokens[10])
        if dseq != cseq + 1:
            failure.append(_Restart(count, last_sseq))
            done.set()
            return
        cseq = dseq
        try:
            on_message(msg, sseq)
        except BaseException as exc:  # surfaced to the caller, not to nats-py's error callback
            failure.append(exc)
            done.set()
            return
        count += 1
        last_sseq = sseq
        if pending == 0 or (end_seq is not None and sseq >= end_seq):
            done.set()
        elif count % batch == 0:
            await nc.publish(next_subject, request, reply=inbox)

    sub = await nc.subscribe(inbox, cb=deliver, pending_msgs_limit=-1, pending_bytes_limit=-1)
    try:
        await nc.publish(next_subject, request, reply=inbox)
        await nc.publish(next_subject, request, reply=inbox)
        seen = -1
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout=stall_seconds * 1.5)
            except TimeoutError:
                if count == seen:
                    failure.append(_Restart(count, last_sseq))
                    break
                seen = count
    finally:
        try:
            await sub.unsubscribe()
        except Exception:
            pass
    if failure:
        raise failure[0]
    return count, last_sseq


Head = tuple[int, str, int]
"""A recorded head, compactly: (seq, hash, stream seq); a hundred thousand cases fit in a few MB."""


def compact_head(value: Head | Mapping[str, Any]) -> Head:
    if isinstance(value, tuple):
        return value
    try:
        return int(value.get("seq", -1)), str(value.get("hash", "")), int(value.get("stream_seq", 0))
    except (TypeError, ValueError):
        return -1, f"unreadable head value {value!r:.40}", 0


async def read_heads(js: JetStreamContext, bucket: str = HEADS_BUCKET) -> dict[str, Head]:
    """Every case head the broker recorded in the KV bucket, read in one pass over its stream."""
    heads: dict[str, Head] = {}
    prefix = f"$KV.{bucket}."
    try:
        await js.stream_info(f"KV_{bucket}")
    except nats.js.errors.NotFoundError:
        return heads

    def take(msg: Any, sseq: int) -> None:
        key = msg.subject[len(prefix) :]
        op = (msg.headers or {}).get("KV-Operation")
        if op in ("DEL", "PURGE") or not msg.data:
            heads.pop(key, None)
            return
        try:
            value = json.loads(msg.data)
        except ValueError:
            value = None
        if isinstance(value, dict):
            heads[key] = compact_head(value)
        else:
            heads[key] = (-1, f"unreadable head value {msg.data[:40]!r}", 0)

    await read_ordered(js, f"KV_{bucket}", f"{prefix}>", take, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
    return heads


async def read_head(js: JetStreamContext, bucket: str, case_id: str) -> dict[str, Any] | None:
    try:
        kv = await js.key_value(bucket)
        entry = await kv.get(case_id)
    except (
        nats.js.errors.BucketNotFoundError,
        nats.js.errors.KeyNotFoundError,
        nats.js.errors.NotFoundError,
    ):
        return None
    if not entry.value:
        return None
    value = json.loads(entry.value)
    return value if isinstance(value, dict) else None


def stream_prefix(subjects: list[str] | None) -> str | None:
    """The case subjects' prefix of a stream that holds ``<prefix>.<case_id>``: ``unstuck.case`` for ``unstuck.case.>``."""
    if subjects and len(subjects) == 1 and subjects[0].endswith((".>", ".*")):
        return subjects[0][:-2]
    return None


Progress = Callable[[int, int], None]


async def replay(
    target: Client | JetStreamContext,
    stream: str = STREAM,
    *,
    verify: bool = False,
    case_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    heads_bucket: str = HEADS_BUCKET,
    progress: Progress | None = None,
) -> Report:
    """Rebuild every case (or one) from ``stream``; with ``verify``, also prove the record intact.

    ``until`` gives the states as they were at that instant; ``since`` narrows the report to cases
    with events from that instant on. Verification always covers every event read.
    """
    js = _jetstream(target)
    started = time.perf_counter()
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError as exc:
        raise ReplayError(f"stream {stream} not found: check --stream and the server (NATS_URL)") from exc
    prefix = stream_prefix(info.config.subjects)
    heads: dict[str, Head] = {}
    if verify:
        if case_id is not None:
            head = await read_head(js, heads_bucket, case_id)
            heads = {case_id: compact_head(head)} if head else {}
        else:
            heads = await read_heads(js, heads_bucket)
    info = await js.stream_info(stream)  # after the heads: a head written meanwhile is not ahead of us
    end_seq = int(info.state.last_seq)
    first_seq = int(info.state.first_seq)
    replayer = Replayer(stream, verify, prefix, heads, since, until, case_id)
    total = max(int(info.state.messages), 0)

    with _collector_paused():
        if case_id is not None and prefix is not None:
            await _read_case(js, stream, f"{prefix}.{case_id}", replayer, end_seq)
        elif total:
            done = 0

            def take(msg: Any, sseq: int) -> None:
                nonlocal done
                replayer.feed(msg.subject, sseq, msg.data)
                done += 1
                if progress is not None and not done & 4095:
                    progress(done, total)

            subject = f"{prefix}.>" if prefix else ">"
            await read_ordered(js, stream, subject, take, end_seq=end_seq)
            if progress is not None:
                progress(done, total)
    if first_seq and not replayer.report.first_stream_seq:
        replayer.report.first_stream_seq = first_seq
    duplicates = await _confirm_duplicates(js, stream, replayer) if verify else None
    report = replayer.finish(duplicates)
    if verify:
        await _recheck_moved_heads(js, heads_bucket, replayer)
    report.seconds = time.perf_counter() - started
    return report


async def verify_stream(
    target: Client | JetStreamContext,
    stream: str = STREAM,
    *,
    case_id: str | None = None,
    heads_bucket: str = HEADS_BUCKET,
    progress: Progress | None = None,
) -> Report:
    """``unstuck replay --verify`` as a function: ``report.ok``, ``report.findings``, ``report.summary()``."""
    return await replay(
        target, stream, verify=True, case_id=case_id, heads_bucket=heads_bucket, progress=progress
    )


async def _read_case(
    js: JetStreamContext, stream: str, subject: str, replayer: Replayer, end_seq: int
) -> None:
    """One case's subject, message by message (direct gets: no consumer for a few dozen events)."""
    seq = 0
    while seq < end_seq:
        try:
            msg = await js.get_msg(stream, seq=seq + 1, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return
        seq = int(msg.seq or 0)
        if seq > end_seq:
            return
        replayer.feed(str(msg.subject or subject), seq, bytes(msg.data or b""))


async def _confirm_duplicates(
    js: JetStreamContext, stream: str, replayer: Replayer
) -> list[list[tuple[int, str, str, int | None]]]:
    """Fetch the few messages whose id fingerprints collide and keep the groups with truly equal ids."""
    confirmed: list[list[tuple[int, str, str, int | None]]] = []
    for group in replayer.duplicate_candidates():
        by_id: dict[str, list[tuple[int, str, str, int | None]]] = {}
        for sseq in sorted(group):
            try:
                msg = await js.get_msg(stream, seq=sseq)
                obj = json.loads(bytes(msg.data or b""))
            except (nats.js.errors.NotFoundError, ValueError):
                continue
            seq = obj.get("seq") if type(obj.get("seq")) is int else None
            event_id = str(obj.get("event_id"))
            by_id.setdefault(event_id, []).append((sseq, event_id, str(obj.get("case_id")), seq))
        confirmed += [g for g in by_id.values() if len(g) > 1]
    return confirmed


async def _recheck_moved_heads(js: JetStreamContext, bucket: str, replayer: Replayer) -> None:
    """A case the broker moved on while we read is not a finding: read its head again and judge by it.

    The fresh head clears the case when it is the last event we read, or lies beyond what we read.
    """
    report = replayer.report
    head_codes = {"head_missing", "head_mismatch", "tail_missing", "untracked_tail"}
    flagged = {f.case_id for f in report.findings if f.code in head_codes and f.case_id}
    if not flagged or len(flagged) > 1000:
        return
    for case_id in sorted(flagged):
        fresh = await read_head(js, bucket, case_id)
        if fresh is None:
            continue
        seq, digest, stream_seq = compact_head(fresh)
        if (seq, digest, stream_seq) == replayer.heads.get(case_id):
            continue
        track = replayer.cases.get(case_id)
        last_seq = track.last_seq if track else 0
        consistent = track is not None and seq == last_seq and digest == track.last_hash
        beyond = seq > last_seq and stream_seq > report.last_stream_seq
        if consistent or beyond:
            keep = [f for f in report.findings if not (f.case_id == case_id and f.code in head_codes)]
            if track is not None:
                track.findings -= len(report.findings) - len(keep)
            report.findings[:] = keep
            report.moved_during_replay.append(case_id)

"""The pure replayer: stored bodies in, case states and findings out. No I/O, no clock.

Fed one stored message at a time (its bytes, subject and stream sequence) by whoever reads the stream,
it folds every case with the same ``lifecycle.evolve`` the broker uses and, when verifying, checks
each body's canonical bytes and hash, the chain of each case (seq, prev_hash), event ids, schemas and
subjects, and finally each case's head against the one the broker recorded outside the stream.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from unstuck import lifecycle as lc
from unstuck.canonical import recanonical
from unstuck.envelope import ENVELOPE_KEYS, HEX64, envelope_problem
from unstuck.schemas.events import parse_payload
from unstuck.schemas.subjects import STREAM

from .findings import Finding, finding_order
from .headbook import Head, HeadBook
from .packing import dictionary_of, pack_state, unpack_state


@dataclass(slots=True)
class CaseReplay:
    """One case as replayed: its state and the bookkeeping that verification needs (no bodies).

    The state is either ``live`` (a case fed recently) or ``packed`` (see ``packing``): ``state``
    gives it either way. The replayer packs the states of the cases it has not fed for a while.
    """

    case_id: str
    live: lc.CaseState | None = None
    packed: bytes | None = None
    row: bytes | None = None  # the case rendered for the output in place of its state (``rows``)
    dictionary: bytes = b""  # what ``packed`` or ``row`` was deflated against, shared by many cases
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
    def state(self) -> lc.CaseState:
        """The replayed state (unpacked afresh on every read when the case is packed)."""
        if self.live is not None:
            return self.live
        if self.packed is not None:
            return unpack_state(self.packed, self.dictionary)
        if self.row is not None:
            raise LookupError(f"case {self.case_id}: its state was rendered for the output and not kept")
        return lc.CaseState(case_id=self.case_id)

    @property
    def intact(self) -> bool:
        return self.findings == 0

    def pack(self, dictionary: bytes) -> None:
        if self.live is not None:
            self.packed = pack_state(self.live, dictionary)
            self.dictionary = dictionary
            self.live = None


@dataclass(repr=False)
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

    def __repr__(self) -> str:
        """Short on purpose: asyncio.run formats the repr of its main task's result when it restores
        the SIGINT handler, and the full dataclass repr of a million-event report is gigabytes."""
        return (
            f"Report(stream={self.stream!r}, verified={self.verified}, events={self.events}, "
            f"cases={len(self.cases)}, findings={len(self.findings)})"
        )

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
        """The cases the report is about, by case id: all, or those active in the --since/--until window."""
        return sorted((c for c in self.cases.values() if self.shows(c)), key=lambda c: c.case_id)

    def shows(self, track: CaseReplay) -> bool:
        """Whether the report is about this case (it was active in the --since/--until window)."""
        if self.since is not None:
            return track.in_window
        if self.until is not None:  # a case opened after that moment did not exist yet
            return track.first_at is not None and track.first_at <= self.until
        return True

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


_DECODE = json.JSONDecoder().decode


def sealed_ok(body: bytes, obj: dict[str, Any]) -> tuple[bool, bool]:
    """(canonical, hash matches) for a stored body, the same verdict as ``canonical.check_body``.

    When the body is canonical, the bytes the hash was computed over are the body without its
    ``,"hash":"<hex>"`` member, so the second canonical dump is replaced by cutting those bytes out.
    The member is found from the end: the envelope keys sorted after ``hash`` (prev_hash, seq, type,
    v) hold scalars, and a quote inside a JSON string is always escaped, so the last occurrence is
    the top-level one.
    """
    canonical = recanonical(obj) == body
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
        and HEX64.fullmatch(stored)
    ):
        member = b',"hash":"' + stored.encode() + b'"'
        at = body.rfind(member)
        if at >= 0:
            digest = hashlib.sha256(body[:at] + body[at + len(member) :]).hexdigest()
            return True, digest == stored
    content = recanonical({k: v for k, v in obj.items() if k != "hash"})
    return canonical, content is not None and hashlib.sha256(content).hexdigest() == stored


def decision_lines(body: bytes) -> list[bytes]:
    """The event bodies of one stored message (storage format 2: a decision, one event per line).

    A message whose lines are not each a JSON object is judged as one body (an event rewritten with
    line breaks, say): that names what is wrong with it more precisely than broken halves would.
    """
    lines = body.split(b"\n")
    if len(lines) > 1 and not all(line[:1] == b"{" and line[-1:] == b"}" for line in lines):
        return [body]
    return lines


def fingerprint(event_id: str) -> int:
    """A 64-bit fingerprint of an event id, the same in every process (``hash`` of a str is not).

    Equal fingerprints are only candidates: the messages are fetched again and their ids compared.
    """
    raw = event_id.encode()
    return (zlib.crc32(raw) << 32 | zlib.adler32(raw)) - (1 << 63)


BUCKETS = 64
"""A replay split over processes splits the cases into this many buckets by a hash of their id."""


def bucket_of(case_id: bytes) -> int:
    """The bucket of a case, from its id as stored (UTF-8): the same in every process."""
    return zlib.crc32(case_id) % BUCKETS


class IdIndex:
    """Where each event id was stored, to find ids used twice: 64-bit fingerprints and stream seqs
    (16 bytes per event), bucketed so that the final scan is small."""

    def __init__(self) -> None:
        self.fingerprints: list[array[int]] = [array("q") for _ in range(256)]
        self.stream_seqs: list[array[int]] = [array("Q") for _ in range(256)]

    def add(self, fp: int, stream_seq: int) -> None:
        self.fingerprints[fp & 255].append(fp)
        self.stream_seqs[fp & 255].append(stream_seq)

    def merge(self, other: IdIndex) -> None:
        """Take in another part's index (a replay split by case)."""
        for mine, theirs in zip(self.fingerprints, other.fingerprints, strict=True):
            mine.extend(theirs)
        for mine, theirs in zip(self.stream_seqs, other.stream_seqs, strict=True):
            mine.extend(theirs)

    def candidates(self) -> list[list[int]]:
        """Groups of stream seqs whose event ids have the same fingerprint (to be confirmed)."""
        groups: list[list[int]] = []
        for fps, seqs in zip(self.fingerprints, self.stream_seqs, strict=True):
            if len(set(fps)) == len(fps):
                continue
            where: dict[int, list[int]] = {}
            for fp, sseq in zip(fps, seqs, strict=True):
                where.setdefault(fp, []).append(sseq)
            groups += [g for g in where.values() if len(g) > 1]
        return groups


LIVE_CASES = 4096
"""Cases whose state a replay keeps live; the others are packed (a few hundred bytes each)."""


class LiveStates:
    """The cases whose state is live, least recently folded first; a case folded when ``limit``
    are live has the state of the first of them packed."""

    def __init__(self, limit: int = LIVE_CASES) -> None:
        self.limit = max(limit, 1)
        self.cases: dict[str, CaseReplay] = {}
        self.dictionary = b""  # the packed states' compression dictionary, from the first one packed

    def fed(self, track: CaseReplay) -> None:
        cases = self.cases
        if cases.pop(track.case_id, None) is None and len(cases) >= self.limit:
            self.pack(cases.pop(next(iter(cases))))
        cases[track.case_id] = track

    def pack(self, track: CaseReplay) -> None:
        if not self.dictionary and track.live is not None and track.live.intake:
            self.dictionary = dictionary_of(track.live)  # the first case with an intake
        track.pack(self.dictionary)

    def pack_all(self) -> None:
        for track in self.cases.values():
            self.pack(track)
        self.cases.clear()


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
        live_cases: int = LIVE_CASES,
        buckets: frozenset[int] | None = None,
    ) -> None:
        self.verify = verify
        self.prefix = subject_prefix
        self.heads = heads if isinstance(heads, HeadBook) else HeadBook(heads)
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
        self.live = LiveStates(live_cases)
        # one part of a replay split by case: the buckets (``bucket_of``) of the cases this one verifies
        self.buckets = buckets
        self.misrouted = 0  # events of cases outside ``buckets``: the split must be redone in one process
        self.ids = IdIndex()

    def _owns(self, case_id: str) -> bool:
        assert self.buckets is not None
        if bucket_of(case_id.encode()) in self.buckets:
            return True
        self.misrouted += 1
        return False

    # one stored message ---------------------------------------------------------------------------

    def feed(self, subject: str, stream_seq: int, body: bytes) -> None:
        """One stored message: a decision, its events one per line (storage format 2)."""
        report = self.report
        if not report.first_stream_seq:
            report.first_stream_seq = stream_seq
        report.last_stream_seq = stream_seq
        if b"\n" not in body:
            self._feed_event(subject, stream_seq, body)
            return
        for event_body in decision_lines(body):
            self._feed_event(subject, stream_seq, event_body)

    def _feed_event(self, subject: str, stream_seq: int, body: bytes) -> None:
        report = self.report
        try:
            obj = _DECODE(body.decode())
        except ValueError as exc:  # UnicodeDecodeError too
            obj = exc
        if not isinstance(obj, dict):
            if self.case_filter and subject.rpartition(".")[2] != self.case_filter:
                return
            if self.buckets is not None and not self._owns(subject.rpartition(".")[2]):
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
            if self.verify and subject.rpartition(".")[2] == self.case_filter:
                # another case's event stored under the case asked about: the record of this case holds it
                seq = obj.get("seq")
                self._find(
                    "subject_mismatch",
                    case_id,
                    seq if type(seq) is int else None,
                    stream_seq,
                    f"stored on {subject}, but the body belongs to case {case_id}",
                )
            return
        if self.buckets is not None and not self._owns(case_id):
            return
        report.events += 1
        track = self.cases.get(case_id)
        if track is None:
            track = self.cases[case_id] = CaseReplay(case_id)
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
            self.ids.add(fingerprint(event_id), stream_seq)
        if seq is not None:
            intact = self._check_chain(track, obj, seq, stream_seq) and intact
        return intact, data

    def _check_chain(self, track: CaseReplay, obj: dict[str, Any], seq: int, stream_seq: int) -> bool:
        """Sequence and prev_hash of one event against what came before it in the case."""
        case_id = track.case_id
        prev_hash = obj.get("prev_hash")
        stored_hash = str(obj.get("hash"))
        head_seq = self.heads.seq_of(case_id)
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
            hole = hole_of(track, seq)
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
            fill_hole(track, hole, seq)
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
        if seq == head_seq and track.head_seen is None:
            track.head_seen = stored_hash
        return ok

    def _fold(self, track: CaseReplay, obj: dict[str, Any], seq: int, intact: bool, data: Any) -> None:
        """Evolve the case's state by this event, as the broker would; stop at the first break."""
        wanted = self.since is not None or self.until is not None or not track.frozen
        at = event_instant(obj.get("at")) if wanted else None
        if at is not None:
            if track.first_at is None:
                track.first_at = at
            track.last_at = at
            if (self.since is None or at >= self.since) and (self.until is None or at <= self.until):
                track.in_window = True
        if track.frozen:
            return
        state = track.live
        if state is None:  # new, or packed while other cases were fed
            state = track.live = track.state
            track.packed = None
        self.live.fed(track)
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
        meta = lc.EventMeta(seq=seq, at=at, hash=str(obj.get("hash")), actor=str(obj.get("actor", "")))
        try:
            track.live = lc.evolve(state, obj["type"], data, meta)
        except Exception as exc:  # a valid event the lifecycle cannot fold: report, keep going
            track.frozen = True
            track.stopped = f"seq {seq}: evolve failed: {exc}"

    def pack_all(self) -> None:
        """Pack every live state (before the cases are handed to another process)."""
        self.live.pack_all()

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
        return self.ids.candidates()

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
                if self.buckets is not None and bucket_of(case_id.encode()) not in self.buckets:
                    continue  # another part of the replay reports it
                self._find(
                    "duplicate_event_id",
                    case_id,
                    seq,
                    sseq,
                    f"event id {event_id} was already stored at stream seq {first[0]} (case {first[2]} seq {first[3]})",
                )
        self.check_heads()
        self.report.findings.sort(key=finding_order)
        return self.report

    def check_heads(self, only: set[str] | None = None) -> None:
        """Compare each case's stream tail with the head the broker recorded outside the stream."""
        names = set(self.cases) | set(self.heads)
        if self.case_filter:
            names &= {self.case_filter}
        if only is not None:
            names &= only
        for case_id in sorted(names):
            finding = head_finding(case_id, self.cases.get(case_id), self.heads.get(case_id))
            if finding is not None:
                self._find(*finding)
        self.report.heads_checked = sum(1 for c in names if c in self.heads)


def event_instant(at_text: Any) -> datetime | None:
    """An event's ``at`` as an aware instant; None when it is not an ISO 8601 time with a zone."""
    try:
        at = datetime.fromisoformat(at_text) if isinstance(at_text, str) else None
    except ValueError:
        return None
    return at if at is not None and at.tzinfo is not None else None


def hole_of(track: CaseReplay, seq: int) -> list[int] | None:
    """The missing seq range of the case that holds ``seq``, if any."""
    for hole in track.holes or ():
        if hole[0] <= seq <= hole[1]:
            return hole
    return None


def fill_hole(track: CaseReplay, hole: list[int], seq: int) -> None:
    """``seq`` arrived late: split its missing range around it."""
    assert track.holes is not None
    track.holes.remove(hole)
    lo, hi = hole
    if lo < seq:
        track.holes.append([lo, seq - 1])
    if seq < hi:
        track.holes.append([seq + 1, hi])


def head_finding(
    case_id: str, track: CaseReplay | None, head: Head | None
) -> tuple[str, str, int | None, int | None, str] | None:
    """What is wrong between a case's replayed tail and the head the broker recorded for it, or None."""
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

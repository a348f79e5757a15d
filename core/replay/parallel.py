"""A replay split by case over processes: this process reads the stream and verifies some cases,
worker processes verify the others.

Cases are independent, so the cases are split into ``BUCKETS`` buckets by a hash of their id, and
each part of the replay owns some buckets. The reading process routes each stored message, as raw
bytes, by the case id written in it (found in the bytes, without parsing), and sends the messages
of the workers' buckets in batches over a pipe. Each part runs its own ``Replayer``: the verdict
on a case needs only the case's own events, in stream order, which each part receives.

Three things need the whole stream and are put together at the end: the duplicate event ids (each
part hands over its id fingerprints; the candidates are confirmed once, over all of them), the
findings (merged and sorted as one replay sorts them) and the cases.

A part checks that every event it verifies belongs to its buckets. An event whose body names
another case than its routing found (bytes rewritten so that the case id cannot be read without
parsing) makes the split unsound; the caller then replays again in one process.
"""

from __future__ import annotations

import gc
import multiprocessing
import operator
import os
import pickle
import traceback
from dataclasses import dataclass, fields
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from .findings import Finding, ReplayError, finding_order
from .headbook import Head, HeadBook
from .replayer import BUCKETS, CaseReplay, IdIndex, Replayer, bucket_of
from .rows import RowSpec, render_rows

BATCH = 200
"""Messages per batch sent to a worker (some 150 KB of bodies)."""

PIPE_BYTES = 1 << 20
"""Pipe capacity asked for on Linux, so the reader runs ahead of a worker by a few batches."""

READER_SHARE = 0.35
"""Of two parts, the share of the cases the reading process verifies: reading the stream is the
rest of its work."""

_CASE_KEY = b'"case_id":"'


def route(subject: str, body: bytes) -> int:
    """The bucket of a stored message's case, from its bytes: the first ``"case_id":"…"`` in it,
    else the last token of the subject (where a replay takes the case of an unreadable body)."""
    at = body.find(_CASE_KEY)
    if at >= 0:
        start = at + len(_CASE_KEY)
        end = body.find(b'"', start)
        if end > start:
            return bucket_of(body[start:end])
    return bucket_of(subject.rpartition(".")[2].encode())


def split_buckets(parts: int, reader_share: float = READER_SHARE) -> list[frozenset[int]]:
    """The buckets of each part; part 0, the reading process, gets ``reader_share`` of two parts'
    worth, the workers share the rest evenly."""
    share = reader_share * 2 / parts
    own = max(1, min(BUCKETS - (parts - 1), round(BUCKETS * share)))
    out = [frozenset(range(own))]
    rest = list(range(own, BUCKETS))
    for i in range(parts - 1):
        out.append(frozenset(rest[i :: parts - 1]))
    return out


@dataclass(frozen=True)
class Settings:
    """What every part of a replay is started with, besides its buckets and its share of the heads."""

    stream: str
    verify: bool
    subject_prefix: str | None
    since: datetime | None
    until: datetime | None

    def replayer(self, buckets: frozenset[int], heads: HeadBook) -> Replayer:
        return Replayer(
            self.stream, self.verify, self.subject_prefix, heads, self.since, self.until, buckets=buckets
        )


@dataclass
class Tally:
    """A part's account after the last message: what the reading process needs to find duplicates."""

    events: int
    first_stream_seq: int
    last_stream_seq: int
    misrouted: int
    ids: IdIndex


@dataclass
class Outcome:
    """A part's findings after ``finish``, the recorded heads behind its head findings, and how
    many batches of cases follow (sent apart, so that neither side holds them twice at once)."""

    findings: list[Finding]
    heads_checked: int
    heads: dict[str, Head]
    batches: int


CASES_PER_BATCH = 5000

_TRACK_FIELDS = tuple(f.name for f in fields(CaseReplay))
_track_values = operator.attrgetter(*_TRACK_FIELDS)


def _track(values: tuple[Any, ...]) -> CaseReplay:
    track = object.__new__(CaseReplay)
    for name, value in zip(_TRACK_FIELDS, values, strict=True):
        setattr(track, name, value)
    return track


def tally_of(replayer: Replayer) -> Tally:
    r = replayer.report
    return Tally(r.events, r.first_stream_seq, r.last_stream_seq, replayer.misrouted, replayer.ids)


def _hand_over(replayer: Replayer, outbox: Connection) -> None:
    """Send a finished part's outcome, then its cases in batches (emptying the part as they go)."""
    replayer.pack_all()
    report = replayer.report
    flagged = {f.case_id for f in report.findings if f.case_id in replayer.heads}
    heads = {c: replayer.heads[c] for c in flagged if c is not None}
    batches = -(-len(report.cases) // CASES_PER_BATCH)
    outbox.send(Outcome(report.findings, report.heads_checked, heads, batches))
    tracks = list(report.cases.values())
    report.cases.clear()
    while tracks:
        batch = [_track_values(t) for t in tracks[-CASES_PER_BATCH:]]
        del tracks[-CASES_PER_BATCH:]
        outbox.send_bytes(pickle.dumps(batch, protocol=5))


def _work(
    inbox: Connection,
    outbox: Connection,
    settings: Settings,
    buckets: frozenset[int],
    heads: HeadBook,
) -> None:
    """A worker process: feed the batches it is sent, hand over its tally, finish, hand over the rest."""
    gc.disable()  # long-lived cases and no cycles: the collector would only rescan them
    try:
        replayer = settings.replayer(buckets, heads)
        del heads
        while batch := inbox.recv_bytes():
            for subject, stream_seq, body in pickle.loads(batch):
                replayer.feed(subject, stream_seq, body)
        outbox.send(tally_of(replayer))
        ending = inbox.recv()
        if ending is None:
            return
        duplicates, rows = ending
        replayer.finish(duplicates)
        if rows is not None:
            render_rows(replayer, rows)
        _hand_over(replayer, outbox)
    except (EOFError, BrokenPipeError):
        return  # the reading process gave up on the replay
    except BaseException:
        outbox.send(ReplayError(f"replay worker failed:\n{traceback.format_exc()}"))


def _widen(conn: Connection) -> None:
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # not Linux, or a capacity above the system's limit: the default pipe works, slower


class _Worker:
    def __init__(self, settings: Settings, buckets: frozenset[int], heads: HeadBook) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with a live event loop
        inbox_r, self.inbox = context.Pipe(duplex=False)
        self.outbox, outbox_w = context.Pipe(duplex=False)
        _widen(self.inbox)
        self.batch: list[tuple[str, int, bytes]] = []
        self.process = context.Process(
            target=_work,
            args=(inbox_r, outbox_w, settings, buckets, heads),
            name="unstuck-replay",
            daemon=True,
        )
        self.process.start()
        inbox_r.close()
        outbox_w.close()

    def send(self) -> None:
        self.inbox.send_bytes(pickle.dumps(self.batch, protocol=5))
        self.batch = []

    def receive(self) -> Any:
        answer = pickle.loads(self.receive_bytes())
        if isinstance(answer, ReplayError):
            raise answer
        return answer

    def receive_bytes(self) -> bytes:
        try:
            return self.outbox.recv_bytes()
        except (EOFError, OSError) as exc:
            raise ReplayError(f"a replay worker stopped (exit code {self.process.exitcode})") from exc

    def stop(self) -> None:
        for conn in (self.inbox, self.outbox):
            conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class Split:
    """This process's part of a split replay (a ``Replayer``) and the workers of the other parts.

    ``take`` routes one stored message; ``close`` ends the input and gathers the tallies;
    ``finish`` finishes every part and merges all of them into this process's replayer.
    """

    def __init__(self, settings: Settings, parts: int, heads: HeadBook) -> None:
        buckets = split_buckets(parts)
        owner = [0] * BUCKETS
        for part, owned in enumerate(buckets):
            for b in owned:
                owner[b] = part
        self.owner = owner
        split_heads = heads.split(lambda case_id: owner[bucket_of(case_id.encode())], parts)
        self.workers: list[_Worker] = []
        try:
            for part in range(1, parts):
                self.workers.append(_Worker(settings, buckets[part], split_heads[part]))
        except BaseException:
            self.stop()
            raise
        self.replayer = settings.replayer(buckets[0], split_heads[0])

    def take(self, subject: str, stream_seq: int, body: bytes) -> None:
        part = self.owner[route(subject, body)]
        if not part:
            self.replayer.feed(subject, stream_seq, body)
            return
        worker = self.workers[part - 1]
        worker.batch.append((subject, stream_seq, body))
        if len(worker.batch) >= BATCH:
            worker.send()

    def close(self) -> bool:
        """End the input; merge the parts' counts and id fingerprints. False when the split is unsound."""
        for worker in self.workers:
            if worker.batch:
                worker.send()
            worker.inbox.send_bytes(b"")
        report = self.replayer.report
        sound = not self.replayer.misrouted
        for worker in self.workers:
            tally: Tally = worker.receive()
            sound = sound and not tally.misrouted
            report.events += tally.events
            firsts = [s for s in (report.first_stream_seq, tally.first_stream_seq) if s]
            report.first_stream_seq = min(firsts, default=0)
            report.last_stream_seq = max(report.last_stream_seq, tally.last_stream_seq)
            self.replayer.ids.merge(tally.ids)
        return sound

    def finish(
        self, duplicates: list[list[tuple[int, str, str, int | None]]] | None, rows: RowSpec | None
    ) -> Replayer:
        """Finish every part (and render its rows); this process's replayer then holds every case
        and every finding."""
        for worker in self.workers:
            worker.inbox.send((duplicates or [], rows))
        replayer = self.replayer
        replayer.finish(duplicates)
        if rows is not None:
            render_rows(replayer, rows)
        report = replayer.report
        for worker in self.workers:
            outcome: Outcome = worker.receive()
            for _ in range(outcome.batches):
                batch = pickle.loads(worker.receive_bytes())
                report.cases.update((values[0], _track(values)) for values in batch)
            report.findings += outcome.findings
            report.heads_checked += outcome.heads_checked
            for case_id, head in outcome.heads.items():
                replayer.heads.put(case_id, head)
        report.findings.sort(key=finding_order)
        return replayer

    def abandon(self) -> None:
        """Tell the workers the replay is redone in one process."""
        for worker in self.workers:
            try:
                worker.inbox.send(None)
            except OSError:
                pass

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def parts_for(jobs: int | None, messages: int, threshold: int) -> int:
    """How many parts a replay of ``messages`` stored messages is split into: ``jobs`` when given,
    else one per core from ``threshold`` messages on."""
    if jobs is not None:
        return max(1, jobs)
    if messages < threshold:
        return 1
    return max(
        1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1), 4)
    )

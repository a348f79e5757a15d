"""Audit replay: rebuild every case from the stream itself and prove the record intact.

The auditor does not trust the broker: this module reads the JetStream stream directly (an ordered
consumer from the first message), folds every case with the same ``lifecycle.evolve`` the broker
uses, and, with ``verify``, checks each event's exact stored bytes (canonical JSON, hash), the chain
of each case (seq, prev_hash), event ids, schemas, subjects, and each case's head against the one
the broker recorded outside the stream (the heads KV bucket). docs/audit.md explains every finding.

Memory grows with the number of cases, not with the states' size: per case a few numbers, the last
hash and the state packed into a few hundred bytes (``packing``; the last cases fed keep theirs
live), plus, while verifying, 16 bytes per event for the duplicate-id index and the recorded heads.
The event bodies are not kept. With ``jobs`` the cases are split over processes (``parallel``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from unstuck.schemas.subjects import HEAD_LAG_SECONDS, HEADS_BUCKET, STREAM, storage_format_problem

from .findings import FINDINGS, Finding, ReplayError, finding_order
from .headbook import Head, HeadBook, compact_head
from .parallel import Settings, Split, parts_for
from .reader import jetstream_of, read_head, read_heads, read_ordered, stream_prefix
from .replayer import (
    ENVELOPE_KEYS,
    CaseReplay,
    Replayer,
    Report,
    decision_lines,
    envelope_problem,
    head_finding,
    sealed_ok,
)
from .rows import RowSpec, render_rows

__all__ = [
    "ENVELOPE_KEYS",
    "FINDINGS",
    "CaseReplay",
    "Finding",
    "Head",
    "Progress",
    "ReplayError",
    "Replayer",
    "Report",
    "check_format",
    "compact_head",
    "decision_lines",
    "envelope_problem",
    "read_head",
    "read_heads",
    "read_ordered",
    "recheck_heads",
    "replay",
    "sealed_ok",
    "stream_prefix",
    "verify_stream",
]


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


Progress = Callable[[int, int], None]


def check_format(stream: str, info: Any) -> None:
    """Refuse, in one line naming the version, a stream written in another storage format."""
    problem = storage_format_problem(stream, info.config.metadata, int(info.state.messages or 0))
    if problem is not None:
        raise ReplayError(problem)


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
    head_lag: float = HEAD_LAG_SECONDS,
    jobs: int | None = 1,
    rows: RowSpec | None = None,
) -> Report:
    """Rebuild every case (or one) from ``stream``; with ``verify``, also prove the record intact.

    ``until`` gives the states as they were at that instant; ``since`` narrows the report to cases
    with events from that instant on. Verification always covers every event read. A head found
    behind the stream is read again after ``head_lag`` seconds (0: judged as first read, for a
    caller that knows the broker has written its heads). ``jobs`` splits the cases over that many
    processes (``None``: one per core for a stream of ``PARALLEL_FROM`` messages or more); the
    report is the same. ``rows`` renders each case the report shows for the output, in place of its
    state (``unstuck.replay.rows``).
    """
    js = jetstream_of(target)
    started = time.perf_counter()
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError as exc:
        raise ReplayError(f"stream {stream} not found: check --stream and the server (NATS_URL)") from exc
    check_format(stream, info)
    prefix = stream_prefix(info.config.subjects)
    heads = HeadBook()
    if verify:
        if case_id is not None:
            head = await read_head(js, heads_bucket, case_id)
            heads = HeadBook({case_id: head} if head else {})
        else:
            heads = await read_heads(js, heads_bucket)
    info = await js.stream_info(stream)  # after the heads: a head written meanwhile is not ahead of us
    end_seq = int(info.state.last_seq)
    total = max(int(info.state.messages), 0)
    settings = Settings(stream, verify, prefix, since, until)
    parts = 1 if case_id is not None else parts_for(jobs, total, PARALLEL_FROM)
    with _collector_paused():
        if parts == 1:
            replayer = await _read_one(js, settings, heads, case_id, end_seq, total, progress, rows)
        elif (split := await _read_split(js, settings, parts, heads, end_seq, total, progress, rows)) is None:
            # a body named another case than its bytes showed: the whole replay again, in one process
            report = await replay(
                target, stream, verify=verify, since=since, until=until, heads_bucket=heads_bucket,
                progress=progress, jobs=1, rows=rows,
            )  # fmt: skip
            report.seconds = time.perf_counter() - started
            return report
        else:
            replayer = split
    report = replayer.report
    if not report.first_stream_seq:
        report.first_stream_seq = int(info.state.first_seq)
    if verify:
        await recheck_heads(js, heads_bucket, replayer, head_lag)
    report.seconds = time.perf_counter() - started
    return report


PARALLEL_FROM = 20_000
"""Stored messages from which a replay with ``jobs=None`` is split over the cores: on two cores a
split replay of 12,500 messages took as long as one process (starting a worker takes about half a
second), of 50,000 messages 0.7 of the time."""


async def _read_all(
    js: JetStreamContext,
    settings: Settings,
    take: Callable[[str, int, bytes], None],
    end_seq: int,
    total: int,
    progress: Progress | None,
) -> None:
    """Every message of the stream's case subjects, in stream order, to ``take``."""
    done = 0

    def deliver(msg: Any, sseq: int) -> None:
        nonlocal done
        take(msg.subject, sseq, msg.data)
        done += 1
        if progress is not None and not done & 4095:
            progress(done, total)

    prefix = settings.subject_prefix
    await read_ordered(js, settings.stream, f"{prefix}.>" if prefix else ">", deliver, end_seq=end_seq)
    if progress is not None:
        progress(done, total)


async def _read_one(
    js: JetStreamContext,
    settings: Settings,
    heads: HeadBook,
    case_id: str | None,
    end_seq: int,
    total: int,
    progress: Progress | None,
    rows: RowSpec | None,
) -> Replayer:
    """The replay in this process (which takes the heads over)."""
    stream, prefix = settings.stream, settings.subject_prefix
    replayer = Replayer(stream, settings.verify, prefix, heads, settings.since, settings.until, case_id)
    if case_id is not None and prefix is not None:
        await _read_case(js, stream, f"{prefix}.{case_id}", replayer, end_seq)
    elif total:
        await _read_all(js, settings, replayer.feed, end_seq, total, progress)
    duplicates = await _confirm_duplicates(js, stream, replayer) if settings.verify else None
    replayer.finish(duplicates)
    if rows is not None:
        render_rows(replayer, rows)
    return replayer


async def _read_split(
    js: JetStreamContext,
    settings: Settings,
    parts: int,
    heads: HeadBook,
    end_seq: int,
    total: int,
    progress: Progress | None,
    rows: RowSpec | None,
) -> Replayer | None:
    """The replay split by case over ``parts`` processes (which take the heads over); None when it
    must be redone in one."""
    split = Split(settings, parts, heads)
    heads.clear()
    try:
        if total:
            await _read_all(js, settings, split.take, end_seq, total, progress)
        if not split.close():
            split.abandon()
            return None
        replayer = split.replayer
        duplicates = await _confirm_duplicates(js, settings.stream, replayer) if settings.verify else None
        return split.finish(duplicates, rows)
    finally:
        split.stop()


async def verify_stream(
    target: Client | JetStreamContext,
    stream: str = STREAM,
    *,
    case_id: str | None = None,
    heads_bucket: str = HEADS_BUCKET,
    progress: Progress | None = None,
    head_lag: float = HEAD_LAG_SECONDS,
) -> Report:
    """``unstuck replay --verify`` as a function: ``report.ok``, ``report.findings``, ``report.summary()``."""
    return await replay(
        target,
        stream,
        verify=True,
        case_id=case_id,
        heads_bucket=heads_bucket,
        progress=progress,
        head_lag=head_lag,
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
        for sseq in sorted(set(group)):
            try:
                msg = await js.get_msg(stream, seq=sseq)
            except nats.js.errors.NotFoundError:
                continue
            for line in decision_lines(bytes(msg.data or b"")):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(obj, dict):
                    continue
                seq = obj.get("seq") if type(obj.get("seq")) is int else None
                event_id = str(obj.get("event_id"))
                by_id.setdefault(event_id, []).append((sseq, event_id, str(obj.get("case_id")), seq))
        confirmed += [g for g in by_id.values() if len(g) > 1]
    return confirmed


HEAD_CODES = frozenset({"head_missing", "head_mismatch", "tail_missing", "untracked_tail"})


async def recheck_heads(
    js: JetStreamContext, bucket: str, replayer: Replayer, head_lag: float = HEAD_LAG_SECONDS
) -> None:
    """A case the broker moved on while we read is not a finding: read its head again and judge by it.

    The fresh head clears the case when it is the last event we read, or lies beyond what we read.
    A head still behind the stream is read once more after ``head_lag`` seconds: the broker writes
    heads just after its appends, so only a head behind for longer is reported.
    """
    await _recheck_heads(js, bucket, replayer, HEAD_CODES)
    behind = {"head_missing", "untracked_tail"}
    if head_lag > 0 and any(f.code in behind for f in replayer.report.findings):
        await asyncio.sleep(head_lag)
        await _recheck_heads(js, bucket, replayer, behind)


async def _recheck_heads(
    js: JetStreamContext, bucket: str, replayer: Replayer, codes: set[str] | frozenset[str]
) -> None:
    """Read the heads of the cases flagged with ``codes`` again; clear those the fresh head explains."""
    report = replayer.report
    flagged = {f.case_id for f in report.findings if f.code in codes and f.case_id}
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
        keep = [f for f in report.findings if not (f.case_id == case_id and f.code in HEAD_CODES)]
        if track is not None:
            track.findings -= len(report.findings) - len(keep)
        report.findings[:] = keep
        if case_id not in replayer.heads:
            report.heads_checked += 1  # a head recorded since the first read: checked now
        replayer.heads.put(case_id, (seq, digest, stream_seq))
        if consistent or beyond:
            report.moved_during_replay.append(case_id)
            continue
        # judged by the head the broker holds now; the hash of the event at a head short of the tail
        # was not kept, so such a head is judged by its seq alone (an untracked tail either way)
        if track is not None and seq <= last_seq:
            track.head_seen = track.last_hash if seq == last_seq else digest
        if (finding := head_finding(case_id, track, (seq, digest, stream_seq))) is not None:
            replayer._find(*finding)
            report.findings.sort(key=finding_order)

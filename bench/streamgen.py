"""Large case streams, written straight into JetStream for the replay and memory benchmarks.

Events are built with the broker's own envelope code (``envelope_fields`` and ``seal``), so every
body is canonical and every case's hash chain holds. In storage format 2 (the default) each decision
is one message, grouped as the broker groups them: the opening (opened, classified, requested), a
retry, the reply (replied, resolved), the closing, the evaluation; its body is the decision's sealed
events joined by newlines, ``Nats-Msg-Id`` the decision's first event id and
``Nats-Expected-Last-Subject-Sequence`` the stream sequence of the case's previous message. Format 1
writes one message per event. Each case's head is recorded in the heads bucket in the broker's
format: its last event's seq and hash, and the stream sequence of its last message. Publishing is
pipelined (plain publishes, no ack awaited, the count checked at the end), so the stream fills at
the server's pace rather than one round trip per message.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from nats.aio.client import Client
from ulid import ULID

from unstuck.canonical import seal
from unstuck.eventstore import EventStore, decision_body, envelope_fields
from unstuck.lifecycle import NewEvent
from unstuck.schemas import CaseIntake, Category, Outcome
from unstuck.schemas import events as ev
from unstuck.schemas.subjects import HEADS_BUCKET, case_subject

from .workload import case_body

START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
REQUEST_PLACEHOLDER = "PLACEHOLDER-c1"


def _templates(department: str) -> dict[str, NewEvent]:
    intake = CaseIntake.model_validate(case_body(0, department))
    due = date(2026, 11, 9)
    rid = REQUEST_PLACEHOLDER
    return {
        "opened": NewEvent("w-bench", ev.CaseOpened.from_intake(intake)),
        "classified": NewEvent(
            "w-bench",
            ev.CaseClassified(
                category=Category.HARD,
                reason="classified at intake",
                mode="coordinate",
                working_days=5,
                due_date=due,
                duty_leader="duty-leader",
                departments=[department],
            ),
        ),
        "requested": NewEvent(
            "system",
            ev.CoordinationRequested(
                request_id=rid,
                department=department,
                question="[hard] 基準測試事項: 申請人在常規窗口辦理時遇到政策空白，窗口未能辦理，轉辦不成事窗口協調。",
                deadline=due,
            ),
        ),
        "retried": NewEvent(
            "system",
            ev.CoordinationRetried(
                request_id=rid,
                department=department,
                attempt=1,
                reason="timeout",
                detail="no reply within 2.0s",
            ),
        ),
        "replied": NewEvent(
            department,
            ev.CoordinationReplied(
                request_id=rid,
                department=department,
                outcome=Outcome.RESOLVED,
                message="已按申請辦結",
                handler="經辦人",
                attempt=2,
            ),
        ),
        "resolved": NewEvent(
            "system",
            ev.CaseResolved(
                outcome=Outcome.RESOLVED,
                summary=f"{department}: resolved: 已按申請辦結",
                departments=[department],
            ),
        ),
        "closed": NewEvent(
            "w-bench",
            ev.CaseClosed(
                outcome="resolved", explanation="已告知申請人辦理結果", closed_by="w-bench", on_time=True
            ),
        ),
        "evaluated": NewEvent("applicant", ev.CaseEvaluated(rating="good", comment="滿意")),
    }


JOINS_DECISION = frozenset({"classified", "requested", "resolved"})
"""Events the broker appends in the same decision as the event before them (opened..., replied...)."""


def decisions(kinds: tuple[str, ...], stream_format: int) -> list[list[int]]:
    """The positions of ``kinds`` grouped into decisions: one message each."""
    groups: list[list[int]] = []
    for k, kind in enumerate(kinds):
        if stream_format >= 2 and groups and kind in JOINS_DECISION:
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


CLOSED_CASE = ("opened", "classified", "requested", "retried", "replied", "resolved", "closed", "evaluated")
"""Eight events: a case coordinated (one retry), answered, closed and evaluated."""

OPEN_CASE = ("opened", "classified", "requested", "replied", "resolved")
"""Five events: a case answered and waiting for 銷號, so it counts as open and needs no coordination."""


def case_bodies(
    case_id: str, kinds: tuple[str, ...], templates: dict[str, NewEvent], at: datetime
) -> list[tuple[str, bytes, str]]:
    """The sealed events of one case, chained from its first: (event id, body, hash) each."""
    prev = ""
    out: list[tuple[str, bytes, str]] = []
    request_id = f"{case_id}-c1"
    for seq, kind in enumerate(kinds, start=1):
        event_id = str(ULID())
        fields = envelope_fields(case_id, seq, templates[kind], at + timedelta(seconds=seq), prev, event_id)
        data = fields["data"]
        if "request_id" in data:
            data["request_id"] = request_id
        body, prev = seal(fields)
        out.append((event_id, body, prev))
    return out


@dataclass
class GeneratedStream:
    events: int
    messages: int
    cases: int
    seconds: float
    stream_format: int


async def generate(
    nc: Client,
    events: int,
    kinds: tuple[str, ...] = CLOSED_CASE,
    departments: tuple[str, ...] = ("renshe",),
    stream_format: int = 2,
) -> GeneratedStream:
    """Fill an empty UNSTUCK_CASES with ``events`` events (whole cases of ``kinds``) and record their heads."""
    started = time.perf_counter()
    js = nc.jetstream()
    store = EventStore(js)
    await store.ensure()
    if await store.last_seq() != 0:
        raise RuntimeError("generate needs an empty stream")
    templates = {d: _templates(d) for d in departments}
    groups = decisions(kinds, stream_format)
    cases = max(1, events // len(kinds))
    stream_seq = 0
    heads: list[tuple[str, bytes]] = []
    for i in range(cases):
        case_id = f"BE-{20261102 + i // 1_000_000}-{i % 1_000_000:06d}"
        dept = departments[i % len(departments)]
        bodies = case_bodies(case_id, kinds, templates[dept], START + timedelta(seconds=i))
        subject = case_subject(case_id)
        expected = 0  # a new case: its subject holds nothing yet
        for group in groups:
            # no reply subject: the stream stores it all the same, and the count is checked at the end
            await nc.publish(
                subject,
                decision_body(bodies[k][1] for k in group),
                headers={
                    "Nats-Msg-Id": bodies[group[0]][0],
                    "Nats-Expected-Last-Subject-Sequence": str(expected),
                },
            )
            stream_seq += 1
            expected = stream_seq
        head = {"seq": len(bodies), "hash": bodies[-1][2], "stream_seq": stream_seq}
        heads.append((case_id, json.dumps(head).encode()))
        if i % 500 == 499:
            await nc.flush()
            await _wait_for(store, stream_seq - 20_000)
    await nc.flush()
    for case_id, value in heads:
        await nc.publish(f"$KV.{HEADS_BUCKET}.{case_id}", value)
    await nc.flush()
    await _wait_for(store, stream_seq)
    stored = await store.last_seq()
    if stored != stream_seq:
        raise RuntimeError(f"stream holds {stored} messages, {stream_seq} were published")
    heads_info = await js.stream_info(f"KV_{HEADS_BUCKET}")
    while heads_info.state.messages < len(heads):
        await asyncio.sleep(0.05)
        heads_info = await js.stream_info(f"KV_{HEADS_BUCKET}")
    return GeneratedStream(
        events=cases * len(kinds),
        messages=stream_seq,
        cases=cases,
        seconds=time.perf_counter() - started,
        stream_format=stream_format,
    )


async def _wait_for(store: EventStore, seq: int, timeout: float = 60.0) -> None:
    """Let the server catch up to ``seq`` (keeps what it must buffer bounded)."""
    deadline = time.monotonic() + timeout
    while (last := await store.last_seq()) < seq:
        if time.monotonic() > deadline:
            raise RuntimeError(f"stream stopped at {last} while {seq} events were published")
        await asyncio.sleep(0.01)


def sample_bodies(department: str = "renshe") -> list[bytes]:
    """The five bodies a benchmark case appends (for the raw baseline's publishes of the same size)."""
    return [body for _, body, _ in case_bodies("DD-20261127-0001", OPEN_CASE, _templates(department), START)]

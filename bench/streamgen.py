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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

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
        "evaluated": NewEvent("applicant", ev.CaseEvaluated(level="satisfied", rating="good", comment="滿意")),
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


# --- The history fixture of the scale benchmark --------------------------------------------------
#
# A million closed cases and ten thousand open ones, opened over about two years, spread over
# categories, departments, matters and applicants (who come back), written by several processes at
# once. Each process publishes its cases in batches, one round per message position: every case's
# first message (expected subject sequence 0) is published without waiting, their acknowledgements
# give the stream sequences the second messages expect, and so on; the round's acknowledgements are
# the only waits, so the pipeline holds a whole batch. Bodies are built from per-type templates
# sealed with the broker's ``envelope_fields`` and ``seal``: the template's fields are copied and the
# case's own values set, so no pydantic model is built per event.

HISTORY_VERSION = 2
"""Bump when what ``generate_history`` writes changes: it is part of the cache key."""

MATTERS = (
    ("social_security_transfer", "社保關係轉移"),
    ("housing_fund_withdrawal", "公積金提取"),
    ("business_license_change", "營業執照變更"),
    ("food_business_license", "食品經營許可"),
    ("shop_sign", "門頭招牌設置"),
    ("street_stall_area", "臨時攤區申請"),
    ("residence_permit", "居住證辦理"),
    ("household_transfer", "戶籍遷移"),
    ("medical_insurance_refund", "醫保報銷"),
    ("pension_certification", "養老金資格認證"),
    ("disability_subsidy", "殘疾人補貼"),
    ("retirement_approval", "退休審批"),
)
NAMES = ("張三", "李四", "王五", "趙六", "陳明", "劉芳", "楊洋", "黃麗", "周強", "吳敏")
CATEGORY_DAYS = {"hard": 5, "cannot": 3, "refused": 1}
OPEN_STATES = ("intake", "coordinating", "coordinating", "answered", "answered")
"""Open case ``j`` is in ``OPEN_STATES[j % 5]``: 20% intake, 40% coordinating, 40% answered."""
OVERDUE_SLOTS = frozenset({1, 3, 6, 8})
"""Open case ``j`` is overdue when ``j % 10`` is one of these (case.overdue and the escalation the
deadline watcher appends): the first coordinating and the first answered case of every five, so
half of the coordinating and answered cases, 4 in 10 of all open cases."""
APPLICANTS = 300_000
"""Distinct applicants at most; drawn with a heavy tail, so some come back many times."""


@dataclass(frozen=True)
class HistorySpec:
    """What the history fixture holds; every field is part of its cache key."""

    closed: int
    open: int
    departments: tuple[str, ...] = ("renshe", "scjg", "chengguan", "bureau04", "bureau05")
    now: str = "2026-12-01T01:00:00+00:00"  # 09:00 in the service centre: "today" of the open cases
    days: int = 730  # closed cases opened over this many days before the open ones
    seed: int = 15

    @property
    def anchor(self) -> datetime:
        return datetime.fromisoformat(self.now)

    def key(self) -> str:
        import hashlib

        text = json.dumps({"v": HISTORY_VERSION, **self.__dict__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _history_templates() -> dict[str, dict]:
    """Envelope fields of every event type the fixture writes, sealed later with the case's values."""
    base = _templates("renshe")
    due = date(2026, 11, 9)
    base["accepted"] = NewEvent(
        "renshe",
        ev.CoordinationReplied(
            request_id=REQUEST_PLACEHOLDER,
            department="renshe",
            outcome=Outcome.ACCEPTED,
            message="已受理，正在研究",
            handler="經辦人",
            expected_date=due,
        ),
    )
    base["overdue"] = NewEvent("system", ev.CaseOverdue(due_date=due))
    base["escalated"] = NewEvent(
        "system",
        ev.CaseEscalated(
            department="renshe",
            level=1,
            role="section_head",
            target="renshe section_head",
            reason="overdue",
            audience="renshe_section_head",
        ),
    )
    return {
        kind: envelope_fields("X", 1, event, START, "", "E") for kind, event in base.items()
    }


class _Rng:
    """The random choices of a batch of cases: one seeded generator per 1,000 case numbers, so the
    fixture does not depend on how many processes wrote it."""

    def __init__(self, seed: int, batch: int) -> None:
        import random

        self.r = random.Random(f"{seed}-{batch}")

    def applicant(self) -> str:
        k = int(self.r.paretovariate(0.8)) % APPLICANTS
        return f"2106031990{k:08d}"


def _case_events(
    spec: HistorySpec, number: int, rng: _Rng, t: dict[str, dict]
) -> tuple[str, list[list[tuple[str, dict]]], dict]:
    """Case ``number`` (closed first, then open): its id, its decisions (each a list of (actor, fields))
    and what it is (for the counts the benchmark checks)."""
    r = rng.r
    anchor = spec.anchor
    is_open = number >= spec.closed
    if is_open:
        j = number - spec.closed
        state = OPEN_STATES[j % 5]
        overdue = state != "intake" and j % 10 in OVERDUE_SLOTS
        # open cases were opened over the last four weeks; the overdue ones' deadlines passed
        opened = anchor - timedelta(days=r.uniform(1, 28))
    else:
        state = "evaluated"
        overdue = False
        opened = anchor - timedelta(days=29 + spec.days * (spec.closed - number) / max(spec.closed, 1))
        opened -= timedelta(seconds=r.uniform(0, 3600))
    opened = opened.replace(microsecond=0)
    day = opened.astimezone(UTC) + timedelta(hours=8)
    case_id = f"BE-{day:%Y%m%d}-{number:07d}"
    m = r.randrange(len(MATTERS))
    matter, title = MATTERS[m]
    dept = spec.departments[m % len(spec.departments)]
    category = r.choices(("hard", "cannot", "refused"), (5, 3, 2))[0]
    days = CATEGORY_DAYS[category]
    if is_open and state != "intake":
        today = (anchor + timedelta(hours=8)).date()
        due = today - timedelta(days=r.randint(1, 10)) if overdue else today + timedelta(days=r.randint(0, 12))
        opened = min(opened, datetime.combine(due, datetime.min.time(), UTC) - timedelta(days=days))
        day = opened + timedelta(hours=8)
        case_id = f"BE-{day:%Y%m%d}-{number:07d}"
    else:
        due = (day + timedelta(days=days + 2 * (days // 5) + 1)).date()
    request_id = f"{case_id}-c1"
    owner = f"w{r.randint(1, 40):02d}"
    leader = f"leader{r.randint(1, 4)}"

    def ev_(kind: str, actor: str, **data: object) -> tuple[str, dict]:
        fields = dict(t[kind])
        fields["data"] = {**t[kind]["data"], **data}
        fields["actor"] = actor
        return kind, fields

    opened_data: dict = {
        "applicant": {"kind": "citizen", "name": NAMES[r.randrange(len(NAMES))], "id_number": rng.applicant()},
        "matter": matter,
        "matter_title": title,
        "facts": {"n": number},
        "department": dept,
        "owner": owner,
    }
    opening = [ev_("opened", owner, **opened_data)]
    if state == "intake":
        opening[0][1]["data"].pop("category", None)
        return case_id, [[(opened.isoformat(), f) for f in [opening[0]]]], {"state": state, "opened": opened}
    opening[0][1]["data"]["category"] = category
    opening += [
        ev_("classified", owner, category=category, working_days=days, due_date=due.isoformat(),
            duty_leader=leader, departments=[dept]),
        ev_("requested", "system", request_id=request_id, department=dept, deadline=due.isoformat(),
            question=f"[{category}] {title}: 申請人在常規窗口辦理時遇到政策空白，窗口未能辦理，轉辦不成事窗口協調。"),
    ]
    replied_at = opened + timedelta(hours=r.uniform(0.5, 40))
    if is_open:
        replied_at = min(replied_at, anchor - timedelta(minutes=1))
    if state == "coordinating":
        reply = [ev_("accepted", dept, request_id=request_id, department=dept, attempt=1,
                     expected_date=(due + timedelta(days=r.randint(0, 10))).isoformat())]
    else:
        outcome = r.choices(("resolved", "cannot", "need_materials"), (7, 2, 1))[0]
        reply = [
            ev_("replied", dept, request_id=request_id, department=dept, outcome=outcome, attempt=1),
            ev_("resolved", "system", outcome=outcome, summary=f"{dept}: {outcome}: 已按申請辦結",
                departments=[dept]),
        ]
    decisions_ = [(opened, opening), (replied_at, reply)]
    if overdue:
        target = dept if state == "coordinating" else "window"
        checked = datetime.combine(due + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=1)
        decisions_.append((checked, [
            ev_("overdue", "system", due_date=due.isoformat()),
            ev_("escalated", "system", department=target, target=f"{target} section_head",
                audience=f"{target}_section_head"),
        ]))
    if not is_open:
        closed_at = replied_at + timedelta(hours=r.uniform(1, 24 * min(days, 3)))
        closed_day = (closed_at + timedelta(hours=8)).date()
        decisions_.append((closed_at, [ev_("closed", owner, closed_by=owner, on_time=closed_day <= due,
                                           outcome="resolved" if reply[0][1]["data"]["outcome"] == "resolved" else "cannot")]))
        rating = "good" if r.random() < 0.9 else "bad"
        decisions_.append((closed_at + timedelta(hours=r.uniform(0.1, 48)), [
            ev_("evaluated", "applicant", level="satisfied" if rating == "good" else "dissatisfied",
                rating=rating, comment="滿意" if rating == "good" else "等待太久")]))
    info = {"state": state, "overdue": overdue, "opened": opened, "category": category,
            "department": dept, "due": due}
    return case_id, [[(at.isoformat(), f) for f in fs] for at, fs in decisions_], info


def seal_case(case_id: str, decisions_: list[list[tuple[str, tuple[str, dict]]]]) -> tuple[list[tuple[str, bytes]], str, int]:
    """(first event id, message body) per decision, the last hash and the number of events."""
    prev = ""
    seq = 0
    out: list[tuple[str, bytes]] = []
    for decision in decisions_:
        bodies = []
        first = ""
        for k, (at_text, (_, fields)) in enumerate(decision):
            seq += 1
            at = datetime.fromisoformat(at_text) + timedelta(milliseconds=k)
            event_id = str(ULID())
            first = first or event_id
            fields["event_id"], fields["case_id"], fields["seq"] = event_id, case_id, seq
            fields["at"], fields["prev_hash"] = at.astimezone(UTC).isoformat().replace("+00:00", "Z"), prev
            body, prev = seal(fields)
            bodies.append(body)
        out.append((first, decision_body(bodies)))
    return out, prev, seq


@dataclass
class HistoryCounts:
    cases: int = 0
    messages: int = 0
    events: int = 0
    by_state: dict | None = None
    overdue: int = 0

    def add(self, other: HistoryCounts) -> None:
        self.cases += other.cases
        self.messages += other.messages
        self.events += other.events
        self.overdue += other.overdue
        for k, v in (other.by_state or {}).items():
            self.by_state = self.by_state or {}
            self.by_state[k] = self.by_state.get(k, 0) + v


HISTORY_BATCH = 1000


async def _publish_range(url: str, spec: HistorySpec, first: int, stop: int, progress: Any) -> HistoryCounts:
    """Write cases ``first .. stop-1`` with their heads; ``progress`` (a shared counter) counts cases."""
    import nats

    nc = await nats.connect(url, name=f"bench-history-{first}", pending_size=256 * 1024 * 1024)
    templates = _history_templates()
    counts = HistoryCounts(by_state={})
    acks: dict[str, int] = {}
    need = [0]
    done = asyncio.Event()
    errors: list[str] = []
    prefix = nc.new_inbox()

    async def on_ack(msg: object) -> None:
        data = msg.data  # type: ignore[attr-defined]
        try:
            acks[msg.subject.rpartition(".")[2]] = json.loads(data)["seq"]  # type: ignore[attr-defined]
        except (KeyError, ValueError):
            errors.append(data.decode(errors="replace"))
        if len(acks) + len(errors) >= need[0]:
            done.set()

    sub = await nc.subscribe(f"{prefix}.*", cb=on_ack, pending_msgs_limit=-1, pending_bytes_limit=-1)
    try:
        for start in range(first, stop, HISTORY_BATCH):
            end = min(stop, start + HISTORY_BATCH)
            rng = _Rng(spec.seed, start // HISTORY_BATCH)
            cases = []
            for n in range(start, end):
                case_id, decided, info = _case_events(spec, n, rng, templates)
                messages, last_hash, events = seal_case(case_id, decided)
                cases.append((case_id, messages, last_hash, events))
                counts.cases += 1
                counts.messages += len(messages)
                counts.events += events
                assert counts.by_state is not None
                counts.by_state[info["state"]] = counts.by_state.get(info["state"], 0) + 1
                counts.overdue += bool(info.get("overdue"))
            last = [0] * len(cases)
            for position in range(max(len(c[1]) for c in cases)):
                acks.clear()
                errors.clear()
                done.clear()
                sent = []
                for k, (case_id, messages, _, _) in enumerate(cases):
                    if position < len(messages):
                        msg_id, body = messages[position]
                        await nc.publish(
                            case_subject(case_id),
                            body,
                            reply=f"{prefix}.{k}",
                            headers={
                                "Nats-Msg-Id": msg_id,
                                "Nats-Expected-Last-Subject-Sequence": str(last[k]),
                            },
                        )
                        sent.append(k)
                need[0] = len(sent)
                await asyncio.wait_for(done.wait(), 120)
                if errors:
                    raise RuntimeError(f"the stream refused a message: {errors[0]}")
                for k in sent:
                    last[k] = acks[str(k)]
            for k, (case_id, _, last_hash, events) in enumerate(cases):
                head = {"seq": events, "hash": last_hash, "stream_seq": last[k]}
                await nc.publish(f"$KV.{HEADS_BUCKET}.{case_id}", json.dumps(head).encode())
            progress.add(len(cases))
        await nc.flush()
    finally:
        await sub.unsubscribe()
        await nc.close()
    return counts


def generate_history(url: str, spec: HistorySpec, jobs: int, log: Callable[[str], None] = print) -> HistoryCounts:
    """Fill the (empty) case stream on ``url`` with ``spec``'s cases, ``jobs`` processes at once.

    Each process is ``python -m bench.streamgen URL FIRST STOP SPEC``: it prints a line per batch
    written and its counts as JSON at the end.
    """
    import selectors
    import subprocess
    import sys
    from pathlib import Path

    async def prepare() -> None:
        import nats

        nc = await nats.connect(url, name="bench-history")
        try:
            store = EventStore(nc.jetstream())
            await store.ensure()
            if await store.last_seq() != 0:
                raise RuntimeError("generate_history needs an empty stream")
        finally:
            await nc.close()

    asyncio.run(prepare())
    total = spec.closed + spec.open
    # whole batches per process, so the fixture's content does not depend on ``jobs``
    batches = -(-total // HISTORY_BATCH)
    bounds = [min(total, (batches * w // jobs) * HISTORY_BATCH) for w in range(jobs + 1)]
    text = json.dumps(spec.__dict__)
    root = Path(__file__).resolve().parents[1]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.streamgen", url, str(bounds[w]), str(bounds[w + 1]), text],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=root,
            text=True,
        )
        for w in range(jobs)
        if bounds[w + 1] > bounds[w]
    ]
    sel = selectors.DefaultSelector()
    for proc in procs:
        assert proc.stdout is not None
        sel.register(proc.stdout, selectors.EVENT_READ, proc)
    counts = HistoryCounts(by_state={})
    done, open_pipes, last_report = 0, len(procs), 0.0
    while open_pipes:
        for key, _ in sel.select(timeout=1.0):
            line = key.fileobj.readline()  # type: ignore[union-attr]
            if not line:
                sel.unregister(key.fileobj)
                open_pipes -= 1
            elif line.startswith("cases "):
                done += int(line.split()[1])
            elif line.startswith("{"):
                part = json.loads(line)
                counts.add(HistoryCounts(**part))
        now = time.perf_counter()
        if now - last_report >= 15 or not open_pipes:
            last_report = now
            rate = done / max(now - started, 1e-9)
            left = (total - done) / rate if rate else 0
            log(f"history: {done:,} of {total:,} cases ({rate:,.0f} cases/s, about {left:.0f}s left)")
    failed = [p.wait() for p in procs]
    if any(failed) or counts.cases != total:
        raise RuntimeError(f"history generator processes exited with {failed}; {counts.cases} of {total} cases")
    return counts


if __name__ == "__main__":
    import sys

    _url, _first, _stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    _spec = json.loads(sys.argv[4])
    _spec["departments"] = tuple(_spec["departments"])

    class _Progress:
        def add(self, n: int) -> None:
            print(f"cases {n}", flush=True)

    _counts = asyncio.run(_publish_range(_url, HistorySpec(**_spec), _first, _stop, _Progress()))
    print(json.dumps(_counts.__dict__), flush=True)

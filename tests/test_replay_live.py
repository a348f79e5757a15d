"""Replay equals live: random window workloads through the live broker, then the stream replayed.

Every case the replay rebuilds from the stream alone must equal the broker's own state of it, field
for field (``CaseState.to_dict()``), and the record the broker wrote must verify clean.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import nats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import discover, installed_departments
from unstuck.broker import Broker
from unstuck.clock import SimulatedClock
from unstuck.replay import replay
from unstuck.testing import DEFAULT_START, ApiError, api_call, fast_config

DEPARTMENTS = ("renshe", "scjg", "chengguan")
SAMPLES = [f"{i:02d}" for i in range(1, 14)]
case_ref = st.integers(min_value=0, max_value=3)

steps = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(SAMPLES)),
    st.tuples(
        st.just("classify"),
        case_ref,
        st.sampled_from(["cannot", "hard", "refused", "guided"]),
        st.sampled_from(DEPARTMENTS),
    ),
    st.tuples(st.just("handover"), case_ref, st.sampled_from(["w-wang", "w-zhao", "head-sun"])),
    st.tuples(st.just("extend"), case_ref, st.integers(min_value=1, max_value=5)),
    st.tuples(st.just("approve"), case_ref),
    st.tuples(
        st.just("record"),
        case_ref,
        st.sampled_from(DEPARTMENTS),
        st.sampled_from(["resolved", "accepted", "cannot", "need_materials"]),
    ),
    st.tuples(st.just("guide"), case_ref),
    st.tuples(st.just("close"), case_ref, st.sampled_from(["resolved", "cannot", "guided", "withdrawn"])),
    st.tuples(
        st.just("evaluate"), case_ref, st.sampled_from(["good", "bad"]), st.sampled_from([None, *DEPARTMENTS])
    ),
    st.tuples(st.just("reopen"), case_ref),
    st.tuples(st.just("escalate"), case_ref, st.sampled_from(DEPARTMENTS)),
    st.tuples(st.just("tick"), st.sampled_from([1, 6, 24, 72, 120])),
)
workloads = st.lists(steps, min_size=10, max_size=40)


def request_for(step: tuple[Any, ...], case_id: str) -> tuple[str, dict[str, Any]]:
    """The API call of one step on one case."""
    verb, *args = step
    base = {"case_id": case_id}
    match verb:
        case "classify":
            return "case.classify", {
                **base,
                "actor": "leader-gao",
                "category": args[1],
                "reason": "複核後重新判斷",
                "departments": [args[2]],
            }
        case "handover":
            return "case.handover", {**base, "actor": "leader-gao", "owner": args[1], "reason": "調整分工"}
        case "extend":
            return "case.extend", {
                **base,
                "actor": "leader-gao",
                "working_days": args[1],
                "reason": "需上級答覆",
            }
        case "approve":
            return "case.approve_extension", {**base, "actor": "director-ma"}  # not the requester
        case "record":
            extra: dict[str, Any] = {}
            if args[2] == "cannot":
                extra["legal_basis"] = "相關規定第三條"
            if args[2] == "accepted":
                extra["expected_date"] = "2026-10-20"
            if args[2] == "need_materials":
                extra["materials"] = ["營業執照副本"]
            return "case.record", {
                **base,
                "actor": args[1],  # only the department records its own answer
                "department": args[1],
                "outcome": args[2],
                "message": "部門電話答覆",
                "handler": "科員",
                **extra,
            }
        case "guide":
            return "case.guide", {
                **base,
                "actor": "leader-gao",
                "window": "綜合窗口",
                "instructions": "攜帶身份證",
            }
        case "close":
            return "case.close", {
                **base,
                "actor": "leader-gao",
                "outcome": args[1],
                "explanation": "已當面說明",
            }
        case "evaluate":
            body = {**base, "rating": args[1], "comment": "評價"}  # the applicant rates, not staff
            if args[2]:
                body["department_at_fault"] = args[2]
            return "case.evaluate", body
        case "reopen":
            return "case.reopen", {**base, "actor": "leader-gao", "reason": "申請人不滿意"}
        case "escalate":
            return "case.escalate", {
                **base,
                "actor": "leader-gao",
                "department": args[1],
                "level": "section_head",
                "note": "請儘快答覆",
            }
    raise AssertionError(step)


def quiet(broker: Broker, last_seq: int) -> bool:
    """Everything stored is applied and no department is still being asked."""
    if broker.applied_seq < last_seq:
        return False
    return not any(
        c.awaiting_reply for s in broker.states.values() if s.state in lc.OPEN_STATES for c in s.current()
    )


# The event each accepted command must have added to its case (a refused one adds nothing).
EVIDENCE = {
    "case.classify": {"case.classified", "case.reclassified"},
    "case.handover": {"case.owner_assigned"},
    "case.extend": {"case.extension_requested"},
    "case.approve_extension": {"case.extended"},
    "case.record": {"coordination.replied"},
    "case.guide": {"case.guided"},
    "case.close": {"case.closed"},
    "case.evaluate": {"case.evaluated"},
    "case.reopen": {"case.reopened"},
    "case.escalate": {"case.escalated"},
}
# Why the window may refuse a random command: not in this state, or a request the state makes invalid.
REFUSALS = {"not_allowed", "conflict", "invalid_request"}
# Every workload starts with steps that must be accepted, so no run passes on refusals alone.
PREFIX: list[tuple[Any, ...]] = [
    ("open", "01"),
    ("escalate", 0, "chengguan"),
    ("extend", 0, 2),
    ("approve", 0),
]


async def run_workload(url: str, workload: list[tuple[Any, ...]]) -> None:
    clock = SimulatedClock(DEFAULT_START)
    nc = await nats.connect(url)
    hnc = await nats.connect(url)
    config = fast_config()
    # the examples share one stream and the samples one applicant: the daily quota is not under test
    config.limits.cases_per_applicant_per_day = 0
    broker = Broker(nc, config, clock, departments=installed_departments())
    await broker.start()
    found = discover()
    host = AdapterHost(hnc, [found[c] for c in DEPARTMENTS])
    await host.start()
    cases: list[str] = []
    try:
        for index, step in enumerate([*PREFIX, *workload]):
            if step[0] == "open":
                cases.append((await api_call(nc, "case.open", sample(step[1])))["case_id"])
                continue
            if step[0] == "tick":
                clock.advance(timedelta(hours=step[1]))
                await api_call(nc, "admin.tick", {})
                continue
            case_id = cases[step[1] % len(cases)]
            verb, body = request_for(step, case_id)
            before = broker.state_of(case_id).seq
            try:
                await api_call(nc, verb, body)
            except ApiError as exc:
                assert index >= len(PREFIX), f"a scripted step was refused: {step}: {exc.error}"
                assert exc.error["code"] in REFUSALS, (step, exc.error)
                continue
            added = {e.type for e in await broker.store.read_case(case_id) if e.seq > before}
            assert added & EVIDENCE[verb], f"{verb} accepted on {case_id} but recorded only {sorted(added)}"
        deadline = time.monotonic() + 30
        while not quiet(broker, await broker.store.last_seq()):
            assert time.monotonic() < deadline, "the bus did not settle"
            await asyncio.sleep(0.05)
    finally:
        await host.stop()
    try:
        report = await replay(nc, verify=True)
        assert report.ok, [str(f) for f in report.findings]
        # the examples share the stream: this broker started from the last one's snapshot
        assert len(report.cases) == broker.book.known_cases
        for case_id, track in report.cases.items():
            await broker.book.ensure(case_id)  # a closed case is read back from its subject
            assert track.state.to_dict() == broker.state_of(case_id).to_dict(), case_id
    finally:
        await broker.stop()
    await hnc.close()
    await nc.close()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(workload=workloads)
def test_replayed_state_of_every_case_equals_the_live_brokers(nats_server, workload):
    asyncio.run(run_workload(nats_server.url, workload))

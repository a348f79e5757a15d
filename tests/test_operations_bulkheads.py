"""Bulkheads: each department has its own concurrency limit and retry schedule, so a dead one blocks nobody else.

How much a dead department slows the others' replies is a figure for ``make bench``, not an assertion here."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from nats.aio.msg import Msg

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.broker import Broker
from unstuck.config import Config, DepartmentConfig
from unstuck.schemas import CoordinationReply, CoordinationRequest, Outcome
from unstuck.testing import api_call, fast_config, resident_id, wait_for

LIVE = ("renshe", "scjg", "chengguan")
SAMPLES = {"renshe": "08", "scjg": "02", "chengguan": "01"}
ZHUJIAN_SLOTS = 4
_applicants = itertools.count(1)


def case(prefix: str, **changes: Any) -> dict[str, Any]:
    """A sample case for a new applicant each time (one applicant may open only so many a day)."""
    body = sample(prefix, **changes)
    body["applicant"] = {**body["applicant"], "kind": "citizen", "id_number": resident_id(next(_applicants))}
    return body


@pytest.fixture
def unstuck_config() -> Config:
    """住建 (zhujian) with a small bulkhead, fewer attempts and a reply timeout longer than any test,
    so a request it holds keeps its slot until the test lets it go; 自然資源 (ziran) with more attempts.
    The live departments get a generous timeout too: no attempt in these tests may end by the clock."""
    config = fast_config(timeout_seconds=20.0)
    config.departments["zhujian"] = DepartmentConfig(
        name="住房和城鄉建設局",
        retry={"concurrency": ZHUJIAN_SLOTS, "timeout_seconds": 120.0, "attempts": 2},
    )
    config.departments["ziran"] = DepartmentConfig(name="自然資源局", retry={"attempts": 4})
    return config


class HeldDepartment:
    """住建's system: it takes every request and answers none until the test releases them."""

    def __init__(self) -> None:
        self.held: dict[str, Msg] = {}  # request_id -> the request, not answered yet
        self.received: list[str] = []
        self.most_held = 0
        self.answering = False

    async def on_request(self, msg: Msg) -> None:
        request = CoordinationRequest.model_validate_json(msg.data)
        self.received.append(request.request_id)
        self.held[request.request_id] = msg
        self.most_held = max(self.most_held, len(self.held))
        if self.answering:
            await self.answer_all()

    async def answer_all(self) -> None:
        self.answering = True
        for request_id, msg in list(self.held.items()):
            del self.held[request_id]
            reply = CoordinationReply(
                request_id=request_id,
                department="zhujian",
                outcome=Outcome.RESOLVED,
                message="已辦結",
                handler="住建窗口",
            )
            await msg.respond(reply.model_dump_json().encode())


def answered(broker: Broker, case_id: str) -> bool:
    """Every department asked about the case has answered it (an `accepted` answer counts)."""
    coordinations = broker.state_of(case_id).coordinations.values()
    return bool(coordinations) and all(c.status == "answered" for c in coordinations)


async def test_department_that_never_answers_holds_only_its_own_slots_and_the_others_are_answered(
    broker: Broker, builtin_adapters, nats_client
) -> None:
    zhujian = HeldDepartment()
    await nats_client.subscribe(
        "unstuck.dept.zhujian.coordinate", queue="unstuck.dept.zhujian", cb=zhujian.on_request
    )
    stuck = [
        (await api_call(nats_client, "case.open", case("02", department="zhujian")))["case_id"]
        for _ in range(16)
    ]
    in_flight = broker.metrics.in_flight.labels("zhujian")
    await wait_for(lambda: len(zhujian.held) == ZHUJIAN_SLOTS and in_flight._value.get() == ZHUJIAN_SLOTS)

    # while zhujian holds every slot of its bulkhead and twelve more requests queue behind them,
    # 36 cases for the three live departments are opened and answered
    live = await asyncio.gather(
        *(api_call(nats_client, "case.open", case(SAMPLES[d])) for _ in range(12) for d in LIVE)
    )
    live_ids = [opened["case_id"] for opened in live]
    await wait_for(lambda: all(answered(broker, c) for c in live_ids), 60, "the live departments answered")

    for case_id in live_ids:
        [coordination] = broker.state_of(case_id).coordinations.values()
        assert coordination.department in LIVE
        assert coordination.attempts == 1, "a live department was asked more than once"
    for d in LIVE:
        stats = broker.coordinator.department_stats(d)
        assert (stats.timeouts, stats.retries, stats.no_responders) == (0, 0, 0), d
        assert broker.metrics.pending.labels(d)._value.get() == 0
    # zhujian got exactly its four slots' worth of requests and answered none of them
    assert len(zhujian.received) == ZHUJIAN_SLOTS and zhujian.most_held == ZHUJIAN_SLOTS
    assert in_flight._value.get() == ZHUJIAN_SLOTS
    assert broker.metrics.waiting.count("zhujian") == 16
    assert broker.metrics.pending.labels("zhujian")._value.get() == 16
    assert all(broker.state_of(c).state == lc.COORDINATING and not answered(broker, c) for c in stuck)

    # released, zhujian answers its sixteen requests four at a time, each once
    await zhujian.answer_all()
    await wait_for(lambda: all(answered(broker, c) for c in stuck), 60, "zhujian answered")
    assert sorted(zhujian.received) == sorted(f"{c}-c1" for c in stuck)
    assert zhujian.most_held == ZHUJIAN_SLOTS
    assert broker.coordinator.department_stats("zhujian").timeouts == 0


async def test_each_department_stalls_after_its_own_number_of_attempts(broker: Broker, nats_client) -> None:
    zhujian = await api_call(nats_client, "case.open", sample("02", department="zhujian"))
    ziran = await api_call(nats_client, "case.open", sample("02", department="ziran"))
    await wait_for(lambda: broker.stalled_counts["zhujian"] == 1 and broker.stalled_counts["ziran"] == 1)
    attempts = []
    for opened in (zhujian, ziran):
        got = await api_call(nats_client, "case.get", {"case_id": opened["case_id"]})
        types = [e["type"] for e in got["events"]]
        stall = types.index("coordination.stalled")  # the slow schedule's later attempts come after it
        retried = types[:stall].count("coordination.retried")
        attempts.append((got["events"][stall]["data"]["attempts"], retried + 1))
    assert attempts == [(2, 2), (4, 4)]
    assert broker.coordinator.policy("zhujian").concurrency == ZHUJIAN_SLOTS
    assert broker.coordinator.policy("ziran").concurrency == 64

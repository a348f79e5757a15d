"""Bulkheads: each department has its own concurrency limit and retry schedule, so a dead one slows nobody else."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from conftest import sample
from unstuck.broker import Broker
from unstuck.config import Config, DepartmentConfig
from unstuck.testing import api_call, fast_config, wait_for

LIVE = ("renshe", "scjg", "chengguan")
SAMPLES = {"renshe": "08", "scjg": "02", "chengguan": "01"}
ZHUJIAN_SLOTS = 4
_applicants = itertools.count(1)


def case(prefix: str, **changes: Any) -> dict[str, Any]:
    """A sample case for a new applicant each time (one applicant may open only so many a day)."""
    body = sample(prefix, **changes)
    body["applicant"] = {**body["applicant"], "id_number": f"91210600MA1{next(_applicants):07d}"}
    return body


@pytest.fixture
def unstuck_config() -> Config:
    """住建 (zhujian) with a small bulkhead and fewer attempts; 自然資源 (ziran) with more attempts."""
    config = fast_config()
    config.departments["zhujian"] = DepartmentConfig(
        name="住房和城鄉建設局",
        retry={"concurrency": ZHUJIAN_SLOTS, "timeout_seconds": 0.3, "attempts": 2},
    )
    config.departments["ziran"] = DepartmentConfig(name="自然資源局", retry={"attempts": 4})
    return config


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


async def answered_round(broker: Broker, nc, per_department: int) -> list[float]:
    """Open cases for the three live departments at once; the reply times of their coordinations."""
    stats = {d: broker.coordinator.department_stats(d) for d in LIVE}
    before = {d: len(stats[d].latencies) for d in LIVE}
    await asyncio.gather(
        *(api_call(nc, "case.open", case(SAMPLES[d])) for _ in range(per_department) for d in LIVE)
    )
    await wait_for(lambda: all(len(stats[d].latencies) >= before[d] + per_department for d in LIVE))
    return [x for d in LIVE for x in list(stats[d].latencies)[before[d] :]]


async def test_department_that_never_answers_leaves_the_others_reply_time_unchanged(
    broker: Broker, builtin_adapters, nats_client
) -> None:
    await nats_client.subscribe(
        "unstuck.dept.zhujian.coordinate", queue="unstuck.dept.zhujian", cb=_never_reply
    )
    await answered_round(broker, nats_client, 3)  # warm up
    without_dead = await answered_round(broker, nats_client, 12)

    await asyncio.gather(
        *(api_call(nats_client, "case.open", case("02", department="zhujian")) for _ in range(16))
    )
    in_flight = broker.metrics.in_flight.labels("zhujian")
    await wait_for(lambda: in_flight._value.get() == ZHUJIAN_SLOTS)
    highest = 0.0

    async def watch_bulkhead() -> None:
        nonlocal highest
        while True:
            highest = max(highest, in_flight._value.get())
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch_bulkhead())
    with_dead = await answered_round(broker, nats_client, 12)
    still_waiting = broker.metrics.waiting.count("zhujian")
    watcher.cancel()

    print(
        f"\nreply p95 of renshe/scjg/chengguan: {p95(without_dead) * 1000:.1f} ms without a dead department, "
        f"{p95(with_dead) * 1000:.1f} ms while zhujian never answers ({len(with_dead)} replies each)"
    )
    assert still_waiting == 16, "zhujian answered nothing while the others were asked"
    assert highest == ZHUJIAN_SLOTS, "zhujian's requests in flight stay within its own bulkhead"
    assert p95(with_dead) <= 3 * p95(without_dead) + 0.020
    for d in LIVE:
        assert broker.coordinator.department_stats(d).timeouts == 0


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


async def _never_reply(msg) -> None:
    return None

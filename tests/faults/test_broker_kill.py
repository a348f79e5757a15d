"""The broker SIGKILLed mid-load and started again: it rebuilds from the stream and resumes every
pending coordination with the same request_id."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import pytest
from nats.aio.client import Client

from unstuck.embedded import EmbeddedNats

from .harness import BUILTIN, Bus, Load, department_stats, record, verify

pytestmark = pytest.mark.slow


def _at(event: dict) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


async def test_broker_killed_mid_load_resumes_every_pending_coordination_with_the_same_request_id(
    nats_server: EmbeddedNats, make_bus: Callable[..., Bus], observer: Client, tmp_path
) -> None:
    bus = make_bus(nats_server.url, retry={"timeout_seconds": 3.0})
    for code in BUILTIN:  # each department takes 0.8 s, so coordinations are in flight at the kill
        bus.department(code, "slow", delay=0.8).start()
    broker = bus.broker().start()
    load = Load(nats_server.url, "broker-kill", total=240).start()
    await load.wait_accepted(80)
    accepted_at_kill = len(load.accepted)
    killed_wall = time.time()
    broker.kill()
    killed = time.monotonic()
    broker.start()
    ready = time.monotonic()
    await load.finish()

    verdict = await verify(observer, nats_server.url, tmp_path, "broker_killed", load)
    count = verdict.count
    requested = {
        e["data"]["request_id"]: e
        for events in count.cases.values()
        for e in events
        if e["type"] == "coordination.requested"
    }
    replied = {
        e["data"]["request_id"]: e
        for events in count.cases.values()
        for e in events
        if e["type"] == "coordination.replied"
    }
    pending_at_kill = sorted(
        rid
        for rid, e in requested.items()
        if _at(e) < killed_wall and (rid not in replied or _at(replied[rid]) > killed_wall)
    )
    resumed = [rid for rid in pending_at_kill if rid in replied and _at(replied[rid]) > killed_wall]
    asked = [await department_stats(observer, code) for code in BUILTIN]
    asked_ids = {rid for stats in asked for rid in stats["request_ids"]}
    recovery = load.first_ack_after(ready)
    record(
        "broker_killed",
        {
            **verdict.figures(),
            "accepted_before_fault": accepted_at_kill,
            "pending_at_kill": len(pending_at_kill),
            "resumed_after_restart": len(resumed),
            "requests_repeated_to_departments": sum(s["repeats"] for s in asked),
            "restart_seconds": round(ready - killed, 2),
            "recovery_seconds": round(ready - killed + recovery, 2) if recovery is not None else None,
        },
    )
    assert verdict.cases_in == 240
    assert verdict.lost == 0
    assert verdict.duplicated == 0
    assert verdict.findings == 0, verdict.replay
    assert verdict.replay_exit == 0
    assert verdict.count.half_written == []
    assert verdict.unsettled == []
    assert pending_at_kill, "the kill must catch coordinations in flight"
    assert sorted(resumed) == pending_at_kill  # every one answered, by the restarted broker
    # the same request ids: the departments never saw an id the stream does not hold
    assert asked_ids == set(requested)

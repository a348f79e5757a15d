"""Two broker replicas on one stream: no case forks; a conflicting append is detected and decided
again on the fresh state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import nats
import pytest
from nats.aio.client import Client

from unstuck.embedded import EmbeddedNats

from .harness import BUILTIN, Bus, Load, count_stream, metric, record, scrape, verify

pytestmark = pytest.mark.slow

WRITERS = 4  # concurrent escalations per case, spread over both replicas by the queue group


async def _escalate(nc: Client, case_id: str, n: int) -> dict:
    body = {
        "case_id": case_id,
        "actor": "leader-gao",
        "department": "renshe",
        "level": "section_head",
        "note": f"督辦 {n}",
    }
    for _ in range(50):
        msg = await nc.request(
            "unstuck.api.case.escalate", json.dumps(body, ensure_ascii=False).encode(), timeout=10
        )
        reply = json.loads(msg.data)
        if reply["ok"] or reply["error"]["code"] != "conflict":
            return reply
        await asyncio.sleep(0.05)  # "kept changing under concurrent writers": try again
    return reply


async def test_two_replicas_never_fork_a_case_and_decide_again_after_a_conflict(
    nats_server: EmbeddedNats, make_bus: Callable[..., Bus], observer: Client, tmp_path
) -> None:
    bus = make_bus(nats_server.url, retry={"timeout_seconds": 3.0})
    for code in BUILTIN:  # slow answers: the second replica starts while many requests are pending
        bus.department(code, "slow", delay=0.8).start()
    first = bus.broker("broker-a").start()
    load = Load(nats_server.url, "replicas", total=200).start()
    await load.wait_accepted(60)
    second = bus.broker("broker-b").start()  # resumes the same pending coordinations as the first
    await load.finish()

    # every case gets WRITERS escalations at once, through both replicas
    clients = [await nats.connect(nats_server.url) for _ in range(WRITERS)]
    cases = sorted(load.accepted.values())
    try:
        results = await asyncio.gather(
            *(_escalate(clients[n], case_id, n) for case_id in cases for n in range(WRITERS))
        )
    finally:
        for nc in clients:
            await nc.close()
    refused = [r for r in results if not r["ok"]]

    verdict = await verify(observer, nats_server.url, tmp_path, "two_replicas", load)
    count = await count_stream(observer)
    conflicts = {p.name: int(metric(scrape(p), "unstuck_append_conflicts_total")) for p in (first, second)}
    notes_per_case = {
        c: sorted(
            e["data"]["note"] for e in count.events_of(c, "case.escalated") if e["data"]["reason"] == "direct"
        )
        for c in cases
    }
    record(
        "two_replicas",
        {
            **verdict.figures(),
            "concurrent_escalations": len(results),
            "escalations_refused": len(refused),
            "append_conflicts": conflicts,
        },
    )
    assert first.alive and second.alive
    assert verdict.cases_in == 200
    assert verdict.lost == 0
    assert verdict.duplicated == 0  # no duplicate case, event or recorded reply
    assert verdict.findings == 0, verdict.replay  # no fork: every case one unbroken chain
    assert verdict.replay_exit == 0
    assert verdict.unsettled == []
    assert refused == []
    # each escalation stored exactly once, none lost to the conflict: decided again on the fresh state
    assert all(notes == [f"督辦 {n}" for n in range(WRITERS)] for notes in notes_per_case.values())
    assert sum(conflicts.values()) > 0

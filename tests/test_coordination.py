"""Coordination with departments over NATS: retries, NoResponders, invalid replies, stalls, dedup."""

from __future__ import annotations

import asyncio
import json

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.adapters.hookspecs import adapter_hookimpl
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome
from unstuck.testing import api_call, send_coordination, wait_for


def counter(broker, name: str, *labels: str) -> float:
    return getattr(broker.metrics, name).labels(*labels)._value.get()


async def stored_types(broker, case_id: str) -> list[str]:
    return [e.type for e in await broker.store.read_case(case_id)]


async def test_no_responders_is_its_own_outcome_distinct_from_timeout(broker, nats_client):
    opened = await api_call(nats_client, "case.open", sample("01"))  # chengguan: nobody serves it
    case_id = opened["case_id"]
    await wait_for(lambda: broker.state_of(case_id).coordinations[f"{case_id}-c1"].status == "stalled")
    assert counter(broker, "requests", "chengguan", "no_responders") == 3
    assert counter(broker, "requests", "chengguan", "timeout") == 0
    types = await stored_types(broker, case_id)
    assert types.count("coordination.retried") == 2
    assert "coordination.stalled" in types and types[-1] == "case.escalated"
    events = await broker.store.read_case(case_id)
    retried = [e.fields["data"] for e in events if e.type == "coordination.retried"]
    assert {r["reason"] for r in retried} == {"no_responders"}


class Slow:
    """A department whose back office takes longer than the broker waits."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    @adapter_hookimpl
    def unstuck_department(self) -> Department:
        return Department(code="chengguan", name="城市管理局")

    @adapter_hookimpl
    async def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        return CoordinationReply(
            request_id=request.request_id,
            department="chengguan",
            outcome=Outcome.RESOLVED,
            message="辦好了",
            handler="市容科",
        )


async def test_a_slow_department_times_out_is_retried_and_the_repeat_gets_the_first_answer(
    broker, nats_client, serve_adapter
):
    adapter = Slow(0.8)  # the test policy waits 0.5 s per attempt
    await serve_adapter(adapter)
    opened = await api_call(nats_client, "case.open", sample("06"))
    case_id = opened["case_id"]
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    types = await stored_types(broker, case_id)
    assert "coordination.retried" in types and types[-1] == "case.resolved"
    assert counter(broker, "requests", "chengguan", "timeout") >= 1
    assert (
        adapter.calls == 1
    )  # the retry carried the same request_id; the host answered it from the first call


async def test_an_invalid_reply_is_counted_and_retried_never_stored(broker, nats_client):
    async def garbage(msg):
        await msg.respond(b'{"request_id": "x", "outcome": "maybe"}')

    await nats_client.subscribe("unstuck.dept.chengguan.coordinate", cb=garbage)
    opened = await api_call(nats_client, "case.open", sample("06"))
    case_id = opened["case_id"]
    await wait_for(lambda: broker.state_of(case_id).coordinations[f"{case_id}-c1"].status == "stalled")
    assert counter(broker, "invalid_replies", "chengguan") == 3
    assert counter(broker, "requests", "chengguan", "invalid_reply") == 3
    assert "coordination.replied" not in await stored_types(broker, case_id)


async def test_a_reply_naming_another_request_is_refused(broker, nats_client):
    async def confused(msg):
        request = json.loads(msg.data)
        reply = {
            "request_id": "OTHER-0001-c1",
            "department": "chengguan",
            "outcome": "resolved",
            "message": "m",
            "handler": "h",
        }
        assert request["request_id"] != reply["request_id"]
        await msg.respond(json.dumps(reply).encode())

    await nats_client.subscribe("unstuck.dept.chengguan.coordinate", cb=confused)
    opened = await api_call(nats_client, "case.open", sample("06"))
    case_id = opened["case_id"]
    await wait_for(lambda: counter(broker, "invalid_replies", "chengguan") >= 1)
    assert broker.state_of(case_id).coordinations[f"{case_id}-c1"].outcome is None


async def test_a_stalled_department_answers_on_the_slow_schedule_and_the_case_moves_on(
    broker, nats_client, serve_adapter
):
    from unstuck.adapters.registry import discover

    opened = await api_call(nats_client, "case.open", sample("01"))
    case_id = opened["case_id"]
    await wait_for(lambda: broker.state_of(case_id).coordinations[f"{case_id}-c1"].status == "stalled")
    assert broker.metrics.stalled.labels("chengguan")._value.get() == 1
    await serve_adapter(discover()["chengguan"])
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    assert broker.metrics.stalled.labels("chengguan")._value.get() == 0


async def test_the_adapter_host_answers_a_repeated_request_id_with_the_same_answer(
    builtin_adapters, nats_client
):
    first = await send_coordination(nats_client, "chengguan", matter="shop_sign", facts={"floor": 3})
    again = await send_coordination(
        nats_client, "chengguan", matter="shop_sign", facts={"floor": 1}, attempt=2
    )
    assert first == again and first.outcome is Outcome.CANNOT


async def test_a_request_past_its_reply_by_is_dropped_unanswered(builtin_adapters, nats_client):
    from datetime import UTC, datetime, timedelta

    import nats.errors
    import pytest

    with pytest.raises(nats.errors.TimeoutError):
        await send_coordination(
            nats_client, "scjg", timeout=0.5, reply_by=datetime.now(UTC) - timedelta(seconds=1)
        )
    assert builtin_adapters.endpoints["scjg"].counters.expired == 1

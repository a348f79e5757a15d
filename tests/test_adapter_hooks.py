"""The two adapter hooks as docs/adapters.md describes them, served by the real adapter host."""

from __future__ import annotations

import asyncio

from unstuck.adapters import hookimpl
from unstuck.conformance import service_info
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome
from unstuck.testing import assert_error, assert_reply, send_coordination


class Jiaotong:
    """交通運輸局: one matter, answered after asking a (slow) back-office system."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def unstuck_department(self) -> Department:
        return Department(code="jiaotong", name="交通運輸局", matters=["taxi_licence"])

    @hookimpl
    async def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply | dict:
        self.calls.append(request.request_id)
        await asyncio.sleep(0.01)  # stands in for a call to the bureau's own system
        if request.facts.get("crash"):
            raise ConnectionError("back-office system refused the connection")
        if request.facts.get("forget_legal_basis"):  # a plain dict is validated by the host
            return {
                "request_id": request.request_id,
                "department": "jiaotong",
                "outcome": "cannot",
                "message": "不能辦",
                "handler": "運管科",
            }
        return CoordinationReply(
            request_id=request.request_id,
            department="jiaotong",
            outcome=Outcome.RESOLVED,
            message="網約車運輸證已核發",
            handler="運管科",
        )


async def test_unstuck_department_code_becomes_the_subject_and_the_micro_service(nats_client, serve_adapter):
    await serve_adapter(Jiaotong())
    [info] = await service_info(nats_client, "jiaotong", timeout=2.0)
    assert info["name"] == "unstuck-jiaotong"
    assert info["metadata"] == {
        "department": "jiaotong",
        "name": "交通運輸局",
        "adapter": "Jiaotong",
        "matters": "taxi_licence",
        "chain": "{}",  # it declares no one on its escalation chain
    }
    assert info["version"] == "0.0.0"  # served as an object, not from a package
    assert [(e["subject"], e["queue_group"]) for e in info["endpoints"]] == [
        ("unstuck.dept.jiaotong.coordinate", "unstuck.dept.jiaotong")
    ]


async def test_unstuck_coordinate_may_be_a_coroutine_and_is_called_once_per_request_id(
    nats_client, serve_adapter
):
    adapter = Jiaotong()
    await serve_adapter(adapter)
    first, again = await asyncio.gather(
        send_coordination(nats_client, "jiaotong", matter="taxi_licence", request_id="TAXI-0001-c1"),
        send_coordination(
            nats_client, "jiaotong", matter="taxi_licence", request_id="TAXI-0001-c1", attempt=2
        ),
    )
    assert_reply(first, outcome="resolved")
    assert again == first
    assert adapter.calls == ["TAXI-0001-c1"]


async def test_unstuck_coordinate_that_raises_is_answered_with_an_error_and_the_adapter_survives(
    nats_client, serve_adapter
):
    host = await serve_adapter(Jiaotong())
    failed = await send_coordination(nats_client, "jiaotong", matter="taxi_licence", facts={"crash": True})
    assert "ConnectionError" in assert_error(failed).error
    invalid = await send_coordination(
        nats_client,
        "jiaotong",
        matter="taxi_licence",
        facts={"forget_legal_basis": True},
        request_id="TAXI-0002-c1",
    )
    assert "legal_basis is required" in assert_error(invalid).error
    ok = await send_coordination(nats_client, "jiaotong", matter="taxi_licence", request_id="TAXI-0003-c1")
    assert_reply(ok, outcome="resolved")
    assert host.endpoints["jiaotong"].counters.failed == 2

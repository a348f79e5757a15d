"""Departments join while the broker runs: learned from NATS micro discovery, never from what is installed.

A department's adapter registers ``unstuck-<code>`` with its name and escalation chain; the broker asks
``$SRV.INFO`` for one it does not know the moment a request names it, and every
``[broker] discovery_seconds``. One that goes away stays known and stalls as before.
"""

from __future__ import annotations

import pytest

from conftest import sample
from unstuck.adapters import hookimpl
from unstuck.broker import Broker
from unstuck.config import Config, DepartmentConfig
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome
from unstuck.testing import api_call, fast_config, wait_for


class Jiaoyi:
    """公共資源交易中心: a department no configuration names, with its own escalation chain."""

    @hookimpl
    def unstuck_department(self) -> Department:
        return Department(
            code="jiaoyi",
            name="公共資源交易中心",
            matters=["bid_deposit"],
            chain={"section_head": "交易科 劉科長", "director": "主任 周明"},
        )

    @hookimpl
    async def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        return CoordinationReply(
            request_id=request.request_id,
            department="jiaoyi",
            outcome=Outcome.RESOLVED,
            message="保證金已退還",
            handler="交易科",
        )


def a_case_for(department: str) -> dict:
    return sample("02", department=department, matter="bid_deposit", category="hard")


async def escalated_to(broker: Broker, case_id: str) -> list[tuple[str, str]]:
    events = await broker.store.read_case(case_id)
    return [
        (e.fields["data"]["role"], e.fields["data"]["target"]) for e in events if e.type == "case.escalated"
    ]


async def test_a_department_nobody_answers_for_is_refused_then_routed_once_its_adapter_serves(
    broker, nats_client, serve_adapter
):
    with pytest.raises(Exception) as refused:
        await api_call(nats_client, "case.open", a_case_for("jiaoyi"))
    assert "unknown department 'jiaoyi'" in str(refused.value)

    await serve_adapter(Jiaoyi())  # no restart, no configuration: it answers on the bus now
    opened = await api_call(nats_client, "case.open", a_case_for("jiaoyi"))
    case_id = opened["case_id"]
    await wait_for(lambda: broker.state_of(case_id).state == "answered", what="jiaoyi's answer")
    assert broker.departments["jiaoyi"] == "公共資源交易中心"  # its name from the service metadata
    status = await api_call(nats_client, "status", {})
    assert "jiaoyi" in str(status)


async def test_the_chain_the_adapter_declares_names_whom_an_escalation_reached(
    broker, nats_client, serve_adapter
):
    await serve_adapter(Jiaoyi())
    case_id = (await api_call(nats_client, "case.open", a_case_for("jiaoyi")))["case_id"]
    for level in ("section_head", "leader_in_charge", "director"):
        await api_call(
            nats_client,
            "case.escalate",
            {
                "case_id": case_id,
                "actor": "w-zhang",
                "department": "jiaoyi",
                "level": level,
                "note": "請督辦",
            },
        )
    assert await escalated_to(broker, case_id) == [
        ("section_head", "交易科 劉科長"),  # declared by the adapter
        ("leader_in_charge", "公共資源交易中心分管領導"),  # declared by no one: the post
        ("director", "主任 周明"),
    ]


class TestAConfiguredChain:
    @pytest.fixture
    def unstuck_config(self) -> Config:
        config = fast_config()
        config.departments["jiaoyi"] = DepartmentConfig(
            name="公共資源交易中心", chain={"director": "中心主任 吳剛"}
        )
        return config

    async def test_overrides_the_chain_the_adapter_declares(self, broker, nats_client, serve_adapter):
        await serve_adapter(Jiaoyi())
        case_id = (await api_call(nats_client, "case.open", a_case_for("jiaoyi")))["case_id"]
        await api_call(
            nats_client,
            "case.escalate",
            {
                "case_id": case_id,
                "actor": "w-zhang",
                "department": "jiaoyi",
                "level": "director",
                "note": "請督辦",
            },
        )
        assert await escalated_to(broker, case_id) == [("director", "中心主任 吳剛")]

"""Each broker hook, implemented by an outside plugin installed through the ``unstuck.plugins``
entry point and exercised through a real broker (the examples of docs/plugins.md)."""

from __future__ import annotations

import sys

import pytest

from conftest import sample
from unstuck.config import Config
from unstuck.testing import api_call, fast_config, wait_for

CITY_RULES = '''
from unstuck.plugins import hookimpl
from unstuck.schemas import Category

SEEN = []
STALLS = []


class CityRules:
    """A city's own rules, layered over the built-in ones."""

    @hookimpl
    def unstuck_classify(self, intake):
        if intake.category is None and intake.channel == "enterprise":
            return Category.HARD, "民企直通車：企業反映的事項按很難辦特事特辦"
        return None

    @hookimpl
    def unstuck_route(self, intake, category):
        # outdoor advertising: the content is 市場監管's business under the advertising law
        return ["scjg"] if intake.matter == "outdoor_ad" else []

    @hookimpl
    def unstuck_deadline_working_days(self, category):
        return 4 if category == Category.HARD else None

    @hookimpl
    def unstuck_escalation_chain(self, department):
        if department != "chengguan":
            return None
        return {
            "clerk": "市容科李科員",
            "section_head": "市容科王科長",
            "leader_in_charge": "城管局趙副局長",
            "director": "城管局錢局長",
        }

    @hookimpl
    def unstuck_on_event(self, envelope):
        SEEN.append((envelope.case_id, envelope.type))

    @hookimpl
    def unstuck_on_stall(self, department, case_id, attempts):
        STALLS.append((department, case_id, attempts))
'''


@pytest.fixture
def unstuck_config(plugin_distribution) -> Config:
    """Install the city's plugin before the kit's broker fixture builds its plugin manager."""
    plugin_distribution(
        "city-rules", {"unstuck.plugins": {"city": "city_rules:CityRules"}}, {"city_rules": CITY_RULES}
    )
    return fast_config()


def city():
    return sys.modules["city_rules"]


async def events_of(nc, case_id: str) -> list[dict]:
    return (await api_call(nc, "case.get", {"case_id": case_id}))["events"]


async def test_unstuck_classify_plugin_classifies_an_enterprise_case_left_open_at_intake(broker, nats_client):
    body = sample("02", category=None, channel="enterprise", description="企業反映的事項，窗口未分類。")
    case_id = (await api_call(nats_client, "case.open", body))["case_id"]
    classified = next(e for e in await events_of(nats_client, case_id) if e["type"] == "case.classified")
    assert classified["data"]["category"] == "hard"
    assert classified["data"]["reason"] == "民企直通車：企業反映的事項按很難辦特事特辦"


async def test_unstuck_route_plugin_adds_scjg_to_an_outdoor_ad_case(broker, nats_client):
    case_id = (await api_call(nats_client, "case.open", sample("11")))["case_id"]
    events = await events_of(nats_client, case_id)
    classified = next(e for e in events if e["type"] == "case.classified")
    assert classified["data"]["departments"] == ["chengguan", "scjg"]
    asked = [e["data"]["department"] for e in events if e["type"] == "coordination.requested"]
    assert asked == ["chengguan", "scjg"]


async def test_unstuck_deadline_working_days_plugin_gives_hard_cases_4_days(broker, nats_client):
    case_id = (await api_call(nats_client, "case.open", sample("02")))["case_id"]
    classified = next(e for e in await events_of(nats_client, case_id) if e["type"] == "case.classified")
    assert classified["data"]["working_days"] == 4
    # opened Monday 28 September: 29 Sep, 30 Sep, then National Day (1-7 Oct) off, 8 Oct, 9 Oct
    assert classified["data"]["due_date"] == "2026-10-09"
    cannot = (await api_call(nats_client, "case.open", sample("01")))["case_id"]
    built_in = next(e for e in await events_of(nats_client, cannot) if e["type"] == "case.classified")
    assert built_in["data"]["working_days"] == 3


async def test_unstuck_escalation_chain_plugin_names_who_is_escalated_to(
    broker, builtin_adapters, nats_client
):
    case_id = (await api_call(nats_client, "case.open", sample("06")))["case_id"]
    await api_call(
        nats_client,
        "case.escalate",
        {
            "case_id": case_id,
            "actor": "leader-gao",
            "department": "chengguan",
            "level": "director",
            "note": "占道經營點位協調",
        },
    )
    escalated = next(e for e in await events_of(nats_client, case_id) if e["type"] == "case.escalated")
    assert escalated["data"]["target"] == "城管局錢局長"


async def test_unstuck_on_event_plugin_sees_every_stored_event_in_order(
    broker, builtin_adapters, nats_client
):
    case_id = (await api_call(nats_client, "case.open", sample("01")))["case_id"]
    await wait_for(lambda: broker.state_of(case_id).state == "answered", what="answered")
    stored = [e["type"] for e in await events_of(nats_client, case_id)]
    await wait_for(lambda: len([t for c, t in city().SEEN if c == case_id]) == len(stored), what="all seen")
    assert [t for c, t in city().SEEN if c == case_id] == stored


async def test_unstuck_on_stall_plugin_hears_of_a_department_that_never_answers(broker, nats_client):
    # no adapter serves renshe in this test: every attempt finds no responders
    case_id = (await api_call(nats_client, "case.open", sample("03")))["case_id"]
    await wait_for(lambda: city().STALLS, what="a stall")
    assert city().STALLS[0] == ("renshe", case_id, 3)

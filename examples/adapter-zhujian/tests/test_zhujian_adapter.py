"""Tests of the 住房和城鄉建設局 (zhujian) adapter with the unstuck pytest kit.

The fixtures (nats_client, adapter_under_test, ...) come from ``unstuck.testing``, a pytest plugin
that unstuck registers on install; each test that needs NATS gets its own real nats-server.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest
from unstuck_adapter_zhujian.adapter import ZhujianAdapter

from unstuck.testing import (
    assert_conformant,
    assert_error,
    assert_reply,
    call_adapter,
    coordination_request,
    send_coordination,
    send_raw,
)


@pytest.fixture
def unstuck_adapter() -> ZhujianAdapter:
    return ZhujianAdapter()


async def test_small_works_need_no_construction_permit(unstuck_adapter):
    reply = await call_adapter(
        unstuck_adapter, matter="construction_permit", facts={"investment_wan": 25, "floor_area_m2": 800}
    )
    assert_reply(reply, outcome="resolved")
    assert "可以不申請辦理施工許可證" in reply.message


async def test_construction_permit_without_planning_permit_needs_it_first(unstuck_adapter):
    reply = await call_adapter(
        unstuck_adapter, matter="construction_permit", facts={"investment_wan": 3000, "floor_area_m2": 12000}
    )
    assert_reply(reply, outcome="need_materials")
    assert "建設工程規劃許可證" in reply.materials


async def test_refused_construction_permit_is_issued_on_review(unstuck_adapter):
    reply = await call_adapter(
        unstuck_adapter,
        category="refused",
        matter="construction_permit",
        facts={"investment_wan": 3000, "floor_area_m2": 12000, "planning_permit_obtained": True},
    )
    assert_reply(reply, outcome="resolved", handler="建築市場監管科科長")


async def test_presale_below_a_quarter_of_the_investment_cannot_be_permitted(unstuck_adapter):
    reply = await call_adapter(unstuck_adapter, matter="presale_permit", facts={"investment_percent": 18})
    assert_reply(reply, outcome="cannot", legal_basis="《城市商品房預售管理辦法》第五條")


async def test_presale_with_enough_investment_is_accepted_for_site_inspection(unstuck_adapter):
    request = coordination_request("zhujian", matter="presale_permit")
    reply = await call_adapter(unstuck_adapter, matter="presale_permit", facts={"investment_percent": 40})
    assert_reply(reply, outcome="accepted")
    assert reply.expected_date is not None and reply.expected_date < request.deadline


async def test_illegal_structure_cannot_be_registered_for_rent(unstuck_adapter):
    reply = await call_adapter(
        unstuck_adapter, matter="rental_registration", facts={"illegal_structure": True}
    )
    assert_reply(reply, outcome="cannot", legal_basis="《商品房屋租賃管理辦法》第六條")


async def test_kitchen_let_as_a_bedroom_cannot_be_registered(unstuck_adapter):
    reply = await call_adapter(
        unstuck_adapter, matter="rental_registration", facts={"kitchen_let_as_bedroom": True}
    )
    assert_reply(reply, outcome="cannot", legal_basis="《商品房屋租賃管理辦法》第八條")


async def test_altering_load_bearing_walls_cannot_be_filed(unstuck_adapter):
    reply = await call_adapter(
        unstuck_adapter, matter="renovation_filing", facts={"alters_load_bearing_structure": True}
    )
    assert_reply(reply, outcome="cannot", legal_basis="《住宅室內裝飾裝修管理辦法》第五條")


async def test_shop_sign_is_not_ours_and_belongs_to_chengguan(unstuck_adapter):
    reply = await call_adapter(unstuck_adapter, matter="shop_sign", matter_title="門頭招牌設置")
    assert_reply(reply, outcome="not_ours", belongs_to="chengguan")


async def test_served_on_nats_it_registers_a_refused_rental(nats_client, adapter_under_test):
    reply = await send_coordination(nats_client, "zhujian", category="refused", matter="rental_registration")
    assert_reply(reply, outcome="resolved", department="zhujian")


async def test_malformed_request_gets_an_error_and_the_adapter_keeps_answering(
    nats_client, adapter_under_test
):
    body = json.loads(coordination_request("zhujian").model_dump_json())
    del body["question"]
    assert_error(await send_raw(nats_client, "zhujian", json.dumps(body).encode()), field="question")
    assert_reply(await send_coordination(nats_client, "zhujian", matter="renovation_filing"))


async def test_passes_the_conformance_check(nats_client, adapter_under_test):
    await assert_conformant(nats_client, "zhujian")


def test_installed_under_the_unstuck_adapters_entry_point():
    found = {ep.name: ep for ep in entry_points(group="unstuck.adapters")}
    assert "zhujian" in found, "install the package first: pip install -e ."
    assert found["zhujian"].load() is ZhujianAdapter

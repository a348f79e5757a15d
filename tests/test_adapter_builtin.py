"""The built-in department adapters, served on a real nats-server through the pytest kit."""

from __future__ import annotations

import asyncio
import json

from unstuck.cli import main
from unstuck.testing import assert_error, assert_reply, coordination_request, send_coordination, send_raw


async def test_chengguan_answers_second_floor_shop_sign_cannot_with_the_sign_rule(
    nats_client, builtin_adapters
):
    reply = await send_coordination(
        nats_client,
        "chengguan",
        category="cannot",
        matter="shop_sign",
        matter_title="門頭招牌設置",
        facts={"floor": 2},
    )
    assert_reply(reply, outcome="cannot", department="chengguan")
    assert "二層及以上不得設置" in reply.legal_basis
    assert "2樓" in reply.message


async def test_chengguan_files_a_ground_floor_shop_sign(nats_client, builtin_adapters):
    reply = await send_coordination(nats_client, "chengguan", matter="shop_sign", facts={"floor": 1})
    assert_reply(reply, outcome="resolved", legal_basis=None)


async def test_scjg_registers_the_name_of_a_new_business_form_the_province_approved(
    nats_client, builtin_adapters
):
    reply = await send_coordination(
        nats_client,
        "scjg",
        matter="name_registration",
        matter_title="企業名稱登記",
        facts={"business_form": "直播電商"},
    )
    assert_reply(reply, outcome="resolved", department="scjg")
    assert "新業態" in reply.message


async def test_scjg_refuses_a_name_with_restricted_words_citing_the_regulation(nats_client, builtin_adapters):
    reply = await send_coordination(
        nats_client, "scjg", matter="name_registration", facts={"name_has_restricted_words": True}
    )
    assert_reply(reply, outcome="cannot", legal_basis="《企業名稱登記管理規定》第十一條")


async def test_renshe_resolves_a_refused_pension_transfer_through_the_section_head(
    nats_client, builtin_adapters
):
    reply = await send_coordination(
        nats_client,
        "renshe",
        category="refused",
        matter="pension_transfer",
        matter_title="養老保險關係轉移",
        facts={"transfer_form_received": True},
    )
    assert_reply(reply, outcome="resolved", handler="養老保險科科長")
    assert "拒辦無依據" in reply.message


async def test_renshe_answers_unemployment_benefit_under_12_months_cannot(nats_client, builtin_adapters):
    reply = await send_coordination(
        nats_client,
        "renshe",
        category="cannot",
        matter="unemployment_benefit",
        facts={"months_contributed": 8},
    )
    assert_reply(reply, outcome="cannot", legal_basis="《失業保險條例》第十四條")
    assert "8個月" in reply.message


async def test_renshe_grants_unemployment_benefit_after_12_months(nats_client, builtin_adapters):
    reply = await send_coordination(
        nats_client, "renshe", matter="unemployment_benefit", facts={"months_contributed": 14}
    )
    assert_reply(reply, outcome="resolved")


async def test_not_ours_routing_names_the_department_the_matter_belongs_to(nats_client, builtin_adapters):
    routed = {
        ("scjg", "shop_sign"): "chengguan",
        ("chengguan", "pension_transfer"): "renshe",
        ("renshe", "name_registration"): "scjg",
    }
    for (asked, matter), owner in routed.items():
        reply = await send_coordination(nats_client, asked, matter=matter, request_id=f"ROUTE-{asked}-c1")
        assert_reply(reply, outcome="not_ours", department=asked, belongs_to=owner)


async def test_repeated_request_id_gets_the_same_answer(nats_client, builtin_adapters):
    first = await send_coordination(
        nats_client, "renshe", matter="qualification_certificate", request_id="REPEAT-0001-c1"
    )
    again = await send_coordination(
        nats_client,
        "renshe",
        matter="qualification_certificate",
        request_id="REPEAT-0001-c1",
        attempt=2,
    )
    assert_reply(first, outcome="accepted")
    assert again == first
    endpoint = builtin_adapters.endpoints["renshe"]
    assert (endpoint.counters.handled, endpoint.counters.replayed) == (1, 1)


async def test_malformed_request_is_answered_with_an_error_and_the_adapter_keeps_answering(
    nats_client, builtin_adapters
):
    not_json = await send_raw(nats_client, "scjg", b"{this is not json")
    assert_error(not_json)
    body = coordination_request("scjg", matter="food_permit").model_dump(mode="json")
    body["attempt"] = 0
    bad_attempt = await send_raw(nats_client, "scjg", json.dumps(body).encode())
    assert_error(bad_attempt, field="attempt")
    misrouted = await send_raw(nats_client, "scjg", coordination_request("renshe").model_dump_json().encode())
    assert_error(misrouted, field="department")
    after = await send_coordination(
        nats_client, "scjg", matter="food_permit", facts={"site_plan_provided": True}
    )
    assert_reply(after, outcome="resolved")
    assert builtin_adapters.endpoints["scjg"].counters.malformed == 3


async def test_adapters_list_live_counts_requests_and_errors_per_department(
    nats_server, nats_client, builtin_adapters, capsys
):
    await send_coordination(
        nats_client, "renshe", matter="employment_registration", request_id="LIVE-0001-c1"
    )
    await send_coordination(
        nats_client, "renshe", matter="employment_registration", request_id="LIVE-0002-c1"
    )
    await send_raw(nats_client, "renshe", b"[]")
    code = await asyncio.to_thread(main, ["adapters", "list", "--live", "--nats", nats_server.url])
    out = capsys.readouterr().out
    assert code == 0
    # the live table follows the table of installed adapters
    live = [line.split() for line in out.split("live department", 1)[1].splitlines()[2:] if line.strip()]
    by_code = {cells[0]: cells for cells in live}
    assert set(by_code) == {"chengguan", "renshe", "scjg"}
    assert by_code["renshe"][2:5] == ["1", "3", "1"]
    assert by_code["scjg"][2:5] == ["1", "0", "0"]

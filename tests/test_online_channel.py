"""The online channel on the bus: the portal reports a case for the applicant, who gets a receipt
code, looks the case up with it and the phone's last 4 digits, and rates it in five levels."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from nats.aio.client import Client

from conftest import sample
from unstuck.broker import Broker
from unstuck.config import Config
from unstuck.schemas.events import parse_payload
from unstuck.schemas.subjects import PORTAL, api_subject
from unstuck.testing import api_call, fast_config, wait_for

ONLINE_OWNER = "w-li"
PHONE = "13904151234"  # sample 01's phone: last 4 digits 1234


@pytest.fixture
def unstuck_config(request: pytest.FixtureRequest) -> Config:
    """The broker's configuration; a test gives ``[None]`` (indirect) for a centre with no online owner."""
    config = fast_config()
    config.broker.online_owner = getattr(request, "param", ONLINE_OWNER)
    return config


async def as_portal(nc: Client, verb: str, body: dict[str, Any]) -> dict[str, Any]:
    """A request on the portal's own subject (NATS lets only the portal user publish there)."""
    msg = await nc.request(
        api_subject(verb, PORTAL), json.dumps(body, ensure_ascii=False).encode(), timeout=10
    )
    return dict(json.loads(msg.data))


def reported() -> dict[str, Any]:
    body = sample("01")
    del body["owner"]  # the applicant names no staff member: the centre's online owner answers
    body.pop("category", None)  # nor classifies it
    return body


async def report(nc: Client) -> tuple[str, str]:
    reply = await as_portal(nc, "case.open", reported())
    assert reply["ok"], reply
    return reply["result"]["case_id"], reply["result"]["receipt"]


async def test_a_report_gets_a_receipt_code_and_is_recorded_as_the_applicants_own_online(
    broker: Broker, nats_client: Client
):
    case_id, receipt = await report(nats_client)
    prefix, secret = receipt[: len(case_id)], receipt[len(case_id) + 1 :]
    assert prefix == case_id and receipt[len(case_id)] == "-"
    assert len(secret) == 16 and set(secret) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    shown = await api_call(nats_client, "case.get", {"case_id": case_id})
    opened, issued = shown["events"][0], shown["events"][1]
    assert (opened["type"], opened["actor"], opened["auth"]) == ("case.opened", "applicant", "online")
    assert opened["data"]["channel"] == "online" and opened["data"]["owner"] == ONLINE_OWNER
    assert issued["type"] == "case.receipt_issued"
    assert issued["data"]["digest"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps(shown, ensure_ascii=False)  # the code itself is stored nowhere
    # sample 01's description is classified 不能辦 by the rules at once, and chengguan is asked
    assert (shown["state"]["owner"], shown["state"]["state"]) == (ONLINE_OWNER, "coordinating")


async def test_the_lookup_needs_the_code_and_the_phones_last_digits_and_says_nothing_of_which_was_wrong(
    broker: Broker, nats_client: Client
):
    case_id, receipt = await report(nats_client)
    found = await as_portal(nats_client, "case.lookup", {"receipt": receipt, "phone_last4": "1234"})
    status = found["result"]
    assert (status["case_id"], status["state"], status["state_zh"]) == (case_id, "coordinating", "協調中")
    assert status["can_rate"] is False and status["rating"] is None
    assert "13904151234" not in json.dumps(found, ensure_ascii=False)
    other = "0" if receipt[-1] != "0" else "1"
    wrong = [
        {"receipt": receipt, "phone_last4": "4321"},
        {"receipt": receipt[:-1] + other, "phone_last4": "1234"},
        {"receipt": "DD-20991231-9999-" + receipt[-16:], "phone_last4": "1234"},
    ]
    errors = [(await as_portal(nats_client, "case.lookup", body))["error"] for body in wrong]
    assert {e["code"] for e in errors} == {"not_found"}
    assert len({e["message"] for e in errors}) == 1 and len({e["message_zh"] for e in errors}) == 1


async def test_after_closing_the_applicant_rates_online_in_five_levels_once(
    broker: Broker, builtin_adapters, nats_client: Client
):
    case_id, receipt = await report(nats_client)
    rate = {"receipt": receipt, "phone_last4": "1234", "level": "very_satisfied", "comment": "很快"}
    early = await as_portal(nats_client, "case.evaluate", rate)
    assert not early["ok"]  # not closed yet
    await wait_for(lambda: broker.state_of(case_id).state == "answered")
    close = {"case_id": case_id, "actor": ONLINE_OWNER, "outcome": "cannot", "explanation": "已說明"}
    await api_call(nats_client, "case.close", close)
    status = (await as_portal(nats_client, "case.lookup", {"receipt": receipt, "phone_last4": "1234"}))[
        "result"
    ]
    assert (status["state"], status["can_rate"], status["outcome"]) == ("closed", True, "cannot")
    rated = await as_portal(nats_client, "case.evaluate", rate)
    assert rated["ok"], rated
    assert dict(broker.state_of(case_id).evaluation or {})["level"] == "very_satisfied"
    again = await as_portal(nats_client, "case.evaluate", {**rate, "level": "dissatisfied"})
    assert not again["ok"]
    after = (await as_portal(nats_client, "case.lookup", {"receipt": receipt, "phone_last4": "1234"}))[
        "result"
    ]
    assert (after["rating"], after["can_rate"]) == ("very_satisfied", False)


async def test_the_portal_may_do_its_own_verbs_only(broker: Broker, nats_client: Client):
    case_id, _ = await report(nats_client)
    for verb, body in [
        ("case.get", {"case_id": case_id}),
        ("case.close", {"case_id": case_id, "outcome": "resolved", "explanation": "x"}),
        ("case.list", {}),
        ("case.evaluate", {"case_id": case_id, "level": "satisfied"}),  # a rating names the receipt
    ]:
        reply = await as_portal(nats_client, verb, body)
        assert reply["error"]["code"] == "not_allowed", (verb, reply)
    listed = await as_portal(nats_client, "departments.list", {})
    codes = {d["code"]: d["name"] for d in listed["result"]["departments"]}
    assert {"renshe", "scjg", "chengguan"} <= set(codes) and codes["scjg"]


async def test_a_report_without_a_phone_is_refused_in_chinese(broker: Broker, nats_client: Client):
    body = reported()
    del body["applicant"]["phone"]
    reply = await as_portal(nats_client, "case.open", body)
    assert (reply["error"]["code"], reply["error"]["field"]) == ("invalid_request", "applicant.phone")
    assert "電話" in reply["error"]["message_zh"]


async def test_a_staff_rating_without_levels_reads_good_as_satisfied(
    broker: Broker, builtin_adapters, nats_client: Client
):
    case_id = str((await api_call(nats_client, "case.open", sample("01")))["case_id"])
    await wait_for(lambda: broker.state_of(case_id).state == "answered")
    close = {"case_id": case_id, "actor": "w-zhang", "outcome": "cannot", "explanation": "已說明"}
    await api_call(nats_client, "case.close", close)
    await api_call(nats_client, "case.evaluate", {"case_id": case_id, "rating": "good"})
    evaluation = dict(broker.state_of(case_id).evaluation or {})
    assert (evaluation["level"], evaluation["rating"]) == ("satisfied", "good")


@pytest.mark.parametrize(("rating", "level"), [("good", "satisfied"), ("bad", "dissatisfied")])
def test_a_rating_recorded_before_the_five_levels_is_read_as_a_level(rating, level):
    upcast = parse_payload(
        "case.evaluated", {"rating": rating, "comment": "", "department_at_fault": None}, 1
    )
    assert (upcast.level, upcast.rating) == (level, rating)


def test_a_level_and_a_rating_that_disagree_are_refused():
    with pytest.raises(ValueError, match="disagrees"):
        parse_payload("case.evaluated", {"level": "dissatisfied", "rating": "good", "comment": ""}, 2)


@pytest.mark.parametrize("unstuck_config", [None], indirect=True)
async def test_without_an_online_owner_the_portal_cannot_report(broker: Broker, nats_client: Client):
    reply = await as_portal(nats_client, "case.open", reported())
    assert (reply["error"]["code"], reply["error"]["field"]) == ("unavailable", "owner")
    assert "online_owner" in reply["error"]["fix"] and "首問負責人" in reply["error"]["message_zh"]


async def test_a_bad_rating_online_opens_a_follow_up_the_owner_records(
    broker: Broker, builtin_adapters, nats_client: Client
):
    case_id, receipt = await report(nats_client)
    await wait_for(lambda: broker.state_of(case_id).state == "answered")
    close = {"case_id": case_id, "actor": ONLINE_OWNER, "outcome": "cannot", "explanation": "已說明"}
    await api_call(nats_client, "case.close", close)
    rate = {"receipt": receipt, "phone_last4": "1234", "level": "very_dissatisfied", "comment": "沒人理"}
    assert (await as_portal(nats_client, "case.evaluate", rate))["ok"]
    follow_up = dict(broker.state_of(case_id).follow_up or {})
    # rated on Monday 28 September 2026: 29, 30 September, then 國慶 1-7 October off, 8, 9, Saturday 10
    # (a make-up working day), 12-16, 19-23: the 15th working day is Friday 23 October
    assert (follow_up["due_date"], follow_up["working_days"], follow_up["done"]) == ("2026-10-23", 15, False)
    visit = {"case_id": case_id, "actor": ONLINE_OWNER, "visit": "已電話回訪", "measures": "補充告知書"}
    await api_call(nats_client, "case.follow_up", visit)
    assert dict(broker.state_of(case_id).follow_up or {})["done"] is True

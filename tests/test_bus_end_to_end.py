"""The bus end to end on a real nats-server: open a case, coordinate with a department, read it back."""

from __future__ import annotations

import pytest

from conftest import sample
from unstuck.testing import ApiError, api_call, wait_for


async def test_second_floor_shop_sign_is_answered_cannot_with_its_rule(broker, builtin_adapters, nats_client):
    opened = await api_call(nats_client, "case.open", sample("01"))
    case_id = opened["case_id"]
    assert case_id.startswith("DD-20260928-")
    await wait_for(lambda: broker.state_of(case_id).state == "answered")
    got = await api_call(nats_client, "case.get", {"case_id": case_id})
    types = [e["type"] for e in got["events"]]
    assert types == [
        "case.opened",
        "case.classified",
        "coordination.requested",
        "coordination.replied",
        "case.review_requested",
        "case.resolved",
    ]
    reply = got["events"][3]["data"]
    assert reply["outcome"] == "cannot"
    assert "一層" in reply["legal_basis"]
    assert [e["seq"] for e in got["events"]] == list(range(1, 7))
    for prev, event in zip(got["events"], got["events"][1:], strict=False):
        assert event["prev_hash"] == prev["hash"]


async def test_invalid_open_request_names_the_field_and_stores_nothing(broker, nats_client):
    body = sample("01")
    del body["applicant"]["id_number"]
    with pytest.raises(ApiError) as exc:
        await api_call(nats_client, "case.open", body)
    assert exc.value.error["code"] == "invalid_request"
    assert exc.value.error["field"] == "applicant.id_number"
    assert await broker.store.last_seq() == 0

"""``case.list`` and ``accountability.list`` through the broker's API answer from the ledger: the
new filters, closed cases that left the broker's memory, and refusals that name the field."""

from __future__ import annotations

import asyncio

import pytest

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.testing import ApiError, api_call, wait_for

SHOP = "92210603MA0KC8QX2K"  # the applicant of sample 01 (a shop sign)
THEATRE = "91210600MA0PE2KT8W"  # the applicant of sample 07 (a business licence)


async def listed(nc, **filters) -> list[str]:
    return [c["case_id"] for c in (await api_call(nc, "case.list", filters))["cases"]]


async def test_a_case_is_listed_right_after_it_is_opened(broker, nats_client):
    case_id = (await api_call(nats_client, "case.open", sample("01")))["case_id"]
    reply = await api_call(nats_client, "case.list", {})
    assert [c["case_id"] for c in reply["cases"]] == [case_id]
    assert reply["as_of"] >= 1  # the stream sequence the answer holds
    assert reply["cases"][0]["applicant"] == "丹東市振興區味道小廚餐飲店 9221**********QX2K"


async def test_search_by_applicant_matter_and_date_through_the_api(broker, builtin_adapters, nats_client):
    shop = (await api_call(nats_client, "case.open", sample("01")))["case_id"]
    theatre = (await api_call(nats_client, "case.open", sample("07")))["case_id"]
    assert await listed(nats_client, applicant_id_number=SHOP) == [shop]
    assert await listed(nats_client, applicant_id_number=SHOP.lower()) == [shop]  # as typed at a window
    assert await listed(nats_client, applicant_id_number="110101199003070011") == []
    assert await listed(nats_client, matter="營業執照") == [theatre]
    # both opened on the simulated clock's first day, 2026-09-28 (local)
    assert await listed(nats_client, opened_from="2026-09-28", opened_to="2026-09-28") == [shop, theatre]
    assert await listed(nats_client, opened_from="2026-09-29") == []


async def test_a_closed_case_that_left_memory_is_still_listed_and_rated_in_the_ledger(
    broker, builtin_adapters, nats_client
):
    broker.book.closed_kept = 1  # the next closing pushes this case out of memory
    broker.book.invites_ratings = False  # (an unrated case would wait for its 邀評 in memory first)
    case_id = (await api_call(nats_client, "case.open", sample("07")))["case_id"]
    other = (await api_call(nats_client, "case.open", sample("07", client_ref="other")))["case_id"]
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    owner = broker.state_of(case_id).owner
    await api_call(
        nats_client,
        "case.close",
        {"case_id": case_id, "actor": owner, "outcome": "resolved", "explanation": "已核發執照"},
    )
    await wait_for(lambda: broker.state_of(other).state == lc.ANSWERED)
    await api_call(
        nats_client,
        "case.close",
        {"case_id": other, "actor": owner, "outcome": "resolved", "explanation": "已核發執照"},
    )
    assert case_id not in broker.states and case_id not in broker.book.closed
    assert await listed(nats_client, state="closed") == [case_id, other]
    await api_call(nats_client, "case.evaluate", {"case_id": case_id, "rating": "good"})
    assert await listed(nats_client, state="evaluated") == [case_id]
    assert await listed(nats_client, state="closed") == [other]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"opened_from": "2026-13-01"}, "opened_from"),
        ({"opened_from": "2026-10-02", "opened_to": "2026-10-01"}, "opened_to"),
        ({"state": "closd"}, "state"),
        ({"limit": 0}, "limit"),
    ],
)
async def test_a_bad_filter_is_refused_naming_the_field(broker, nats_client, filters, field):
    with pytest.raises(ApiError) as refused:
        await api_call(nats_client, "case.list", filters)
    assert refused.value.error["code"] == "invalid_request"
    assert refused.value.error["field"] == field
    assert refused.value.error["fix"]


async def test_with_the_projector_beside_the_broker_a_list_still_sees_the_brokers_writes(
    nats_server, sim_clock, unstuck_config, nats_client, tmp_path
):
    """``[ledger] in_broker = false``: ``unstuck ledger run`` projects (here its Projector on its own
    connection); the broker reads the position from the database before it answers."""
    import nats

    from unstuck.adapters.registry import installed_departments
    from unstuck.broker import Broker
    from unstuck.ledger import Ledger, Projector
    from unstuck.testing import close_client

    unstuck_config.ledger.in_broker = False
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    broker_nc, projector_nc = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    broker = Broker(broker_nc, unstuck_config, sim_clock, departments=installed_departments(), ledger=ledger)
    await broker.start()
    projector = Projector(projector_nc.jetstream(), broker.store.stream, ledger)
    running = asyncio.create_task(projector.run())
    try:
        assert broker.projector is None
        case_id = (await api_call(nats_client, "case.open", sample("07")))["case_id"]
        opened_at = broker.book.written_seq  # the message of the opening
        reply = await api_call(nats_client, "case.list", {})
        assert [c["case_id"] for c in reply["cases"]] == [case_id]
        assert reply["as_of"] >= opened_at
    finally:
        projector.stop()
        await running
        await broker.stop()
        ledger.close()
        await close_client(broker_nc)
        await close_client(projector_nc)

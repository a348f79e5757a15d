"""One case of each category walked from opening to evaluation on a real nats-server, through the API."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.clock import CHINA
from unstuck.testing import ApiError, api_call, wait_for


async def open_case(broker, nc, name: str, **changes) -> str:
    result = await api_call(nc, "case.open", sample(name, **changes))
    return result["case_id"]


async def types_of(broker, case_id: str) -> list[str]:
    return [e.type for e in await broker.store.read_case(case_id)]


async def test_cannot_case_from_opening_to_evaluation(broker, builtin_adapters, nats_client):
    case_id = await open_case(broker, nats_client, "01")
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    await api_call(
        nats_client,
        "case.close",
        {
            "case_id": case_id,
            "actor": "w-zhang",
            "outcome": "cannot",
            "explanation": "已說明招牌設置規定，建議一層設置",
        },
    )
    await api_call(nats_client, "case.evaluate", {"case_id": case_id, "rating": "good"})
    assert await types_of(broker, case_id) == [
        "case.opened",
        "case.classified",
        "coordination.requested",
        "coordination.replied",
        "case.review_requested",
        "case.resolved",
        "case.closed",
        "case.evaluated",
    ]
    assert broker.state_of(case_id).state == lc.EVALUATED


async def test_hard_case_reopened_after_a_bad_rating_blamed_on_the_department(
    broker, builtin_adapters, nats_client
):
    case_id = await open_case(broker, nats_client, "07")
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    await api_call(
        nats_client,
        "case.close",
        {"case_id": case_id, "actor": "w-li", "outcome": "resolved", "explanation": "已核准"},
    )
    await api_call(
        nats_client,
        "case.evaluate",
        {
            "case_id": case_id,
            "rating": "bad",
            "comment": "表述不對",
            "department_at_fault": "scjg",
        },
    )
    await wait_for(
        lambda: broker.state_of(case_id).state == lc.ANSWERED and broker.state_of(case_id).round == 2
    )
    await api_call(
        nats_client,
        "case.close",
        {"case_id": case_id, "actor": "w-li", "outcome": "resolved", "explanation": "已更正"},
    )
    await api_call(nats_client, "case.evaluate", {"case_id": case_id, "rating": "good"})
    types = await types_of(broker, case_id)
    assert types.count("coordination.requested") == 2 and "case.reopened" in types
    assert types[-1] == "case.evaluated"


FINDING = {
    "staff": "renshe-clerk-07",
    "section": "養老保險科",
    "leader_in_charge": "分管副局長",
    "finding": "推諉",
}
CLOSE_REFUSED_CASE = {"actor": "w-zhang", "outcome": "resolved", "explanation": "當場受理"}


async def refusal(client, verb: str, body: dict) -> dict:
    with pytest.raises(ApiError) as caught:
        await api_call(client, verb, body)
    return caught.value.error


async def test_refused_case_with_accountability_from_opening_to_evaluation(
    broker, builtin_adapters, nats_client
):
    case_id = await open_case(broker, nats_client, "03")
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    # 不給辦 is not closed before its accountability
    error = await refusal(nats_client, "case.close", {"case_id": case_id, **CLOSE_REFUSED_CASE})
    assert error["code"] == "not_allowed" and "record the accountability" in error["message"]
    assert (
        error["message_zh"]
        == f"案件 {case_id} 屬不給辦：須先登記問責，或由領導登記容錯免責（附理由），才能銷號"
    )
    record = {"case_id": case_id, "actor": "w-zhang", **FINDING, "measures": ["interview"]}
    error = await refusal(nats_client, "accountability.record", record)  # a clerk may not record it
    assert error["message_zh"] == "問責由領導（分管領導及以上）登記"
    record = {**record, "actor": "leader-gao"}
    await api_call(nats_client, "accountability.record", record)
    # the exemption excludes the record already made, even for a leader
    exempt = {**record, "actor": "leader-gao", "measures": ["none"], "fault_tolerance": True}
    error = await refusal(nats_client, "accountability.record", exempt)
    assert error["field"] == "fault_tolerance" and "exclude each other" in error["message"]
    # reclassifying away from refused after the record needs a leader, and the record stays
    away = {"case_id": case_id, "category": "hard", "reason": "實為政策空白"}
    error = await refusal(nats_client, "case.classify", {**away, "actor": "w-zhang"})
    assert error["field"] == "actor" and "only a leader" in error["message"]
    await api_call(nats_client, "case.close", {"case_id": case_id, **CLOSE_REFUSED_CASE})
    await api_call(nats_client, "case.evaluate", {"case_id": case_id, "rating": "good"})
    records = await api_call(nats_client, "accountability.list", {"staff": "renshe-clerk-07"})
    assert records["count"] == 1 and records["records"][0]["measures"] == ["interview"]
    assert broker.state_of(case_id).state == lc.EVALUATED


async def test_a_leaders_fault_tolerance_exemption_closes_a_refused_case_and_excludes_measures(
    broker, builtin_adapters, nats_client
):
    case_id = await open_case(broker, nats_client, "03")
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    exempt = {"case_id": case_id, **FINDING, "measures": ["none"], "fault_tolerance": True}
    error = await refusal(nats_client, "accountability.record", {**exempt, "actor": "w-zhang"})
    assert (error["field"], error["message_zh"]) == (
        "fault_tolerance",
        "容錯免責由領導（分管領導及以上）決定並登記",
    )
    error = await refusal(
        nats_client, "accountability.record", {**exempt, "actor": "leader-gao", "measures": ["interview"]}
    )
    assert error["field"] == "measures"
    await api_call(nats_client, "accountability.record", {**exempt, "actor": "leader-gao"})
    error = await refusal(
        nats_client,
        "accountability.record",
        {**exempt, "actor": "leader-gao", "measures": ["performance_review"], "fault_tolerance": False},
    )
    assert error["field"] == "measures" and "exclude each other" in error["message"]
    # a leader may reclassify it away: the exemption stays on the record
    away = {"case_id": case_id, "category": "hard", "reason": "實為政策空白", "actor": "leader-gao"}
    await api_call(nats_client, "case.classify", away)
    state = broker.state_of(case_id)
    assert state.category == "hard" and [a["fault_tolerance"] for a in state.accountability] == [True]


async def test_guided_case_from_opening_to_evaluation(broker, nats_client):
    case_id = await open_case(broker, nats_client, "05")
    await api_call(
        nats_client,
        "case.guide",
        {"case_id": case_id, "actor": "w-wang", "window": "食品許可窗口", "instructions": "帶平面圖"},
    )
    await api_call(nats_client, "case.evaluate", {"case_id": case_id, "rating": "good"})
    assert await types_of(broker, case_id) == [
        "case.opened",
        "case.classified",
        "case.guided",
        "case.closed",
        "case.evaluated",
    ]


async def test_a_command_refused_in_this_state_appends_nothing(broker, nats_client):
    case_id = await open_case(broker, nats_client, "05")
    before = await types_of(broker, case_id)
    with pytest.raises(ApiError) as exc:
        await api_call(nats_client, "case.evaluate", {"case_id": case_id, "rating": "good"})
    assert exc.value.error["code"] == "not_allowed" and "guiding" in exc.value.error["message"]
    assert await types_of(broker, case_id) == before


async def test_deadline_watcher_warns_escalates_and_an_extension_is_granted(
    broker, builtin_adapters, nats_client, sim_clock
):
    overdue_id = await open_case(broker, nats_client, "13")  # scjg accepts and never finishes
    extended_id = await open_case(broker, nats_client, "08")  # renshe accepts
    await wait_for(
        lambda: (
            not broker.state_of(overdue_id).coordinations[f"{overdue_id}-c1"].awaiting_reply
            and not broker.state_of(extended_id).coordinations[f"{extended_id}-c1"].awaiting_reply
        )
    )
    warnings = await nats_client.subscribe("unstuck.notify.>")
    sim_clock.set(datetime(2026, 10, 9, 9, tzinfo=CHINA))
    await api_call(nats_client, "admin.tick", {})
    assert broker.state_of(overdue_id).warned == frozenset({1})
    await api_call(
        nats_client,
        "case.extend",
        {"case_id": extended_id, "actor": "w-zhang", "working_days": 3, "reason": "等待回函"},
    )
    with pytest.raises(ApiError, match="leader"):
        await api_call(nats_client, "case.approve_extension", {"case_id": extended_id, "actor": "w-zhang"})
    await api_call(nats_client, "case.approve_extension", {"case_id": extended_id, "actor": "leader-gao"})
    assert broker.state_of(extended_id).due_date.isoformat() == "2026-10-14"
    sim_clock.set(datetime(2026, 10, 11, 9, tzinfo=CHINA))  # Sunday, a day off: overdue, no climb yet
    await api_call(nats_client, "admin.tick", {})
    assert broker.state_of(overdue_id).overdue and "scjg" not in broker.state_of(overdue_id).escalations
    for _ in range(2):  # Monday: the section head; Tuesday: the leader in charge
        sim_clock.advance(timedelta(days=1))
        await api_call(nats_client, "admin.tick", {})
    s = broker.state_of(overdue_id)
    assert s.overdue and s.escalations["scjg"][0] == 2
    assert not broker.state_of(extended_id).overdue
    subjects = set()
    while True:
        try:
            subjects.add((await warnings.next_msg(timeout=0.5)).subject)
        except Exception:
            break
    assert {
        "unstuck.notify.owner",
        "unstuck.notify.applicant",
        "unstuck.notify.duty_leader",
        "unstuck.notify.scjg_section_head",
        "unstuck.notify.scjg_leader_in_charge",
    } <= subjects
    listed = await api_call(nats_client, "case.list", {"overdue": True})
    assert [c["case_id"] for c in listed["cases"]] == [overdue_id]


async def test_bounced_case_is_rerouted_to_the_department_it_belongs_to(
    broker, builtin_adapters, nats_client
):
    case_id = await open_case(broker, nats_client, "10")
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    s = broker.state_of(case_id)
    assert [(c.department, c.outcome) for c in s.coordinations.values()] == [
        ("renshe", "not_ours"),
        ("chengguan", "resolved"),
    ]
    assert broker.metrics.bounces.labels("renshe")._value.get() == 1


async def test_opening_twice_with_the_same_client_ref_returns_the_same_case(broker, nats_client):
    body = sample("05", client_ref="window-7-ticket-0042")
    first = await api_call(nats_client, "case.open", body)
    again = await api_call(nats_client, "case.open", body)
    assert again["case_id"] == first["case_id"] and again["duplicate"] is True
    assert len(broker.states) == 1


async def test_an_unknown_department_is_refused_with_the_known_ones_named(broker, nats_client):
    with pytest.raises(ApiError) as exc:
        await api_call(nats_client, "case.open", sample("01", department="gongan"))
    assert exc.value.error["field"] == "department" and "chengguan" in exc.value.error["fix"]


async def test_a_broker_restarted_on_the_stream_rebuilds_every_case(
    broker, builtin_adapters, nats_client, nats_server, sim_clock, unstuck_config
):
    import nats

    from unstuck.adapters.registry import installed_departments
    from unstuck.broker import Broker
    from unstuck.connection import close_client

    ids = [await open_case(broker, nats_client, n) for n in ("01", "02", "05")]
    await wait_for(lambda: all(broker.state_of(i).state in (lc.ANSWERED, lc.GUIDING) for i in ids))
    nc2 = await nats.connect(nats_server.url)
    second = Broker(nc2, unstuck_config, sim_clock, departments=installed_departments())
    await second.start(serve_api=False)
    try:
        for i in ids:
            assert second.state_of(i).to_dict() == broker.state_of(i).to_dict()
    finally:
        await second.stop()
        await close_client(nc2)

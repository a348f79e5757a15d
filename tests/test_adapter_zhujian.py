"""住建局 (zhujian), a department added from outside: an installed package, found by its entry point,
known to the broker and driven through a whole case without a line of core code or configuration."""

from __future__ import annotations

import inspect
from importlib.metadata import distribution
from pathlib import Path

import pytest

from unstuck.adapters.registry import LoadedAdapter, discover
from unstuck.config import Config
from unstuck.testing import api_call, assert_conformant, wait_for

ROOT = Path(__file__).resolve().parents[1]

REFUSED_RENTAL = {
    "channel": "window",
    "applicant": {
        "kind": "citizen",
        "name": "孫麗華",
        "id_number": "210600198203154527",
        "phone": "13904157788",
    },
    "matter": "rental_registration",
    "matter_title": "房屋租賃登記備案",
    "facts": {"illegal_structure": False, "kitchen_let_as_bedroom": False},
    "window": "住建局房屋租賃窗口",
    "department": "zhujian",
    "description": "出租自有住房，租賃合同和產權證明齊全，經辦人以系統無法錄入為由不予受理登記備案。",
    "category": "refused",
    "owner": "w-zhang",
}


def zhujian() -> LoadedAdapter:
    found = discover()
    if "zhujian" not in found:
        pytest.fail("the zhujian package is not installed: `make test` installs examples/adapter-zhujian")
    return found["zhujian"]


def test_zhujian_is_an_installed_package_outside_the_core_found_by_entry_point():
    adapter = zhujian()
    assert adapter.department.name == "住房和城鄉建設局"
    assert "rental_registration" in adapter.department.matters
    dist = distribution("unstuck-adapter-zhujian")
    assert [ep.value for ep in dist.entry_points if ep.group == "unstuck.adapters"] == [
        "unstuck_adapter_zhujian.adapter:ZhujianAdapter"
    ]
    source = Path(inspect.getsourcefile(type(adapter.plugin)) or "").resolve()
    assert source == ROOT / "examples/adapter-zhujian/src/unstuck_adapter_zhujian/adapter.py"
    assert "zhujian" not in Config().department_codes()


async def test_zhujian_passes_the_conformance_check(nats_client, serve_adapter):
    await serve_adapter(zhujian())
    await assert_conformant(nats_client, "zhujian")


async def test_full_zhujian_case_open_coordinate_answer_close_evaluate(broker, serve_adapter, nats_client):
    assert "zhujian" not in broker.departments  # installed beside the broker, but not answering yet
    await serve_adapter(zhujian())
    opened = await api_call(nats_client, "case.open", REFUSED_RENTAL)
    case_id = opened["case_id"]
    assert broker.departments["zhujian"] == "住房和城鄉建設局"  # learned from its micro service
    await wait_for(lambda: broker.state_of(case_id).state == "answered", what=f"{case_id} answered")

    got = await api_call(nats_client, "case.get", {"case_id": case_id})
    replied = next(e for e in got["events"] if e["type"] == "coordination.replied")
    assert replied["actor"] == "zhujian"
    assert replied["data"]["outcome"] == "resolved"
    assert replied["data"]["handler"] == "房屋租賃管理科科長"

    # 不給辦 closes only with its accountability
    await api_call(
        nats_client,
        "accountability.record",
        {
            "case_id": case_id,
            "actor": "leader-gao",  # accountability is recorded by a leader
            "staff": "zhujian-clerk-03",
            "section": "房屋租賃管理科",
            "leader_in_charge": "分管副局長",
            "finding": "以材料不全為由拒絕受理",
            "measures": ["interview"],
        },
    )
    await api_call(
        nats_client,
        "case.close",
        {
            "case_id": case_id,
            "actor": "w-zhang",
            "outcome": "resolved",
            "explanation": "住建局科長覆核後當場辦理租賃登記備案，已向申請人出具備案證明並說明原因",
        },
    )
    await api_call(
        nats_client,
        "case.evaluate",
        {"case_id": case_id, "rating": "good", "comment": "半天辦好了"},
    )
    final = await api_call(nats_client, "case.get", {"case_id": case_id})
    assert final["state"]["state"] == "evaluated"
    assert [e["type"] for e in final["events"]] == [
        "case.opened",
        "case.classified",
        "coordination.requested",
        "coordination.replied",
        "case.resolved",
        "accountability.recorded",
        "case.closed",
        "case.evaluated",
    ]
    assert final["events"][-2]["data"]["on_time"] is True

"""The window's case commands as staff type them: each ``unstuck ...`` runs as its own process against a
real broker (on a simulated clock) and a real nats-server, found through NATS_URL.

Covered: ``case handover``, ``case extend``, ``case approve-extension``, ``case record``,
``case rule-bounce``, ``case accountability``, ``accountability list`` and ``case list`` with each
filter; for each, the exact events, state or rows, and bad input refused with the field named, a
non-zero exit and no traceback (argparse errors exit 2, refusals by the broker exit 1).

The clock starts on Monday 28 September 2026: a hard case is due on Saturday 10 October (a make-up
working day after the National Day holiday, 1-7 October); refused and guided cases on 29 September.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from conftest import sample
from unstuck.clock import CHINA
from unstuck.config import Config
from unstuck.testing import api_call, fast_config, wait_for

ENV_DROP = (
    "NATS_URL",
    "UNSTUCK_CONFIG",
    "UNSTUCK_STAFF",
    "UNSTUCK_LANG",
    "UNSTUCK_DATA_DIR",
    "UNSTUCK_NATS_AUTH_FILE",
    "UNSTUCK_NATS_USER",
    "UNSTUCK_NATS_PASSWORD",
)


@pytest.fixture
def unstuck_config() -> Config:
    """The kit's configuration (leader-gao is the duty leader and a leader in charge; head-sun a section
    head), with the deadline settings these tests rely on written out, and one 退單 already too many."""
    config = fast_config()
    config.deadlines.working_days.update({"guided": 1, "refused": 1, "cannot": 3, "hard": 5})
    config.deadlines.max_extension_days = 10
    config.deadlines.max_bounces = 1
    return config


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def unstuck(nats_server, tmp_path):
    """``await unstuck("case", "list", ...)``: the CLI in a subprocess, without blocking the broker's loop."""

    async def run(*args: str, staff: str | None = None) -> Run:
        env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
        env["NATS_URL"] = nats_server.url
        if staff is not None:
            env["UNSTUCK_STAFF"] = staff
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "unstuck",
            *args,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return Run(proc.returncode, out.decode(), err.decode())

    return run


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.stderr
    return run


def refused(run: Run, code: int, *named: str) -> None:
    """Refused with exit ``code``, a message naming each of ``named``, and no traceback: the CLI's own
    refusals start ``unstuck:``, argparse's ``usage:``, the broker's ``錯誤：`` and end with its code."""
    assert run.returncode == code, (run.returncode, run.stdout, run.stderr)
    assert run.stderr.startswith(("unstuck: ", "usage: ", "錯誤：")), run.stderr
    if run.stderr.startswith("錯誤："):
        assert run.stderr.rstrip().endswith("]"), run.stderr
    assert "Traceback" not in run.stderr
    for part in named:
        assert part in run.stderr, (part, run.stderr)


def steps(run: Run) -> list[tuple[int, str]]:
    return [(e["seq"], e["type"]) for e in run.json()["events"]]


async def stored(broker, case_id: str) -> list[Any]:
    return await broker.store.read_case(case_id)


async def open_case(broker, nc, name: str, settled: str, **changes: Any) -> str:
    """Open a sample case through the API and wait until its departments have answered as expected."""
    case_id = (await api_call(nc, "case.open", sample(name, **changes)))["case_id"]
    checks = {
        "accepted": lambda: broker.state_of(case_id).coordinations[f"{case_id}-c1"].outcome == "accepted",
        "answered": lambda: broker.state_of(case_id).state == "answered",
        "bounce": lambda: broker.state_of(case_id).bounce_ruling_needed,
        "guiding": lambda: broker.state_of(case_id).state == "guiding",
    }
    await wait_for(checks[settled], what=f"{case_id} {settled}")
    return case_id


# --- case handover -----------------------------------------------------------------------------------


async def test_case_handover_gives_the_case_to_the_new_owner_on_the_record(
    builtin_adapters, broker, nats_client, unstuck
):
    case_id = await open_case(broker, nats_client, "08", "accepted")  # owner w-zhang; renshe accepted
    run = ok(
        await unstuck(
            "case",
            "handover",
            case_id,
            "--actor",
            "w-zhang",
            "--to",
            "w-li",
            "--reason",
            "調崗交接",
            "--json",
        )
    )
    assert steps(run) == [(5, "case.owner_assigned")] and run.json()["state"] == "coordinating"
    event = (await stored(broker, case_id))[-1]
    assert event.fields["actor"] == "w-zhang"
    assert event.fields["data"] == {"owner": "w-li", "previous_owner": "w-zhang", "reason": "調崗交接"}
    assert broker.state_of(case_id).owner == "w-li"

    # the previous owner, a clerk, can no longer hand it on; the new owner can ($UNSTUCK_STAFF as actor)
    refused(
        await unstuck("case", "handover", case_id, "--actor", "w-zhang", "--to", "w-wang", "--reason", "x"),
        1,
        "只有承辦人（w-li）或領導可以移交",
    )
    run = ok(await unstuck("case", "handover", case_id, "--to", "w-wang", "--reason", "休假", staff="w-li"))
    assert run.stdout.strip() == f"{case_id}：#6 移交；狀態：協調中"
    assert [e.type for e in await stored(broker, case_id)][4:] == ["case.owner_assigned"] * 2
    assert broker.state_of(case_id).owner == "w-wang"


async def test_case_handover_bad_input_names_the_field(builtin_adapters, broker, nats_client, unstuck):
    case_id = await open_case(broker, nats_client, "08", "accepted")
    before = len(await stored(broker, case_id))
    no_to, no_actor, bad_owner, to_self, missing = await asyncio.gather(
        unstuck("case", "handover", case_id, "--actor", "w-zhang", "--reason", "x"),
        unstuck("case", "handover", case_id, "--to", "w-li", "--reason", "x"),
        unstuck("case", "handover", case_id, "--actor", "w-zhang", "--to", "w li", "--reason", "x"),
        unstuck("case", "handover", case_id, "--actor", "w-zhang", "--to", "w-zhang", "--reason", "x"),
        unstuck(
            "case", "handover", "DD-20260928-0999", "--actor", "w-zhang", "--to", "w-li", "--reason", "x"
        ),
    )
    refused(no_to, 2, "--to")
    refused(no_actor, 2, "--actor is required", "UNSTUCK_STAFF")
    refused(bad_owner, 1, "owner: String should match pattern", "'w li'")
    refused(to_self, 1, "w-zhang 已是案件")
    refused(missing, 1, "DD-20260928-0999 does not exist")
    assert len(await stored(broker, case_id)) == before


# --- case extend / approve-extension -------------------------------------------------------------------


async def test_case_extend_then_approve_extension_by_a_leader_moves_the_due_date(
    builtin_adapters, broker, nats_client, unstuck
):
    case_id = await open_case(broker, nats_client, "08", "accepted")  # hard: due Saturday 10 October
    run = ok(
        await unstuck(
            "case",
            "extend",
            case_id,
            "--actor",
            "w-zhang",
            "--working-days",
            "3",
            "--reason",
            "等待省鑒定中心回函",
            "--json",
        )
    )
    assert steps(run) == [(5, "case.extension_requested")]
    assert (await stored(broker, case_id))[-1].fields["data"] == {
        "working_days": 3,
        "reason": "等待省鑒定中心回函",
        "proposed_due_date": "2026-10-14",  # 10 Oct + Mon 12, Tue 13, Wed 14
    }
    assert broker.state_of(case_id).due_date.isoformat() == "2026-10-10"  # not moved before approval

    # a second request while one waits, and approval by a clerk or a section head, are refused
    refused(
        await unstuck(
            "case", "extend", case_id, "--actor", "w-zhang", "--working-days", "1", "--reason", "再延"
        ),
        1,
        "已有一項延期申請待領導批准",
    )
    refused(
        await unstuck("case", "approve-extension", case_id, "--actor", "w-zhang"),
        1,
        "延期須由領導（分管領導及以上）批准",
    )
    refused(
        await unstuck("case", "approve-extension", case_id, "--actor", "head-sun"),
        1,
        "延期須由領導（分管領導及以上）批准",
    )
    run = ok(await unstuck("case", "approve-extension", case_id, "--actor", "leader-gao", "--json"))
    assert steps(run) == [(6, "case.extended")]
    event = (await stored(broker, case_id))[-1]
    assert event.fields["actor"] == "leader-gao"
    assert event.fields["data"] == {
        "working_days": 3,
        "due_date": "2026-10-14",
        "approved_by": "leader-gao",
        "total_extension_days": 3,
    }
    assert broker.state_of(case_id).due_date.isoformat() == "2026-10-14"
    assert len(await stored(broker, case_id)) == 6


async def test_case_extend_and_approve_extension_bad_input_names_the_field(
    builtin_adapters, broker, nats_client, unstuck, sim_clock
):
    case_id = await open_case(broker, nats_client, "08", "accepted")
    before = len(await stored(broker, case_id))
    words, too_many, no_reason, nothing_pending = await asyncio.gather(
        unstuck("case", "extend", case_id, "--actor", "w-zhang", "--working-days", "three", "--reason", "x"),
        unstuck("case", "extend", case_id, "--actor", "w-zhang", "--working-days", "11", "--reason", "x"),
        unstuck("case", "extend", case_id, "--actor", "w-zhang", "--working-days", "2"),
        unstuck("case", "approve-extension", case_id, "--actor", "leader-gao"),
    )
    refused(words, 2, "--working-days", "invalid int value: 'three'")
    refused(too_many, 1, "working_days: Input should be less than or equal to 10")
    refused(no_reason, 2, "--reason")
    refused(nothing_pending, 1, "沒有待批准的延期申請")
    # after the due date (Saturday 10 October) an extension can no longer be asked for
    sim_clock.set(datetime(2026, 10, 12, 9, tzinfo=CHINA))
    refused(
        await unstuck(
            "case", "extend", case_id, "--actor", "w-zhang", "--working-days", "2", "--reason", "晚了"
        ),
        1,
        "已過期限 2026-10-10：延期須在期限屆滿前申請",
    )
    assert len(await stored(broker, case_id)) == before


# --- case record ---------------------------------------------------------------------------------------


async def test_case_record_enters_a_final_answer_the_department_gives_outside_the_bus(
    builtin_adapters, broker, nats_client, unstuck
):
    case_id = await open_case(broker, nats_client, "08", "accepted")  # renshe accepted: still owes the answer
    run = ok(
        await unstuck(
            "case",
            "record",
            case_id,
            "--actor",
            "renshe",
            "--department",
            "renshe",
            "--outcome",
            "resolved",
            "--message",
            "省鑒定中心已核驗，證書已補發",
            "--handler",
            "職業能力建設科",
            "--json",
        )
    )
    assert steps(run) == [(5, "coordination.replied"), (6, "case.resolved")]
    assert run.json()["state"] == "answered"
    replied, resolved = (await stored(broker, case_id))[4:]
    assert replied.fields["actor"] == "renshe"  # the department records its own answer
    assert {
        k: replied.fields["data"][k]
        for k in ("request_id", "department", "outcome", "handler", "recorded_by")
    } == {
        "request_id": f"{case_id}-c1",
        "department": "renshe",
        "outcome": "resolved",
        "handler": "職業能力建設科",
        "recorded_by": "renshe",
    }
    assert resolved.fields["data"]["outcome"] == "resolved"
    assert resolved.fields["data"]["departments"] == ["renshe"]
    assert broker.state_of(case_id).state == "answered"


async def test_case_record_bad_input_names_the_field(builtin_adapters, broker, nats_client, unstuck):
    case_id = await open_case(broker, nats_client, "08", "accepted")
    before = len(await stored(broker, case_id))
    answer = ("--message", "答覆", "--handler", "某科")
    bad_outcome, not_asked, no_basis, no_date, no_handler = await asyncio.gather(
        unstuck(
            "case",
            "record",
            case_id,
            "--actor",
            "renshe",
            "--department",
            "renshe",
            "--outcome",
            "maybe",
            *answer,
        ),
        unstuck(
            "case",
            "record",
            case_id,
            "--actor",
            "scjg",
            "--department",
            "scjg",
            "--outcome",
            "resolved",
            *answer,
        ),
        unstuck(
            "case",
            "record",
            case_id,
            "--actor",
            "renshe",
            "--department",
            "renshe",
            "--outcome",
            "cannot",
            *answer,
        ),
        unstuck(
            "case",
            "record",
            case_id,
            "--actor",
            "renshe",
            "--department",
            "renshe",
            "--outcome",
            "resolved",
            "--message",
            "答覆",
            "--handler",
            "某科",
            "--expected-date",
            "next week",
        ),
        unstuck(
            "case",
            "record",
            case_id,
            "--actor",
            "renshe",
            "--department",
            "renshe",
            "--outcome",
            "resolved",
            "--message",
            "答覆",
        ),
    )
    refused(bad_outcome, 1, "outcome: Input should be 'resolved'", "'maybe'")
    refused(not_asked, 1, "no open coordination with scjg")
    refused(no_basis, 1, "legal_basis is required when outcome is cannot")
    refused(no_date, 1, "expected_date: Input should be a valid date", "'next week'")
    refused(no_handler, 2, "--handler")
    assert len(await stored(broker, case_id)) == before


# --- case rule-bounce ----------------------------------------------------------------------------------


async def test_case_rule_bounce_lets_the_duty_leader_name_the_department(
    builtin_adapters, broker, nats_client, unstuck
):
    # sample 10: renshe answers not_ours (it belongs to chengguan); with max_bounces 1 the duty leader rules
    case_id = await open_case(broker, nats_client, "10", "bounce")
    assert [e.type for e in await stored(broker, case_id)] == [
        "case.opened",
        "case.classified",
        "coordination.requested",
        "coordination.replied",
        "case.escalated",
    ]
    refused(
        await unstuck("case", "rule-bounce", case_id, "--actor", "w-li", "--department", "chengguan"),
        1,
        "退單由窗口值班領導（leader-gao）裁定",
    )
    run = ok(
        await unstuck(
            "case", "rule-bounce", case_id, "--actor", "leader-gao", "--department", "chengguan", "--json"
        )
    )
    assert steps(run) == [(6, "case.bounce_ruled"), (7, "coordination.requested")]
    await wait_for(lambda: broker.state_of(case_id).state == "answered", what="chengguan's answer")
    events = await stored(broker, case_id)
    assert [e.type for e in events[5:]] == [
        "case.bounce_ruled",
        "coordination.requested",
        "coordination.replied",
        "case.resolved",
    ]
    assert events[5].fields["data"] == {"department": "chengguan", "ruled_by": "leader-gao", "bounces": 1}
    requested = events[6].fields["data"]
    assert (requested["request_id"], requested["department"]) == (f"{case_id}-c2", "chengguan")
    assert events[7].fields["data"]["department"] == "chengguan"
    assert not broker.state_of(case_id).bounce_ruling_needed


async def test_case_rule_bounce_bad_input_names_the_field(builtin_adapters, broker, nats_client, unstuck):
    bounced = await open_case(broker, nats_client, "10", "bounce")
    settled = await open_case(broker, nats_client, "08", "accepted")  # coordinating, nothing bounced
    before = len(await stored(broker, bounced))
    unknown, missing, no_bounce = await asyncio.gather(
        unstuck("case", "rule-bounce", bounced, "--actor", "leader-gao", "--department", "gongan"),
        unstuck("case", "rule-bounce", bounced, "--actor", "leader-gao"),
        unstuck("case", "rule-bounce", settled, "--actor", "leader-gao", "--department", "chengguan"),
    )
    refused(unknown, 1, "department: unknown department 'gongan'", "chengguan, renshe, scjg")
    refused(missing, 2, "--department")
    refused(no_bounce, 1, "沒有待裁定的退單")
    assert len(await stored(broker, bounced)) == before


# --- case accountability and accountability list ------------------------------------------------------


async def test_case_accountability_records_the_finding_and_accountability_list_filters_it(
    builtin_adapters, broker, nats_client, unstuck
):
    renshe_case = await open_case(broker, nats_client, "03", "answered")  # refused, 人社
    chengguan_case = await open_case(broker, nats_client, "11", "answered")  # refused, 城管
    run = ok(
        await unstuck(
            "case",
            "accountability",
            renshe_case,
            "--actor",
            "leader-gao",
            "--staff",
            "renshe-clerk-07",
            "--section",
            "養老保險科",
            "--leader-in-charge",
            "分管副局長",
            "--finding",
            "推諉，未一次性告知",
            "--measure",
            "interview",
            "--measure",
            "criticism",
            "--json",
        )
    )
    assert [t for _, t in steps(run)] == ["accountability.recorded"]
    event = (await stored(broker, renshe_case))[-1]
    assert event.fields["actor"] == "leader-gao"
    assert event.fields["data"] == {
        "staff": "renshe-clerk-07",
        "section": "養老保險科",
        "leader_in_charge": "分管副局長",
        "finding": "推諉，未一次性告知",
        "measures": ["interview", "criticism"],
        "fault_tolerance": False,
    }
    ok(
        await unstuck(
            "case",
            "accountability",
            chengguan_case,
            "--actor",
            "leader-gao",
            "--staff",
            "cg-clerk-02",
            "--section",
            "廣告科",
            "--leader-in-charge",
            "城管分管領導",
            "--finding",
            "態度生硬",
            "--measure",
            "performance_review",
        )
    )

    everything, by_staff, by_department, nobody, table = await asyncio.gather(
        unstuck("accountability", "list", "--json"),
        unstuck("accountability", "list", "--staff", "cg-clerk-02", "--json"),
        unstuck("accountability", "list", "--department", "renshe", "--json"),
        unstuck("accountability", "list", "--staff", "nobody", "--json"),
        unstuck("accountability", "list", "--department", "chengguan"),
    )
    rows = ok(everything).json()
    assert rows["count"] == 2
    assert [
        (r["case_id"], r["department"], r["staff"], r["measures"], r["fault_tolerance"])
        for r in rows["records"]
    ] == [
        (renshe_case, "renshe", "renshe-clerk-07", ["interview", "criticism"], False),
        (chengguan_case, "chengguan", "cg-clerk-02", ["performance_review"], False),
    ]
    assert [r["case_id"] for r in ok(by_staff).json()["records"]] == [chengguan_case]
    assert [r["staff"] for r in ok(by_department).json()["records"]] == ["renshe-clerk-07"]
    assert {k: v for k, v in ok(nobody).json().items() if k != "as_of"} == {"records": [], "count": 0}
    lines = ok(table).stdout.splitlines()
    assert len(lines) == 3 and lines[0].split()[:3] == ["案件編號", "部門", "被問責人"]
    assert lines[2].split()[:6] == [
        chengguan_case,
        "chengguan",
        "cg-clerk-02",
        "廣告科",
        "城管分管領導",
        "績效考核",
    ]


async def test_case_accountability_bad_input_names_the_field(builtin_adapters, broker, nats_client, unstuck):
    refused_case = await open_case(broker, nats_client, "03", "answered")
    cannot_case = await open_case(broker, nats_client, "01", "answered")
    who = ("--actor", "leader-gao", "--staff", "renshe-clerk-07", "--section", "養老保險科")
    more = ("--leader-in-charge", "分管副局長", "--finding", "推諉")
    bad_measure, no_measure, not_refused, bad_filter = await asyncio.gather(
        unstuck("case", "accountability", refused_case, *who, *more, "--measure", "sacking"),
        unstuck("case", "accountability", refused_case, *who, *more),
        unstuck("case", "accountability", cannot_case, *who, *more, "--measure", "interview"),
        unstuck("accountability", "list", "--department", "Bad Dept"),
    )
    refused(bad_measure, 1, "measures.0: Input should be 'interview'", "'sacking'")
    refused(no_measure, 2, "--measure")
    refused(not_refused, 1, "問責只登記於不給辦案件", "「不能辦」", cannot_case)
    refused(bad_filter, 1, "department: String should match pattern", "'Bad Dept'")
    assert [e.type for e in await stored(broker, refused_case)][-1] == "case.resolved"
    assert ok(await unstuck("accountability", "list", "--json")).json()["count"] == 0


# --- case list -----------------------------------------------------------------------------------------


async def test_case_list_filters_by_state_category_department_overdue_and_client_ref(
    builtin_adapters, broker, nats_client, unstuck, sim_clock
):
    guided = await open_case(broker, nats_client, "05", "guiding")  # scjg, guided: due 29 Sep
    cannot = await open_case(broker, nats_client, "01", "answered")  # chengguan, cannot: due 8 Oct
    # renshe, hard: due 10 Oct; opened with a client_ref, as a front end would
    hard = await open_case(broker, nats_client, "08", "accepted", client_ref="front-desk-0008")
    refused_ = await open_case(broker, nats_client, "03", "answered")  # renshe, refused: due 29 Sep
    assert [guided, cannot, hard, refused_] == [f"DD-20260928-000{n}" for n in range(1, 5)]
    sim_clock.set(datetime(2026, 9, 30, 9, tzinfo=CHINA))  # past 29 Sep: the guided and refused cases
    await api_call(nats_client, "admin.tick", {})

    filters = {
        "all": (),
        "state coordinating": ("--state", "coordinating"),
        "state answered": ("--state", "answered"),
        "category refused": ("--category", "refused"),
        "department renshe": ("--department", "renshe"),
        "overdue": ("--overdue",),
        "overdue renshe": ("--overdue", "--department", "renshe"),
        "client_ref of the hard case": ("--client-ref", "front-desk-0008"),
        "client_ref nobody gave": ("--client-ref", "front-desk-0099"),
    }
    runs = await asyncio.gather(*(unstuck("case", "list", *args, "--json") for args in filters.values()))
    got = {
        name: [c["case_id"] for c in ok(run).json()["cases"]] for name, run in zip(filters, runs, strict=True)
    }
    assert got == {
        "all": [guided, cannot, hard, refused_],
        "state coordinating": [hard],
        "state answered": [cannot, refused_],
        "category refused": [refused_],
        "department renshe": [hard, refused_],
        "overdue": [guided, refused_],
        "overdue renshe": [refused_],
        "client_ref of the hard case": [hard],
        "client_ref nobody gave": [],
    }
    row = next(c for c in runs[0].json()["cases"] if c["case_id"] == refused_)
    assert {
        k: row[k] for k in ("state", "category", "department", "departments", "owner", "due_date", "overdue")
    } == {
        "state": "answered",
        "category": "refused",
        "department": "renshe",
        "departments": ["renshe"],
        "owner": "w-zhang",
        "due_date": "2026-09-29",
        "overdue": True,
    }
    assert runs[0].json()["count"] == 4

    table = ok(await unstuck("case", "list", "--department", "renshe")).stdout.splitlines()
    assert table[0].split() == ["案件編號", "狀態", "類別", "協調部門", "承辦人", "辦結期限", "時效", "事項"]
    assert table[2].split() == [
        hard,
        "協調中",
        "很難辦",
        "renshe",
        "w-zhang",
        "2026-10-10",
        "職業資格證書補發",
    ]
    assert table[3].split()[:7] == [
        refused_,
        "已答覆待銷號",
        "不給辦",
        "renshe",
        "w-zhang",
        "2026-09-29",
        "已逾期",
    ]
    assert table[-1] == "共 2 件"


async def test_case_list_bad_filters_name_the_field(broker, nats_client, unstuck):
    await api_call(nats_client, "case.open", sample("05"))
    category, state, department, limit = await asyncio.gather(
        unstuck("case", "list", "--category", "impossible"),
        unstuck("case", "list", "--state", "finished"),
        unstuck("case", "list", "--department", "Bad Dept"),
        unstuck("case", "list", "--limit", "0"),
    )
    refused(category, 1, "category: Input should be 'cannot'", "'impossible'")
    refused(
        state,
        1,
        "state: unknown state 'finished'",
        "intake, guiding, coordinating, answered, closed, evaluated",
    )
    refused(department, 1, "department: String should match pattern", "'Bad Dept'")
    refused(limit, 1, "limit: Input should be greater than or equal to 1")
    assert category.stdout == state.stdout == department.stdout == limit.stdout == ""

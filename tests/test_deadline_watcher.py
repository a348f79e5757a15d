"""The periodic deadline watcher (docs/lifecycle.md "Deadlines"; ``[broker] tick_seconds``).

The bus is assembled as ``unstuck serve`` assembles it (``unstuck.bus.Bus``: the broker and the
watcher running every ``tick_seconds``), from a configuration file, on a simulated clock, with the
three built-in departments served. The tests only move the clock and wait for the events: nobody
calls ``admin.tick``. The period is 0.05 s here; were ``tick_seconds`` ignored, the documented
default (60 s) would leave every wait below unanswered.

2026 dates: Monday 28 September opening; 1-7 October National Day; Saturday 10 October a make-up
working day. A guided case (1 working day) opened on the 28th is due on the 29th; a hard case
(5 working days) on Saturday 10 October.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio

from conftest import sample
from unstuck.bus import Bus
from unstuck.clock import CHINA, SimulatedClock
from unstuck.config import load_config
from unstuck.testing import api_call, wait_for

CONFIG = """
[broker]
tick_seconds = 0.05
metrics_address = "127.0.0.1:0"

[window]
duty_leader = "leader-gao"

[deadlines]
warn_at = [1, 0]
escalation_working_hours = 8

[retry]
timeout_seconds = 0.5
backoff_initial_seconds = 0.05
backoff_max_seconds = 0.2
jitter_seconds = 0.01
stalled_retry_seconds = 0.5
"""


@pytest_asyncio.fixture
async def bus(tmp_path: Path, nats_server, sim_clock, builtin_adapters, monkeypatch) -> AsyncIterator[Bus]:
    """The bus of ``unstuck serve``; the kit serves the three departments (up before the broker connects)."""
    monkeypatch.setenv("NATS_URL", nats_server.url)
    path = tmp_path / "unstuck.toml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path)
    assert config.broker.tick_seconds == 0.05
    running = Bus(config, sim_clock, tmp_path / ".unstuck", ticker=True, allow_embedded=False)
    await running.start()
    yield running
    await running.stop()


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=CHINA)


async def deadline_events(bus: Bus, case_id: str) -> list[tuple[str, Any]]:
    """The watcher's events of a case: (type, working days left | due date | (department, role, target))."""
    out: list[tuple[str, Any]] = []
    for e in await bus.broker.store.read_case(case_id):
        d = e.fields["data"]
        if e.type == "case.deadline_warned":
            out.append((e.type, d["working_days_left"]))
        elif e.type == "case.overdue":
            out.append((e.type, d["due_date"]))
        elif e.type == "case.escalated":
            out.append((e.type, (d["department"], d["role"], d["target"], d["reason"])))
        if e.type in ("case.deadline_warned", "case.overdue", "case.escalated"):
            assert e.fields["actor"] == "system"
    return out


async def test_the_watcher_alone_warns_marks_overdue_and_escalates_a_hard_case(
    bus: Bus, nats_client, sim_clock: SimulatedClock
):
    broker = bus.broker
    notes = await nats_client.subscribe("unstuck.notify.>")
    case_id = (await api_call(nats_client, "case.open", sample("13")))["case_id"]  # scjg accepts
    await wait_for(lambda: broker.state_of(case_id).coordinations[f"{case_id}-c1"].outcome == "accepted")
    assert broker.state_of(case_id).due_date.isoformat() == "2026-10-10"

    sim_clock.set(at(10, 9))  # Friday: 1 working day left (the make-up Saturday)
    await wait_for(lambda: broker.state_of(case_id).warned == frozenset({1}), what="the warning at 1 day")
    sim_clock.set(at(10, 10))  # the due day itself
    await wait_for(lambda: broker.state_of(case_id).warned == frozenset({1, 0}), what="the warning at 0 days")
    sim_clock.set(at(10, 11))  # Sunday: the day after the due date, a day off
    await wait_for(lambda: broker.state_of(case_id).overdue, what="overdue")
    assert "scjg" not in broker.state_of(case_id).escalations  # 督辦 waits for a working day
    sim_clock.advance(timedelta(hours=24))  # Monday: the first level
    await wait_for(
        lambda: broker.state_of(case_id).escalations.get("scjg", (0,))[0] == 1, what="the first level"
    )
    sim_clock.advance(timedelta(hours=24))  # one escalation period and working day later: one level up
    await wait_for(
        lambda: broker.state_of(case_id).escalations.get("scjg", (0,))[0] == 2, what="the second level"
    )
    assert await deadline_events(bus, case_id) == [
        ("case.deadline_warned", 1),
        ("case.deadline_warned", 0),
        ("case.overdue", "2026-10-10"),
        # the chain scjg's adapter declares (adapters/scjg.py), as no configuration names these levels
        ("case.escalated", ("scjg", "section_head", "登記註冊科科長", "overdue")),
        ("case.escalated", ("scjg", "leader_in_charge", "分管副局長", "overdue")),
    ]

    seen: dict[str, list[dict[str, Any]]] = {}
    while sum(len(v) for v in seen.values()) < 5:
        msg = await notes.next_msg(timeout=10)
        seen.setdefault(msg.subject, []).append(json.loads(msg.data))
    assert [n["type"] for n in seen["unstuck.notify.owner"]] == ["case.deadline_warned"] * 2
    assert "2026-10-10" in seen["unstuck.notify.owner"][0]["text"]
    assert [n["type"] for n in seen["unstuck.notify.duty_leader"]] == ["case.overdue"]
    assert [n["type"] for n in seen["unstuck.notify.scjg_section_head"]] == ["case.escalated"]
    assert [n["type"] for n in seen["unstuck.notify.scjg_leader_in_charge"]] == ["case.escalated"]


async def test_the_watcher_escalates_to_the_window_when_no_department_owes_and_skips_closed_cases(
    bus: Bus, nats_client, sim_clock: SimulatedClock
):
    broker = bus.broker
    # both guided, due Tuesday 29 September; the first is guided to its window and closed at once
    closed_id = (await api_call(nats_client, "case.open", sample("05")))["case_id"]
    await api_call(
        nats_client,
        "case.guide",
        {"case_id": closed_id, "actor": "w-wang", "window": "食品許可窗口", "instructions": "帶平面圖"},
    )
    open_id = (await api_call(nats_client, "case.open", sample("09")))["case_id"]
    closed_events = [e.type for e in await broker.store.read_case(closed_id)]

    # on the opening day one working day is left: the first warning comes without moving the clock
    await wait_for(lambda: broker.state_of(open_id).warned == frozenset({1}), what="the warning at 1 day")
    sim_clock.set(at(9, 29))
    await wait_for(lambda: broker.state_of(open_id).warned == frozenset({1, 0}), what="the warning at 0 days")
    sim_clock.set(at(9, 30))
    await wait_for(lambda: broker.state_of(open_id).overdue, what="overdue")
    await wait_for(lambda: "window" in broker.state_of(open_id).escalations, what="the window's escalation")
    assert await deadline_events(bus, open_id) == [
        ("case.deadline_warned", 1),
        ("case.deadline_warned", 0),
        ("case.overdue", "2026-09-29"),
        ("case.escalated", ("window", "section_head", "窗口負責人", "overdue")),
    ]
    # the closed case was processed in the same rounds and got nothing
    assert [e.type for e in await broker.store.read_case(closed_id)] == closed_events
    assert not broker.state_of(closed_id).overdue

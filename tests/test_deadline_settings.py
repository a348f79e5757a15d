"""Each ``[deadlines]`` setting, changed in a configuration file, changes what the broker does
(docs/lifecycle.md "Deadlines", "Department answers" and "Configuration keys").

Dates are worked out by hand on the mainland calendar. 2026: Monday 28 September is the opening day;
1-7 October is the National Day holiday; Saturday 10 October is a make-up working day; 11 October is
a Sunday. Working days after 28 September: 29 Sep (1), 30 Sep (2), 8 Oct (3), 9 Oct (4),
10 Oct (5), 12 Oct (6), 13 Oct (7), 14 Oct (8), 15 Oct (9), 16 Oct (10). A hard case (5 working
days) opened on 28 September is due on Saturday 10 October.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import running_broker, sample
from unstuck.broker import Broker
from unstuck.clock import CHINA, SimulatedClock
from unstuck.config import Config, load_config
from unstuck.testing import ApiError, api_call, wait_for

BASE = """
[broker]
metrics_address = "127.0.0.1:0"

[window]
duty_leader = "leader-gao"

[staff]
"leader-gao" = "leader_in_charge"

[retry]
timeout_seconds = 0.5
attempts = 3
backoff_initial_seconds = 0.05
backoff_max_seconds = 0.2
jitter_seconds = 0.01
stalled_retry_seconds = 0.5
"""


def config_file(tmp_path: Path, deadlines: str, extra: str = "") -> Config:
    path = tmp_path / "unstuck.toml"
    path.write_text(f"{BASE}\n[deadlines]\n{deadlines}\n{extra}", encoding="utf-8")
    return load_config(path)


def at(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CHINA)


async def events(broker: Broker, case_id: str, *types: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.fields["data"]) for e in await broker.store.read_case(case_id) if e.type in types]


async def open_accepted_hard_case(broker: Broker, nc: Any) -> str:
    """Sample 08: renshe answers `accepted` (working on it), so the case stays open and owing."""
    case_id = (await api_call(nc, "case.open", sample("08")))["case_id"]
    await wait_for(
        lambda: broker.state_of(case_id).coordinations[f"{case_id}-c1"].outcome == "accepted",
        what="renshe's accepted answer",
    )
    assert broker.state_of(case_id).due_date.isoformat() == "2026-10-10"
    return case_id


# --- working_days ----------------------------------------------------------------------------------


async def test_working_days_per_category_from_the_file_set_each_due_date(
    tmp_path, nats_server, nats_client, sim_clock
):
    config = config_file(tmp_path, "working_days = { guided = 2, refused = 3, cannot = 4, hard = 6 }")
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        due = {}
        for category, body in (
            ("guided", sample("05")),
            ("refused", sample("01", category="refused")),
            ("cannot", sample("01", category="cannot")),
            ("hard", sample("01", category="hard")),
        ):
            case_id = (await api_call(nats_client, "case.open", body))["case_id"]
            state = broker.state_of(case_id)
            due[category] = (state.working_days, state.due_date.isoformat())
    # from Monday 28 September: 2 → 30 Sep; 3 → 8 Oct; 4 → 9 Oct; 6 → Monday 12 Oct
    assert due == {
        "guided": (2, "2026-09-30"),
        "refused": (3, "2026-10-08"),
        "cannot": (4, "2026-10-09"),
        "hard": (6, "2026-10-12"),
    }


# --- warn_at ---------------------------------------------------------------------------------------

# ticks on 30 Sep (3 working days left to 10 Oct), 8 Oct (2), 9 Oct (1), 10 Oct (0)
TICK_DAYS = ((2026, 9, 30), (2026, 10, 8), (2026, 10, 9), (2026, 10, 10))


@pytest.mark.parametrize(
    ("warn_at", "warned_on"),
    [
        ("[1, 0]", {"2026-10-09": 1, "2026-10-10": 0}),  # the documented default
        ("[3]", {"2026-09-30": 3}),
        ("[2, 0]", {"2026-10-08": 2, "2026-10-10": 0}),
    ],
)
async def test_warn_at_decides_on_which_days_the_deadline_warning_comes(
    tmp_path, nats_server, nats_client, sim_clock, builtin_adapters, warn_at, warned_on
):
    config = config_file(tmp_path, f"warn_at = {warn_at}")
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        case_id = await open_accepted_hard_case(broker, nats_client)
        got = {}
        for day in TICK_DAYS:
            sim_clock.set(at(*day))
            before = len(await events(broker, case_id, "case.deadline_warned"))
            await api_call(nats_client, "admin.tick", {})
            warned = await events(broker, case_id, "case.deadline_warned")
            for _, data in warned[before:]:
                assert data["due_date"] == "2026-10-10"
                got[at(*day).date().isoformat()] = data["working_days_left"]
        assert got == warned_on
        assert not broker.state_of(case_id).overdue


# --- escalation_working_hours and office_hours -------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "schedule"),
    [
        (
            "escalation_working_hours = 2",
            [  # overdue on Sunday 11 Oct (a day off): recorded, no climb; from Monday 09:00 one
                # level per 2 office hours, up to the director
                (at(2026, 10, 11, 9), [("case.overdue", None)]),
                (at(2026, 10, 11, 13), []),
                (at(2026, 10, 12, 9), [("case.escalated", "section_head")]),
                (at(2026, 10, 12, 10, 59), []),
                (at(2026, 10, 12, 11), [("case.escalated", "leader_in_charge")]),
                (at(2026, 10, 12, 13), [("case.escalated", "director")]),
                (at(2026, 10, 12, 15), []),
            ],
        ),
        (
            "",  # the documented default: 8 office hours (09:00-17:00), one working day
            [
                (at(2026, 10, 11, 9), [("case.overdue", None)]),
                (at(2026, 10, 12, 9), [("case.escalated", "section_head")]),
                (at(2026, 10, 12, 13), []),
                (at(2026, 10, 12, 16, 59), []),
                (at(2026, 10, 12, 17), [("case.escalated", "leader_in_charge")]),
                (at(2026, 10, 13, 9), []),  # no office hours overnight
                (at(2026, 10, 13, 17), [("case.escalated", "director")]),
            ],
        ),
        (
            'office_hours = "08:30-12:00"',  # a half day of office: 8 hours take two working days and more
            [
                (at(2026, 10, 11, 9), [("case.overdue", None)]),
                (at(2026, 10, 12, 9), [("case.escalated", "section_head")]),  # 3 h left on Monday
                (at(2026, 10, 13, 12), []),  # 3 + 3.5 = 6.5 hours
                (at(2026, 10, 14, 10), [("case.escalated", "leader_in_charge")]),  # 6.5 + 1.5 = 8
            ],
        ),
    ],
    ids=["2h", "default", "half-days"],
)
async def test_escalation_climbs_per_working_hours_counted_in_office_hours(
    tmp_path, nats_server, nats_client, sim_clock, builtin_adapters, settings, schedule
):
    config = config_file(tmp_path, settings)
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        case_id = await open_accepted_hard_case(broker, nats_client)
        for instant, expected in schedule:
            sim_clock.set(instant)
            before = len(await broker.store.read_case(case_id))
            await api_call(nats_client, "admin.tick", {})
            new = (await broker.store.read_case(case_id))[before:]
            got = [(e.type, e.fields["data"].get("role")) for e in new]
            assert got == expected, instant
            for e in new:
                if e.type == "case.escalated":
                    assert (e.fields["data"]["department"], e.fields["data"]["reason"]) == (
                        "renshe",
                        "overdue",
                    )
                else:
                    assert e.fields["data"] == {"due_date": "2026-10-10"}


# --- intake_working_days -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "due", "overdue_at"),
    [
        ("", "2026-09-28", at(2026, 9, 29)),  # by the end of the day it opened (Monday 28 September)
        ("intake_working_days = 1", "2026-09-29", at(2026, 9, 30)),
    ],
    ids=["default", "one-more-day"],
)
async def test_an_unclassified_case_is_watched_from_its_first_working_day(
    tmp_path, nats_server, nats_client, sim_clock, settings, due, overdue_at
):
    config = config_file(tmp_path, settings)
    unclear = sample("01")
    unclear.update(category=None, matter_title="其他事項", description="申請人所述事項尚待了解")
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        case_id = (await api_call(nats_client, "case.open", unclear))["case_id"]
        assert await events(broker, case_id, "case.intake_deadline_set") == [
            (
                "case.intake_deadline_set",
                {"working_days": int(settings[-1] if settings else 0), "due_date": due},
            )
        ]
        sim_clock.set(overdue_at)
        await api_call(nats_client, "admin.tick", {})
        escalated = await events(broker, case_id, "case.overdue", "case.escalated")
        assert [(t, d.get("department"), d.get("level"), d.get("reason")) for t, d in escalated] == [
            ("case.overdue", None, None, None),
            ("case.escalated", "window", 1, "overdue"),
        ]
        await api_call(
            nats_client,
            "case.classify",
            {"case_id": case_id, "actor": "w-zhang", "category": "hard", "reason": "政策空白"},
        )
        state = broker.state_of(case_id)
        assert state.state == "coordinating" and not state.overdue


# --- the review of a `cannot`: [departments.<code>] higher and review_working_days --------------------


async def test_a_cannot_goes_over_the_bus_to_the_higher_department_and_closing_against_it_needs_a_leader(
    tmp_path, nats_server, nats_client, sim_clock, builtin_adapters
):
    config = config_file(
        tmp_path, "review_working_days = 2", extra='[departments.chengguan]\nhigher = "scjg"\n'
    )
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        case_id = (await api_call(nats_client, "case.open", sample("01")))["case_id"]  # opened Monday 28 Sep
        review_request = f"{case_id}-c2"
        await wait_for(
            lambda: (
                (c := broker.state_of(case_id).coordinations.get(review_request)) is not None and not c.open
            ),
            what="the higher department's answer to the review",
        )
        state = broker.state_of(case_id)
        assert state.state == "answered"  # the review runs beside the case
        (review,) = state.reviews
        # notice: 3 working days (29, 30 Sep, 8 Oct); review: 2 working days (29, 30 Sep)
        assert (
            review["higher_department"],
            review["notify_by"],
            review["due_date"],
            review["request_id"],
        ) == (
            "scjg",
            "2026-10-08",
            "2026-09-30",
            review_request,
        )
        requested = [
            d for t, d in await events(broker, case_id, "coordination.requested") if d.get("review_of")
        ]
        assert [(d["department"], d["review_of"], d["deadline"]) for d in requested] == [
            ("scjg", "chengguan", "2026-09-30")
        ]
        # scjg says the shop sign is not its matter: that neither upholds nor overturns; the window concludes
        assert review["conclusion"] is None and state.coordinations[review_request].outcome == "not_ours"
        conclude = {"case_id": case_id, "actor": "w-zhang", "department": "chengguan", "note": "省廳維持"}
        await api_call(nats_client, "case.review_conclude", {**conclude, "outcome": "upheld"})
        assert broker.state_of(case_id).reviews[0]["conclusion"] == "upheld"
        # 銷號 against chengguan's `cannot`: refused for the clerk, recorded for a leader with a reason
        close = {"case_id": case_id, "outcome": "resolved", "explanation": "經協調已同意設置"}
        with pytest.raises(ApiError) as refused:
            await api_call(nats_client, "case.close", {**close, "actor": "w-zhang"})
        assert refused.value.error["field"] == "outcome"
        assert "與部門答覆（chengguan: cannot）不一致" in refused.value.error["message_zh"]
        await api_call(
            nats_client,
            "case.close",
            {**close, "actor": "leader-gao", "override_reason": "市政府專題會議同意"},
        )
        (closed,) = await events(broker, case_id, "case.closed")
        assert (closed[1]["override_reason"], closed[1]["overridden_by"]) == (
            "市政府專題會議同意",
            "leader-gao",
        )


# --- max_extension_days ----------------------------------------------------------------------------


@pytest.mark.parametrize(("maximum", "second_allowed"), [(4, False), (10, True)])
async def test_max_extension_days_caps_the_total_of_all_extensions(
    tmp_path, nats_server, nats_client, sim_clock, builtin_adapters, maximum, second_allowed
):
    config = config_file(tmp_path, f"max_extension_days = {maximum}")
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        case_id = await open_accepted_hard_case(broker, nats_client)
        ask = {"case_id": case_id, "actor": "w-zhang", "reason": "等待省鑒定中心回函"}
        await api_call(nats_client, "case.extend", {**ask, "working_days": 3})
        await api_call(nats_client, "case.approve_extension", {"case_id": case_id, "actor": "leader-gao"})
        assert broker.state_of(case_id).due_date.isoformat() == "2026-10-14"  # 10 Oct + 12, 13, 14
        if second_allowed:
            result = await api_call(nats_client, "case.extend", {**ask, "working_days": 2})
            assert [e["type"] for e in result["events"]] == ["case.extension_requested"]
            requested = await events(broker, case_id, "case.extension_requested")
            assert requested[-1][1]["proposed_due_date"] == "2026-10-16"  # 14 Oct + 15, 16
        else:
            with pytest.raises(ApiError) as exc:
                await api_call(nats_client, "case.extend", {**ask, "working_days": 2})
            assert exc.value.error["field"] == "working_days"
            assert "total 5 working days; at most 4 (already 3)" in exc.value.error["message"]
            await api_call(nats_client, "case.extend", {**ask, "working_days": 1})  # up to exactly 4
            await api_call(nats_client, "case.approve_extension", {"case_id": case_id, "actor": "leader-gao"})
            state = broker.state_of(case_id)
            assert (state.due_date.isoformat(), state.extension_days) == ("2026-10-15", 4)


# --- max_bounces -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (  # the documented default: the first 退單 is re-routed to the department named
            2,
            [
                "case.opened",
                "case.classified",
                "coordination.requested",
                "coordination.replied",
                "coordination.requested",
                "coordination.replied",
                "case.resolved",
            ],
        ),
        (  # one bounce is already too many: the duty leader is asked to rule
            1,
            [
                "case.opened",
                "case.classified",
                "coordination.requested",
                "coordination.replied",
                "case.escalated",
            ],
        ),
    ],
)
async def test_max_bounces_decides_when_the_duty_leader_must_rule(
    tmp_path, nats_server, nats_client, sim_clock, builtin_adapters, maximum, expected
):
    config = config_file(tmp_path, f"max_bounces = {maximum}")
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        # sample 10: renshe answers not_ours, the matter belongs to chengguan (which resolves it)
        case_id = (await api_call(nats_client, "case.open", sample("10")))["case_id"]
        await wait_for(
            lambda: (
                broker.state_of(case_id).state == "answered" or broker.state_of(case_id).bounce_ruling_needed
            ),
            what="the bounce handled",
        )
        stored = await broker.store.read_case(case_id)
        assert [e.type for e in stored] == expected
        if maximum == 1:
            assert stored[-1].fields["data"] == {
                "department": "renshe",
                "level": 2,
                "role": "leader_in_charge",
                "target": "leader-gao",
                "reason": "bounced",
                "audience": "duty_leader",
                "note": "1 bounces; the duty leader rules which department handles it",
            }
        else:
            assert stored[4].fields["data"]["department"] == "chengguan"
            assert stored[4].fields["data"]["rerouted_from"] == "renshe"


# --- review_notify_days ----------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "notify_by"), [(3, "2026-10-08"), (5, "2026-10-10")])
async def test_review_notify_days_sets_when_the_applicant_hears_of_the_review(
    tmp_path, nats_server, nats_client, sim_clock, builtin_adapters, days, notify_by
):
    config = config_file(
        tmp_path, f"review_notify_days = {days}", '[departments.chengguan]\nhigher = "市城管執法局"\n'
    )
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        # sample 01: chengguan answers cannot (a second-floor shop sign) on Monday 28 September
        case_id = (await api_call(nats_client, "case.open", sample("01")))["case_id"]
        await wait_for(lambda: broker.state_of(case_id).state == "answered", what="chengguan's answer")
        [(_, review)] = await events(broker, case_id, "case.review_requested")
        assert review["department"] == "chengguan"
        assert review["higher_department"] == "市城管執法局"
        assert review["notify_by"] == notify_by
        assert review["legal_basis"]


# --- calendar_override -----------------------------------------------------------------------------

# 2031 is a year no library has the State Council's notice of. Monday 29 September 2031; the override
# makes Tuesday 30 September and Wednesday 1 October holidays and Saturday 4 October a working day. Five
# working days from the 29th: 2 Oct (1), 3 Oct (2), Sat 4 Oct (3), Mon 6 Oct (4), Tue 7 Oct (5). Without
# the override only the statutory holidays count: National Day 1-3 October (Mid-Autumn falls on the 1st
# too), so 30 Sep (1), Mon 6 (2), 7 (3), 8 (4), Thu 9 Oct (5), and the due date is provisional.
OVERRIDE_2031 = '[2031]\nholidays = ["2031-09-30", "2031-10-01"]\nworkdays = ["2031-10-04"]\n'


@pytest.mark.parametrize(("with_override", "due"), [(True, "2031-10-07"), (False, "2031-10-09")])
async def test_calendar_override_supplies_a_year_the_library_does_not_know(
    tmp_path, nats_server, nats_client, builtin_adapters, with_override, due
):
    (tmp_path / "holidays-2031.toml").write_text(OVERRIDE_2031, encoding="utf-8")
    setting = 'calendar_override = "holidays-2031.toml"' if with_override else ""
    config = config_file(tmp_path, setting)
    clock = SimulatedClock(at(2031, 9, 29))
    async with running_broker(nats_server, config, clock, nats_client) as broker:
        case_id = (await api_call(nats_client, "case.open", sample("01", category="hard")))["case_id"]
        assert case_id == "DD-20310929-0001"
        assert broker.state_of(case_id).due_date.isoformat() == due
        assert broker.state_of(case_id).due_date_provisional is not with_override
        fallbacks = broker.metrics.registry.get_sample_value("unstuck_calendar_fallback_total")
        year_unknown = broker.metrics.registry.get_sample_value("unstuck_calendar_year_unknown")
        if with_override:
            assert (fallbacks, year_unknown) == (0.0, 0.0)
        else:
            assert fallbacks > 0 and year_unknown == 2031.0


def test_calendar_deadline_command_reads_the_override_named_in_the_config(tmp_path):
    (tmp_path / "holidays-2031.toml").write_text(OVERRIDE_2031, encoding="utf-8")
    (tmp_path / "city.toml").write_text('[deadlines]\ncalendar_override = "holidays-2031.toml"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "UNSTUCK_CONFIG")}
    command = [sys.executable, "-m", "unstuck", "calendar", "deadline", "--from", "2031-09-29"]
    out = subprocess.run(
        [*command, "--working-days", "5", "--config", str(tmp_path / "city.toml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2031-10-07" and "provisional" not in out.stdout


# --- reclassification keeps granted extensions -----------------------------------------------------


async def test_reclassification_keeps_the_extension_already_granted(
    tmp_path, nats_server, nats_client, sim_clock, builtin_adapters
):
    config = config_file(tmp_path, "")
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        case_id = await open_accepted_hard_case(broker, nats_client)  # hard, due Sat 10 Oct
        ask = {"case_id": case_id, "actor": "w-zhang", "working_days": 3, "reason": "等待省鑒定中心回函"}
        await api_call(nats_client, "case.extend", ask)
        await api_call(nats_client, "case.approve_extension", {"case_id": case_id, "actor": "leader-gao"})
        assert broker.state_of(case_id).due_date.isoformat() == "2026-10-14"

        sim_clock.set(at(2026, 10, 9))  # reclassified later: the deadline still counts from the opening day
        change = {"case_id": case_id, "actor": "w-zhang"}
        await api_call(
            nats_client, "case.classify", {**change, "category": "cannot", "reason": "省廳答覆：法規不允許"}
        )
        # cannot 3 + the 3 granted: 6 working days from 28 Sep → Monday 12 Oct (not 8 Oct without them)
        state = broker.state_of(case_id)
        assert (state.category, state.due_date.isoformat(), state.extension_days) == (
            "cannot",
            "2026-10-12",
            3,
        )

        await api_call(
            nats_client, "case.classify", {**change, "category": "refused", "reason": "經辦人推諉"}
        )
        # refused 1 + 3: 4 working days from 28 Sep → Friday 9 Oct
        state = broker.state_of(case_id)
        assert (state.category, state.due_date.isoformat(), state.extension_days) == (
            "refused",
            "2026-10-09",
            3,
        )

        reclassified = await events(broker, case_id, "case.reclassified")
        assert [
            (d["previous"], d["category"], d["working_days"], d["due_date"]) for _, d in reclassified
        ] == [
            ("hard", "cannot", 3, "2026-10-12"),
            ("cannot", "refused", 1, "2026-10-09"),
        ]


@pytest.mark.parametrize(
    ("first", "days", "proposed", "second", "due_after_reclassifying", "due_after_approval"),
    [
        # hard (10 Oct) + 3 proposes 14 Oct; as cannot the case is due 8 Oct, + 3 → 9, 10, 12 Oct
        ("hard", 3, "2026-10-14", "cannot", "2026-10-08", "2026-10-12"),
        # cannot (8 Oct) + 1 proposes 9 Oct; as hard the case is due 10 Oct, + 1 → Monday 12 Oct, never earlier
        ("cannot", 1, "2026-10-09", "hard", "2026-10-10", "2026-10-12"),
    ],
    ids=["hard-to-cannot", "cannot-to-hard"],
)
async def test_an_extension_approved_after_a_reclassification_extends_the_new_deadline(
    tmp_path,
    nats_server,
    nats_client,
    sim_clock,
    builtin_adapters,
    first,
    days,
    proposed,
    second,
    due_after_reclassifying,
    due_after_approval,
):
    config = config_file(tmp_path, "")
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        case_id = (await api_call(nats_client, "case.open", sample("08", category=first)))["case_id"]
        await wait_for(lambda: not broker.state_of(case_id).coordinations[f"{case_id}-c1"].awaiting_reply)
        ask = {"case_id": case_id, "actor": "w-zhang", "working_days": days, "reason": "等待省鑒定中心回函"}
        await api_call(nats_client, "case.extend", ask)
        [(_, requested)] = await events(broker, case_id, "case.extension_requested")
        assert requested["proposed_due_date"] == proposed
        await api_call(
            nats_client,
            "case.classify",
            {"case_id": case_id, "actor": "w-zhang", "category": second, "reason": "重新認定"},
        )
        assert broker.state_of(case_id).due_date.isoformat() == due_after_reclassifying
        await api_call(nats_client, "case.approve_extension", {"case_id": case_id, "actor": "leader-gao"})
        [(_, extended)] = await events(broker, case_id, "case.extended")
        assert (extended["due_date"], extended["working_days"], extended["total_extension_days"]) == (
            due_after_approval,
            days,
            days,
        )
        assert broker.state_of(case_id).due_date.isoformat() == due_after_approval

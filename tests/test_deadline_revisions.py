"""A due date counted through a year whose holiday schedule is not published is provisional, and the
broker records ``case.due_date_revised`` once the schedule is known: at start-up, or on the deadline
watcher's next tick after the override file changed.

2027 is made "not published" here whatever the installed libraries know (``unpublished_years``), so its
days are its statutory holidays only. By hand: the Spring Festival of 2027 is Saturday 6 February; its
eve Friday 5 February, days 1-3 (Sat 6, Sun 7, Mon 8) and the 補假 of the two weekend days (Tue 9,
Wed 10) are off. A hard case (5 working days) opened Monday 1 February 2027 counts 2 (1), 3 (2), 4 (3),
11 (4), 12 February (5): due Friday 12 February, provisional.

The override file then "publishes" 2027 with a schedule made up for the test (not the State Council's):
1 January and 5, 8, 9, 10, 11 February off, Saturday 20 February worked. Counted again: 2 (1), 3 (2),
4 (3), 12 (4), Monday 15 February (5): due 15 February, no longer provisional.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from conftest import running_broker, sample
from unstuck.broker import Broker
from unstuck.clock import CHINA, SimulatedClock
from unstuck.testing import api_call, fast_config, wait_for
from unstuck.workcalendar import WorkingCalendar

OVERRIDE_2027 = (
    '[2027]\nholidays = ["2027-01-01", "2027-02-05", "2027-02-08", "2027-02-09", "2027-02-10", '
    '"2027-02-11"]\nworkdays = ["2027-02-20"]\n'
)
FEB_1 = datetime(2027, 2, 1, 9, 0, tzinfo=CHINA)


async def events(broker: Broker, case_id: str, *types: str) -> list[dict[str, Any]]:
    return [e.fields["data"] for e in await broker.store.read_case(case_id) if e.type in types]


def unpublished(override: Path | None = None) -> WorkingCalendar:
    return WorkingCalendar(override, unpublished_years={2027})


async def open_hard_case(broker: Broker, nc: Any) -> str:
    case_id = str((await api_call(nc, "case.open", sample("08", category="hard")))["case_id"])
    state = broker.state_of(case_id)
    assert (state.due_date, state.due_date_provisional) == (date(2027, 2, 12), True)
    [classified] = await events(broker, case_id, "case.classified")
    assert (classified["due_date"], classified["due_date_provisional"]) == ("2027-02-12", True)
    return case_id


async def test_a_broker_restarted_with_the_year_published_revises_the_provisional_due_date(
    tmp_path, nats_server, nats_client, builtin_adapters
):
    config, clock = fast_config(), SimulatedClock(FEB_1)
    async with running_broker(nats_server, config, clock, nats_client, unpublished()) as broker:
        case_id = await open_hard_case(broker, nats_client)
        got = await api_call(nats_client, "case.get", {"case_id": case_id})
        assert got["state"]["due_date_provisional"] is True
        # the department's answer is in before the restart, so the revision is the newest event after it
        await wait_for(lambda: broker.state_of(case_id).coordinations[f"{case_id}-c1"].outcome is not None)
    override = tmp_path / "calendar.toml"
    override.write_text(OVERRIDE_2027, encoding="utf-8")
    async with running_broker(nats_server, config, clock, nats_client, unpublished(override)) as broker:
        state = broker.state_of(case_id)
        assert (state.due_date, state.due_date_provisional) == (date(2027, 2, 15), False)
        assert await events(broker, case_id, "case.due_date_revised") == [
            {
                "previous_due_date": "2027-02-12",
                "due_date": "2027-02-15",
                "due_date_provisional": False,
                "reason": "calendar schedule for 2027 published (override file)",
            }
        ]
        got = await api_call(nats_client, "case.get", {"case_id": case_id, "events": True})
        assert (got["state"]["due_date"], got["state"]["due_date_provisional"]) == ("2027-02-15", False)
        assert got["events"][-1]["type"] == "case.due_date_revised"
        assert got["events"][-1]["actor"] == "system"
    # a third start on the same calendar: nothing left to revise
    async with running_broker(nats_server, config, clock, nats_client, unpublished(override)) as broker:
        assert len(await events(broker, case_id, "case.due_date_revised")) == 1
        assert broker.state_of(case_id).due_date == date(2027, 2, 15)


async def test_the_watcher_revises_on_the_tick_after_the_override_file_changes(
    tmp_path, nats_server, nats_client, builtin_adapters
):
    override = tmp_path / "calendar.toml"
    override.write_text('[2031]\nholidays = ["2031-10-01"]\n', encoding="utf-8")  # another year only
    config, clock = fast_config(), SimulatedClock(FEB_1)
    async with running_broker(nats_server, config, clock, nats_client, unpublished(override)) as broker:
        case_id = await open_hard_case(broker, nats_client)
        assert (await api_call(nats_client, "admin.tick", {}))["events"] == 0  # nothing changed
        assert broker.state_of(case_id).due_date_provisional is True
        override.write_text('[2031]\nholidays = ["2031-10-01"]\n\n' + OVERRIDE_2027, encoding="utf-8")
        assert (await api_call(nats_client, "admin.tick", {}))["events"] == 1
        state = broker.state_of(case_id)
        assert (state.due_date, state.due_date_provisional) == (date(2027, 2, 15), False)
        [revised] = await events(broker, case_id, "case.due_date_revised")
        assert (revised["previous_due_date"], revised["due_date"]) == ("2027-02-12", "2027-02-15")
        assert (await api_call(nats_client, "admin.tick", {}))["events"] == 0  # once only


async def test_a_case_in_intake_has_its_intake_deadline_revised(
    tmp_path, nats_server, nats_client, builtin_adapters
):
    # opened Thursday 4 February 2027 unclassified, with intake_working_days = 1: one working day after
    # the opening day, Thursday 11 February on 2027's statutory holidays (5-10 February off), Friday
    # 12 February on the made-up schedule (5 and 8-11 February off)
    config, clock = fast_config(), SimulatedClock(datetime(2027, 2, 4, 9, 0, tzinfo=CHINA))
    config.deadlines.intake_working_days = 1
    body = {
        **sample("01"),
        "category": None,
        "matter_title": "其他事項",
        "description": "申請人所述事項尚待了解",
    }
    async with running_broker(nats_server, config, clock, nats_client, unpublished()) as broker:
        case_id = str((await api_call(nats_client, "case.open", body))["case_id"])
        state = broker.state_of(case_id)
        assert (state.state, state.due_date, state.due_date_provisional) == (
            "intake",
            date(2027, 2, 11),
            True,
        )
    override = tmp_path / "calendar.toml"
    override.write_text(OVERRIDE_2027, encoding="utf-8")
    async with running_broker(nats_server, config, clock, nats_client, unpublished(override)) as broker:
        state = broker.state_of(case_id)
        assert (state.due_date, state.due_date_provisional) == (date(2027, 2, 12), False)
        [revised] = await events(broker, case_id, "case.due_date_revised")
        assert (revised["previous_due_date"], revised["due_date"]) == ("2027-02-11", "2027-02-12")

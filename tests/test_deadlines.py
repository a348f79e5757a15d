"""The 1-3-5 rule through the broker: the due date a case opened on a given day gets, worked out by hand.

The opening day does not count; the n-th following working day on the mainland statutory calendar
is the due date. The 2026 facts used below: National Day is 1-7 October with Saturday 10 October a
make-up working day; the Spring Festival is 15-23 February with Saturdays 14 and 28 February
make-up working days; 25 September (Mid-Autumn) is a holiday.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from conftest import sample
from unstuck.clock import CHINA, SimulatedClock
from unstuck.config import Config
from unstuck.testing import api_call, fast_config

CATEGORIES = ("guided", "refused", "cannot", "hard")

# opened on → due date per category (guided 1, refused 1, cannot 3, hard 5 working days)
DUE = {
    # an ordinary Tuesday: Wed; Wed Thu Fri; Wed Thu Fri Mon Tue
    date(2026, 11, 10): ("2026-11-11", "2026-11-11", "2026-11-13", "2026-11-17"),
    # a Thursday: the weekend is skipped from the second working day on
    date(2026, 11, 12): ("2026-11-13", "2026-11-13", "2026-11-17", "2026-11-19"),
    # the day before National Day: 8 Oct, then 9, 10 (make-up Saturday), then 12, 13
    date(2026, 9, 30): ("2026-10-08", "2026-10-08", "2026-10-10", "2026-10-13"),
    # opened on the make-up Saturday itself: Sunday 11 is off
    date(2026, 10, 10): ("2026-10-12", "2026-10-12", "2026-10-14", "2026-10-16"),
    # the Friday before the Spring Festival: the make-up Saturday 14 Feb, then 24, 25, 26, 27
    date(2026, 2, 13): ("2026-02-14", "2026-02-14", "2026-02-25", "2026-02-27"),
    # opened on that make-up Saturday: nine days off, then 24, 25, 26, 27 and Saturday 28 (make-up)
    date(2026, 2, 14): ("2026-02-24", "2026-02-24", "2026-02-26", "2026-02-28"),
    # the Thursday before Mid-Autumn (25 Sep, a Friday) and the weekend: 28, 29, 30, then 8, 9 Oct
    date(2026, 9, 24): ("2026-09-28", "2026-09-28", "2026-09-30", "2026-10-09"),
}


@pytest.fixture
def sim_clock() -> SimulatedClock:
    """Starts early in 2026 so each test can move it forward to its own opening day."""
    return SimulatedClock(datetime(2026, 1, 5, 9, tzinfo=CHINA))


@pytest.fixture
def unstuck_config(request: pytest.FixtureRequest) -> Config:
    """The kit's test configuration, with ``[deadlines] working_days`` overrides when parametrized."""
    config = fast_config()
    config.deadlines.working_days.update(getattr(request, "param", {}))
    return config


def intake(category: str) -> dict:
    if category == "guided":
        return sample("05")
    return sample("01", category=category)


@pytest.mark.parametrize("opened_on", sorted(DUE), ids=str)
async def test_each_category_is_due_on_the_working_day_worked_out_by_hand(
    broker, nats_client, sim_clock, opened_on
):
    sim_clock.set(datetime(opened_on.year, opened_on.month, opened_on.day, 10, tzinfo=CHINA))
    got = []
    for category in CATEGORIES:
        case_id = (await api_call(nats_client, "case.open", intake(category)))["case_id"]
        got.append(broker.state_of(case_id).due_date.isoformat())
    assert tuple(got) == DUE[opened_on]


@pytest.mark.parametrize("unstuck_config", [{"hard": 6, "guided": 2}], indirect=True)
async def test_configured_working_days_override_the_rule_per_category(broker, nats_client, sim_clock):
    sim_clock.set(datetime(2026, 11, 10, 10, tzinfo=CHINA))  # Tuesday
    got = {}
    for category in CATEGORIES:
        case_id = (await api_call(nats_client, "case.open", intake(category)))["case_id"]
        got[category] = broker.state_of(case_id).due_date.isoformat()
    # hard 6: Wed Thu Fri Mon Tue Wed; guided 2: Wed Thu; the others keep the rule
    assert got == {
        "guided": "2026-11-12",
        "refused": "2026-11-11",
        "cannot": "2026-11-13",
        "hard": "2026-11-18",
    }

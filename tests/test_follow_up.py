"""A 差評 (不滿意 or 非常不滿意) is followed up: 回訪 and 整改 within 15 working days, watched and
escalated like any other deadline; a 好評 opens nothing."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pytest
from lifecycle_support import apply, opened, reply_command, tick

from unstuck import lifecycle as lc
from unstuck.clock import CHINA
from unstuck.schemas import events as ev
from unstuck.schemas.common import Satisfaction

CLERK, LEADER = 0, 2
RATED_ON = date(2026, 11, 2)  # a Monday; November 2026 has no holiday
# 15 working days after Monday 2 November: 3-6 (4), 9-13 (9), 16-20 (14), Monday 23 (15)
FOLLOW_UP_DUE = date(2026, 11, 23)


def evaluated(level: Satisfaction) -> lc.CaseState:
    state = opened("01")  # 不能辦, chengguan asked; owner w-zhang
    state, _ = apply(state, reply_command(state, "resolved"))  # no `cannot` review to follow as well
    close = lc.Close(
        actor="w-zhang", actor_rank=CLERK, outcome="resolved", explanation="已辦好", today=RATED_ON
    )
    state, _ = apply(state, close)
    rate = lc.Evaluate(
        actor="applicant",
        level=level,
        comment="",
        department_at_fault=None,
        working_days=3,
        due_date=date(2026, 11, 5),
        follow_up_days=15,
        follow_up_due=FOLLOW_UP_DUE,
    )
    state, _ = apply(state, rate, at=datetime(2026, 11, 2, 10, tzinfo=CHINA))
    return state


def watcher(state: lc.CaseState, today: date) -> lc.CheckDeadlines:
    days_left = {FOLLOW_UP_DUE: lc_days(today)} if today <= FOLLOW_UP_DUE else {}
    return dataclasses.replace(tick(state, today), days_left=days_left)


def lc_days(today: date) -> int:
    """Working days from ``today`` to the due date, by hand for the days these tests use."""
    return {date(2026, 11, 20): 1, date(2026, 11, 23): 0, date(2026, 11, 9): 10}[today]


@pytest.mark.parametrize("level", [Satisfaction.DISSATISFIED, Satisfaction.VERY_DISSATISFIED])
def test_a_bad_rating_opens_a_follow_up_due_in_15_working_days_and_keeps_the_case_watched(level):
    state = evaluated(level)
    assert state.state == lc.EVALUATED
    assert state.follow_up is not None
    assert (state.follow_up["due_date"], state.follow_up["level"], state.follow_up["done"]) == (
        "2026-11-23",
        level.value,
        False,
    )
    assert state.watched


@pytest.mark.parametrize(
    "level", [Satisfaction.VERY_SATISFIED, Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED]
)
def test_a_good_rating_opens_no_follow_up_and_the_case_leaves_the_watch(level):
    state = evaluated(level)
    assert state.follow_up is None and not state.watched


def test_the_follow_up_is_warned_before_its_date_and_escalated_to_the_window_after_it():
    state = evaluated(Satisfaction.DISSATISFIED)
    assert lc.decide(state, watcher(state, date(2026, 11, 9))) == []  # ten days left: nothing yet
    state, events = apply(state, watcher(state, date(2026, 11, 20)))
    [warned] = [e.data for e in events]
    assert isinstance(warned, ev.DeadlineWarned)
    assert (warned.about, warned.due_date, warned.working_days_left) == ("follow_up", FOLLOW_UP_DUE, 1)
    assert lc.decide(state, watcher(state, date(2026, 11, 20))) == []  # warned once
    state, events = apply(state, watcher(state, date(2026, 11, 24)))  # Tuesday, the day after
    [escalated] = [e.data for e in events]
    assert isinstance(escalated, ev.CaseEscalated)
    assert (escalated.department, escalated.level, escalated.reason) == ("window", 1, "follow_up_overdue")
    assert state.follow_up is not None and state.follow_up["late"] is True


def test_the_owner_records_the_visit_and_the_measures_and_the_watch_ends():
    state = evaluated(Satisfaction.VERY_DISSATISFIED)
    done = lc.FollowUp(actor="w-zhang", visit="已電話回訪", measures="窗口增加說明", today=date(2026, 11, 20))
    state, events = apply(state, done)
    assert [e.type for e in events] == ["case.follow_up_done"]
    assert state.follow_up is not None and state.follow_up["done"] and state.follow_up["on_time"] is True
    assert not state.watched
    with pytest.raises(lc.Refused) as again:
        lc.decide(state, done)
    assert again.value.code == "not_allowed"


def test_a_follow_up_recorded_after_its_date_is_not_on_time():
    state = evaluated(Satisfaction.DISSATISFIED)
    late = lc.FollowUp(actor="w-zhang", visit="回訪", measures="整改", today=date(2026, 11, 24))
    state, _ = apply(state, late)
    assert state.follow_up is not None and state.follow_up["on_time"] is False


def test_only_the_owner_or_a_leader_records_the_follow_up():
    state = evaluated(Satisfaction.DISSATISFIED)
    other = lc.FollowUp(
        actor="w-li", actor_rank=CLERK, visit="回訪", measures="整改", today=date(2026, 11, 20)
    )
    with pytest.raises(lc.Refused) as refused:
        lc.decide(state, other)
    assert refused.value.field == "actor"
    leader = dataclasses.replace(other, actor="leader-gao", actor_rank=LEADER)
    assert [e.type for e in lc.decide(state, leader)] == ["case.follow_up_done"]


def test_a_case_without_a_bad_rating_has_nothing_to_follow_up():
    state = evaluated(Satisfaction.SATISFIED)
    with pytest.raises(lc.Refused) as refused:
        lc.decide(state, lc.FollowUp(actor="w-zhang", visit="x", measures="y", today=date(2026, 11, 20)))
    assert refused.value.code == "not_allowed"


def closed_not_rated() -> lc.CaseState:
    state = opened("01")
    state, _ = apply(state, reply_command(state, "resolved"))
    close = lc.Close(
        actor="w-zhang", actor_rank=CLERK, outcome="resolved", explanation="已辦好", today=RATED_ON
    )
    state, _ = apply(state, close, at=datetime(2026, 11, 2, 16, tzinfo=CHINA))
    return state


def invitation_check(state: lc.CaseState, today: date, days: int = 3) -> lc.CheckDeadlines:
    return dataclasses.replace(tick(state, today), invite_after_days=days)


def test_an_applicant_who_has_not_rated_three_days_after_closing_is_invited_once():
    state = closed_not_rated()  # closed on Monday 2 November at 16:00 Beijing time
    assert lc.decide(state, invitation_check(state, date(2026, 11, 4))) == []  # two days
    state, events = apply(state, invitation_check(state, date(2026, 11, 5)))
    [invited] = [e.data for e in events]
    assert invited == ev.RatingInvited(closed_on=date(2026, 11, 2), days=3)
    assert state.rating_invited and not state.followed(invites_ratings=True)
    assert lc.decide(state, invitation_check(state, date(2026, 11, 9))) == []  # once


def test_no_invitation_when_the_centre_sends_none_or_the_applicant_has_rated():
    state = closed_not_rated()
    assert lc.decide(state, invitation_check(state, date(2026, 11, 9), days=0)) == []
    assert not state.followed(invites_ratings=False) and state.followed(invites_ratings=True)
    rated = evaluated(Satisfaction.SATISFIED)
    assert lc.decide(rated, invitation_check(rated, date(2026, 11, 9))) == []

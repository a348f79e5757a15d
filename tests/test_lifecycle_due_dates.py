"""Provisional due dates in the pure lifecycle: the mark carried from the shell into the events and the
state, what the due date is counted from, and ``case.due_date_revised`` (the ReviseDueDate command)."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from lifecycle_support import OPENED, apply, opened, reply_command

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.broker.snapshots import decode_state, encode_state
from unstuck.clock import CHINA
from unstuck.schemas import CaseIntake, Category, parse_payload
from unstuck.schemas.events import CaseClassified

DEC_28 = datetime(2026, 12, 28, 9, 0, tzinfo=CHINA)  # a Monday


def opened_provisional() -> lc.CaseState:
    """A hard case opened Monday 28 December 2026, 5 working days on 2027's statutory holidays only:
    29, 30, 31 December, (1 January off, a weekend), 4 and 5 January: due Tuesday 5 January 2027."""
    intake = CaseIntake.model_validate(sample("01", category="hard"))
    c = lc.Classification(
        category=Category.HARD,
        reason="test",
        working_days=5,
        due_date=date(2027, 1, 5),
        departments=("chengguan",),
        duty_leader="leader-gao",
        due_date_provisional=True,
    )
    state, _ = apply(
        lc.CaseState(case_id="DD-20261228-0001"), lc.Open(intake=intake, classification=c), DEC_28
    )
    return state


def revise(due: date, provisional: bool = False) -> lc.ReviseDueDate:
    return lc.ReviseDueDate(
        due_date=due,
        due_date_provisional=provisional,
        reason="calendar schedule for 2027 published (override file)",
    )


def test_a_provisional_classification_is_marked_in_the_event_and_the_state():
    s = opened_provisional()
    assert (s.due_date, s.due_date_provisional) == (date(2027, 1, 5), True)
    assert s.due_basis == (DEC_28, 5)  # counted from the opening, over the category's working days
    assert s.to_dict()["due_date_provisional"] is True


def test_the_mark_is_stored_only_when_set_so_other_records_read_as_before():
    classified = {
        "category": "hard",
        "reason": "r",
        "mode": "coordinate",
        "working_days": 5,
        "due_date": date(2026, 10, 13),
    }
    plain = CaseClassified(**classified).model_dump(mode="json", exclude_none=True)
    assert "due_date_provisional" not in plain
    marked = CaseClassified(**classified, due_date_provisional=True).model_dump(
        mode="json", exclude_none=True
    )
    assert marked["due_date_provisional"] is True
    assert parse_payload("case.classified", marked).due_date_provisional is True  # type: ignore[attr-defined]
    assert parse_payload("case.classified", plain).due_date_provisional is False  # type: ignore[attr-defined]
    s = opened("02")
    assert s.due_date_provisional is False and s.to_dict()["due_date_provisional"] is False


def test_revising_records_the_previous_and_new_due_date_and_clears_the_mark():
    s = opened_provisional()
    s, events = apply(s, revise(date(2027, 1, 6)))
    assert [e.type for e in events] == ["case.due_date_revised"]
    assert events[0].actor == "system"
    assert events[0].data.model_dump(mode="json") == {
        "previous_due_date": "2027-01-05",
        "due_date": "2027-01-06",
        "due_date_provisional": False,
        "reason": "calendar schedule for 2027 published (override file)",
    }
    assert (s.due_date, s.due_date_provisional) == (date(2027, 1, 6), False)
    assert s.due_basis == (DEC_28, 5)  # still counted from the opening


def test_a_revision_that_changes_nothing_records_nothing():
    s = opened_provisional()
    assert lc.decide(s, revise(date(2027, 1, 5), provisional=True)) == []
    _, events = apply(s, revise(date(2027, 1, 5), provisional=False))  # the same date, published now
    assert [(e.data.due_date, e.data.due_date_provisional) for e in events] == [(date(2027, 1, 5), False)]


def test_a_later_due_date_lifts_the_overdue_mark_and_an_earlier_keeps_it():
    s = lc._replace_state(opened_provisional(), overdue=True, warned=frozenset({0, 1}))
    later, _ = apply(s, revise(date(2027, 1, 7)))
    assert (later.overdue, later.warned) == (False, frozenset())
    earlier, _ = apply(s, revise(date(2027, 1, 4)))
    assert (earlier.overdue, earlier.warned) == (True, frozenset({0, 1}))


def test_revise_is_a_system_verb_of_open_cases_only():
    s = opened("01")  # answered
    assert "revise_due_date" in lc.ALLOWED[s.state] and "revise_due_date" in lc.SYSTEM_VERBS
    closed = lc._replace_state(s, state=lc.CLOSED)
    with pytest.raises(lc.Refused) as refused:
        lc.decide(closed, revise(date(2027, 1, 6)))
    assert "revise_due_date" not in str(refused.value).split("allowed:")[1]
    assert "期限重算" not in (refused.value.zh or "").split("現在可以")[1]


def test_an_intake_deadline_carries_the_mark():
    intake = CaseIntake.model_validate({**sample("01"), "category": None})
    deadline = lc.IntakeDeadline(working_days=0, due_date=date(2027, 1, 4), due_date_provisional=True)
    s, events = apply(lc.CaseState(case_id="DD-1"), lc.Open(intake=intake, intake_deadline=deadline), DEC_28)
    assert events[-1].data.due_date_provisional is True  # type: ignore[attr-defined]
    assert (s.state, s.due_date_provisional, s.due_basis) == (lc.INTAKE, True, None)
    s, events = apply(s, revise(date(2027, 1, 4)))
    assert (s.due_date, s.due_date_provisional) == (date(2027, 1, 4), False)


def test_an_extension_adds_its_days_to_what_the_due_date_is_counted_over_and_carries_the_mark():
    s = opened_provisional()
    s, events = apply(
        s,
        lc.RequestExtension(
            actor="w-zhang",
            working_days=2,
            reason="等回函",
            today=date(2026, 12, 30),
            proposed_due_date=date(2027, 1, 7),
            due_date_provisional=True,
        ),
    )
    assert events[0].data.due_date_provisional is True  # type: ignore[attr-defined]
    s, events = apply(s, lc.ApproveExtension(actor="leader-gao", actor_rank=lc.LEADER_RANK))
    assert [e.type for e in events] == ["case.extended"]
    assert events[0].data.due_date_provisional is True  # type: ignore[attr-defined]  (from the request)
    assert (s.due_date, s.due_date_provisional, s.due_basis) == (date(2027, 1, 7), True, (DEC_28, 7))


def test_a_reopened_round_counts_from_the_day_it_was_reopened():
    s = opened("01")
    s, _ = apply(s, reply_command(s, "resolved"))
    s, _ = apply(
        s,
        lc.Close(actor="w-zhang", actor_rank=0, outcome="resolved", explanation="已辦", today=OPENED.date()),
    )
    reopened_at = datetime(2026, 12, 30, 10, tzinfo=CHINA)
    s, events = apply(
        s,
        lc.Reopen(
            actor="leader-gao",
            actor_rank=lc.LEADER_RANK,
            reason="重辦",
            working_days=3,
            due_date=date(2027, 1, 5),
            due_date_provisional=True,
        ),
        at=reopened_at,
    )
    assert events[0].data.due_date_provisional is True  # type: ignore[attr-defined]
    assert (s.round, s.due_date_provisional, s.due_basis) == (2, True, (reopened_at, 3))


def test_the_snapshot_codec_keeps_the_mark_and_the_basis():
    s = opened_provisional()
    assert decode_state(json.loads(json.dumps(encode_state(s)))) == s

"""Driving the pure lifecycle in tests: apply commands to a state as the broker would, without NATS."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time
from typing import Any

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.broker.deadlines import working_hours_between
from unstuck.clock import CHINA
from unstuck.schemas import CaseIntake, Category, CoordinationReply
from unstuck.workcalendar import WorkingCalendar

CAL = WorkingCalendar()
OPENED = datetime(2026, 9, 28, 9, 0, tzinfo=CHINA)
DAYS = {Category.GUIDED: 1, Category.REFUSED: 1, Category.CANNOT: 3, Category.HARD: 5}
_hashes = itertools.count(1)


def classification(
    category: str, departments: tuple[str, ...] = ("chengguan",), start: date = OPENED.date()
) -> lc.Classification:
    cat = Category(category)
    return lc.Classification(
        category=cat,
        reason="test",
        working_days=DAYS[cat],
        due_date=CAL.add_working_days(start, DAYS[cat]),
        departments=() if cat is Category.GUIDED else departments,
        duty_leader="leader-gao",
    )


def apply(
    state: lc.CaseState, command: object, at: datetime = OPENED
) -> tuple[lc.CaseState, list[lc.NewEvent]]:
    """decide, then evolve each event as if stored (seq, hash, time): returns the new state and the events."""
    events = lc.decide(state, command)
    for e in events:
        meta = lc.EventMeta(seq=state.seq + 1, at=at, hash=f"{next(_hashes):064x}")
        state = lc.evolve(state, e.type, e.data, meta)
    return state, events


def opened(
    sample_name: str = "01",
    category: str | None = None,
    departments: tuple[str, ...] | None = None,
    case_id: str = "DD-20260928-0001",
) -> lc.CaseState:
    body = sample(sample_name)
    body["category"] = category or body["category"]
    intake = CaseIntake.model_validate(body)
    c = (
        classification(intake.category.value, departments or (intake.department,))
        if intake.category
        else None
    )
    state, _ = apply(lc.CaseState(case_id=case_id), lc.Open(intake=intake, classification=c))
    return state


def reply_command(
    state: lc.CaseState,
    outcome: str,
    department: str | None = None,
    request_id: str | None = None,
    max_bounces: int = 2,
    **fields: Any,
) -> lc.RecordReply:
    c = next(
        c
        for c in state.coordinations.values()
        if c.open and (department is None or c.department == department)
    )
    defaults: dict[str, Any] = {
        "cannot": {"legal_basis": "某條例第十條"},
        "not_ours": {"belongs_to": "scjg"},
        "accepted": {"expected_date": date(2026, 10, 9)},
        "need_materials": {"materials": ["平面圖"]},
    }.get(outcome, {})
    reply = CoordinationReply(
        request_id=request_id or c.request_id,
        department=department or c.department,
        outcome=outcome,
        message="答覆",
        handler="科室",
        **{**defaults, **fields},
    )
    return lc.RecordReply(
        reply=reply,
        attempt=1,
        today=OPENED.date(),
        review_notify_by=date(2026, 10, 8),
        review_due_date=date(2026, 10, 12),
        higher_department="省廳",
        max_bounces=max_bounces,
        known_departments=frozenset({"renshe", "scjg", "chengguan"}),
    )


def tick(
    state: lc.CaseState, today: date, at: datetime | None = None, escalation_hours: float = 8
) -> lc.CheckDeadlines:
    """The watcher's reading as the broker makes it: working hours counted 09:00-17:00 on the calendar."""
    at = at or datetime(today.year, today.month, today.day, 9, tzinfo=CHINA)
    return lc.CheckDeadlines(
        today=today,
        at=at,
        working_days_left=CAL.working_days_between(today, state.due_date),
        warn_at=(1, 0),
        escalation_hours=escalation_hours,
        chains={"chengguan": {"section_head": "市容科科長", "leader_in_charge": "分管副局長"}},
        working_day=CAL.is_working_day(today),
        working_hours_since={
            dept: working_hours_between(CAL, since, at, (time(9), time(17)))
            for dept, (_level, since) in state.escalations.items()
        },
    )

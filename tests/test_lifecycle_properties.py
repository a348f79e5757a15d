"""Random command sequences on the pure lifecycle: no sequence reaches an invalid state, and evolving the
recorded events again from nothing reproduces the same state."""

from __future__ import annotations

import itertools
import os
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifecycle_support import CAL, OPENED, classification, reply_command, tick

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.clock import CHINA
from unstuck.schemas import CaseIntake
from unstuck.schemas.common import Satisfaction
from unstuck.schemas.events import AccountabilityRecorded

DEPARTMENTS = frozenset({"renshe", "scjg", "chengguan"})
OUTCOMES = ["resolved", "accepted", "cannot", "not_ours", "need_materials"]
STAFF = [("w-zhang", 0), ("w-li", 0), ("leader-gao", 2), ("director-ma", 3)]

command_kinds = st.sampled_from(
    [
        "classify",
        "handover",
        "reply",
        "stall",
        "tick",
        "extend",
        "approve",
        "close",
        "guide",
        "evaluate",
        "follow_up",
        "reopen",
        "accountability",
        "rule_bounce",
        "escalate",
        "failed",
    ]
)


def build(kind: str, s: lc.CaseState, draw: st.DrawFn, today: date) -> object | None:
    actor, rank = draw(st.sampled_from(STAFF))
    open_coords = [c for c in s.coordinations.values() if c.open]
    match kind:
        case "classify":
            cat = draw(st.sampled_from(["cannot", "hard", "refused", "guided"]))
            return lc.Classify(
                actor=actor, classification=classification(cat, (draw(st.sampled_from(sorted(DEPARTMENTS))),))
            )
        case "handover":
            return lc.Handover(
                actor=actor,
                actor_rank=rank,
                owner=draw(st.sampled_from([a for a, _ in STAFF])),
                reason="輪換",
            )
        case "reply" if open_coords:
            c = draw(st.sampled_from(open_coords))
            outcome = draw(st.sampled_from(OUTCOMES))
            extra = (
                {"belongs_to": draw(st.sampled_from(sorted(DEPARTMENTS - {c.department})))}
                if outcome == "not_ours"
                else {}
            )
            return reply_command(s, outcome, department=c.department, **extra)
        case "stall" if open_coords:
            return lc.RecordStall(
                request_id=draw(st.sampled_from(open_coords)).request_id,
                attempts=3,
                last_reason="timeout",
                chain={},
            )
        case "failed" if open_coords:
            return lc.RecordAttemptFailure(
                request_id=draw(st.sampled_from(open_coords)).request_id, attempt=1, reason="timeout"
            )
        case "tick" if s.due_date is not None:
            return tick(s, today, datetime(today.year, today.month, today.day, 9, tzinfo=CHINA))
        case "extend" if s.due_date is not None:
            days = draw(st.integers(1, 6))
            return lc.RequestExtension(
                actor=actor,
                working_days=days,
                reason="延期",
                today=today,
                proposed_due_date=CAL.add_working_days(s.due_date, days),
            )
        case "approve":
            return lc.ApproveExtension(actor=actor, actor_rank=rank)
        case "close":
            outcome = draw(st.sampled_from(["resolved", "cannot", "guided", "need_materials", "withdrawn"]))
            return lc.Close(
                actor=actor, actor_rank=rank, outcome=outcome, explanation="向申請人說明", today=today
            )
        case "guide":
            return lc.Guide(
                actor=actor, actor_rank=rank, window="某窗口", instructions="請攜帶材料", today=today
            )
        case "evaluate":
            level = draw(st.sampled_from(list(Satisfaction)))
            dept = draw(st.sampled_from([None, *sorted(DEPARTMENTS)])) if level.rating == "bad" else None
            return lc.Evaluate(
                actor=actor,
                level=level,
                comment="",
                department_at_fault=dept,
                working_days=5,
                due_date=CAL.add_working_days(today, 5),
                follow_up_days=15,
                follow_up_due=CAL.add_working_days(today, 15),
            )
        case "follow_up":
            return lc.FollowUp(actor=actor, actor_rank=rank, visit="已回訪", measures="已整改", today=today)
        case "reopen":
            return lc.Reopen(
                actor=actor,
                actor_rank=rank,
                reason="重辦",
                working_days=5,
                due_date=CAL.add_working_days(today, 5),
            )
        case "accountability":
            return lc.RecordAccountability(
                actor=actor,
                data=AccountabilityRecorded(
                    staff="clerk-1",
                    section="科",
                    leader_in_charge="領導",
                    finding="推諉",
                    measures=["interview"],
                    fault_tolerance=draw(st.booleans()),
                ),
            )
        case "rule_bounce":
            return lc.RuleBounce(
                actor=actor, actor_rank=rank, department=draw(st.sampled_from(sorted(DEPARTMENTS)))
            )
        case "escalate":
            return lc.Escalate(
                actor=actor,
                department=draw(st.sampled_from(sorted(DEPARTMENTS))),
                level=draw(st.integers(0, 3)),
                note="請過問",
                chain={},
            )
    return None


def check_valid(s: lc.CaseState, n_events: int) -> None:
    assert s.seq == n_events
    assert s.state in lc.STATES
    assert s.owner
    assert s.category in (None, "cannot", "hard", "refused", "guided")
    if s.state != lc.INTAKE:
        assert s.category is not None and s.due_date is not None
    if s.state in (lc.CLOSED, lc.EVALUATED):
        assert s.closing is not None and s.closing["explanation"]
    if s.state == lc.EVALUATED:
        assert s.evaluation is not None
    if s.state == lc.ANSWERED:
        assert not any(c.open for c in s.current())
    if s.state == lc.GUIDING:
        assert not any(c.open for c in s.current())
    assert 0 <= s.extension_days <= 10
    if s.follow_up is not None:  # only a bad rating opens a follow-up
        assert s.evaluation is not None and s.follow_up["level"] in ("dissatisfied", "very_dissatisfied")
    assert all(0 <= level <= 3 for level, _ in s.escalations.values())
    assert all(c.department in DEPARTMENTS for c in s.coordinations.values())
    assert len(set(s.coordinations)) == len(s.coordinations)


# `make mutate` runs this once per mutant: fewer examples there, drawn the same way every time
MUTATION_RUN = "UNSTUCK_MUTATION_RUN" in os.environ


@settings(
    max_examples=40 if MUTATION_RUN else 300,
    derandomize=MUTATION_RUN,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_random_command_sequences_never_reach_an_invalid_state_and_replay_the_same(data):
    sample_name = data.draw(st.sampled_from(["01", "02", "03", "05", "08", "10"]))
    log: list[tuple[str, object, lc.EventMeta]] = []
    intake = CaseIntake.model_validate(sample(sample_name))
    s = lc.CaseState(case_id="DD-20260928-0001")
    hashes = itertools.count(1)

    def record(state: lc.CaseState, events: list[lc.NewEvent], at: datetime) -> lc.CaseState:
        for e in events:
            meta = lc.EventMeta(seq=state.seq + 1, at=at, hash=f"{next(hashes):064x}")
            state = lc.evolve(state, e.type, e.data, meta)
            log.append((e.type, e.data, meta))
        return state

    s = record(
        s,
        lc.decide(
            s,
            lc.Open(
                intake=intake, classification=classification(intake.category.value, (intake.department,))
            ),
        ),
        OPENED,
    )
    today = OPENED.date()
    for _ in range(data.draw(st.integers(1, 25))):
        today += timedelta(days=data.draw(st.integers(0, 2)))
        command = build(data.draw(command_kinds), s, data.draw, today)
        if command is None:
            continue
        try:
            events = lc.decide(s, command)
        except lc.Refused:
            continue
        s = record(s, events, datetime(today.year, today.month, today.day, 10, tzinfo=CHINA))
        check_valid(s, len(log))
    replayed = lc.CaseState(case_id=s.case_id)
    for event_type, payload, meta in log:
        replayed = lc.evolve(replayed, event_type, payload, meta)
    assert replayed == s

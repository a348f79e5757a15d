"""The window's rules on the pure lifecycle: every case watched from intake, 不給辦 closed only with
its accountability, 銷號 agreeing with the answers, and the review of a `cannot` followed.

Dates are on the 2026 calendar: Monday 28 September is the opening day; 1-7 October is the National
Day holiday and Saturday 10 October a make-up working day.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from lifecycle_support import apply, classification, opened

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.clock import CHINA
from unstuck.schemas import CaseIntake, CoordinationReply
from unstuck.schemas import events as ev

CLERK, LEADER = 1, 2
KNOWN = frozenset({"renshe", "scjg", "chengguan", "zhujian"})
SEP28, SEP29, SEP30 = date(2026, 9, 28), date(2026, 9, 29), date(2026, 9, 30)
OCT8, OCT9, OCT10, OCT12, OCT13 = (date(2026, 10, d) for d in (8, 9, 10, 12, 13))


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=CHINA)


def check(
    today: date, left: int, *, worked: float = 0.0, days_left: dict[date, int] | None = None
) -> lc.CheckDeadlines:
    """The watcher's reading, counted by hand: ``left`` working days to the case's due date."""
    return lc.CheckDeadlines(
        today=today,
        at=datetime(today.year, today.month, today.day, 9, tzinfo=CHINA),
        working_days_left=left,
        warn_at=(1, 0),
        escalation_hours=8,
        chains={"window": {"section_head": "窗口負責人", "leader_in_charge": "值班領導"}},
        working_hours_since=dict.fromkeys([*KNOWN, "window"], worked),
        days_left=days_left or {},
    )


def answer(
    state: lc.CaseState, department: str, outcome: str, *, higher: str = "省住建廳", **fields: object
) -> lc.RecordReply:
    request = next(c for c in state.coordinations.values() if c.department == department and c.open)
    if outcome == "cannot":
        fields.setdefault("legal_basis", "城市容貌標準第5條")
    return lc.RecordReply(
        reply=CoordinationReply(
            request_id=request.request_id,
            department=department,
            outcome=outcome,
            message="答覆",
            handler="科室",
            **fields,
        ),
        attempt=1,
        today=SEP29,
        review_notify_by=OCT8,  # 3 working days after 29 September
        review_due_date=OCT12,  # 5 working days after 29 September
        higher_department=higher,
        max_bounces=2,
        known_departments=KNOWN,
    )


def close(outcome: str, actor: str = "w-zhang", rank: int = CLERK, reason: str | None = None) -> lc.Close:
    return lc.Close(
        actor=actor,
        actor_rank=rank,
        outcome=outcome,
        explanation="已向申請人說明",
        today=SEP30,
        override_reason=reason,
    )


def refusal(state: lc.CaseState, command: object) -> lc.Refused:
    with pytest.raises(lc.Refused) as caught:
        lc.decide(state, command)
    return caught.value


# --- every case is watched: the intake deadline ---------------------------------------------------------


def unclassified(due: date = SEP28) -> lc.CaseState:
    body = sample("01")
    body["category"] = None
    intake = CaseIntake.model_validate(body)
    deadline = lc.IntakeDeadline(working_days=0, due_date=due)
    state, events = apply(
        lc.CaseState(case_id="DD-20260928-0001"), lc.Open(intake=intake, intake_deadline=deadline)
    )
    assert [e.type for e in events] == ["case.opened", "case.intake_deadline_set"]
    return state


def test_an_unclassified_case_is_due_to_be_classified_and_warned_on_its_day():
    s = unclassified()
    assert (s.state, s.due_date, s.working_days) == (lc.INTAKE, SEP28, 0)
    s, events = apply(s, check(SEP28, 0))  # the points not warned yet are caught up one per tick
    assert events == [lc.NewEvent("system", ev.DeadlineWarned(due_date=SEP28, working_days_left=1))]
    s, events = apply(s, check(SEP28, 0))
    assert events == [lc.NewEvent("system", ev.DeadlineWarned(due_date=SEP28, working_days_left=0))]


def test_an_unclassified_case_past_its_day_is_overdue_and_the_window_escalated():
    s, events = apply(unclassified(), check(SEP29, -1), at=at(9, 29))
    assert [
        (e.type, getattr(e.data, "department", None), getattr(e.data, "level", None)) for e in events
    ] == [
        ("case.overdue", None, None),
        ("case.escalated", "window", 1),
    ]
    assert events[1].data.target == "窗口負責人" and events[1].data.reason == "overdue"
    s, events = apply(s, check(SEP30, -2, worked=8), at=at(9, 30))
    assert [(e.data.level, e.data.target) for e in events] == [(2, "值班領導")]


def test_classifying_an_overdue_unclassified_case_starts_the_categorys_deadline():
    s, _ = apply(unclassified(), check(SEP29, -1), at=at(9, 29))
    assert s.overdue
    s, _ = apply(s, lc.Classify(actor="w-zhang", classification=classification("cannot", start=SEP29)))
    # 3 working days after 29 September: 30 September, 8 and 9 October
    assert (s.state, s.due_date, s.overdue, s.warned) == (lc.COORDINATING, OCT9, False, frozenset())
    assert s.escalations["window"][0] == 1  # the level reached at intake stays on the record


# --- 不給辦: closed only with its accountability ----------------------------------------------------------


def finding(*measures: str, fault_tolerance: bool = False) -> ev.AccountabilityRecorded:
    return ev.AccountabilityRecorded(
        staff="renshe-clerk-07",
        section="養老保險科",
        leader_in_charge="分管副局長",
        finding="推諉，未一次性告知",
        measures=list(measures),
        fault_tolerance=fault_tolerance,
    )


def refused_answered() -> lc.CaseState:
    s, _ = apply(opened("03"), answer(opened("03"), "renshe", "resolved"))
    assert (s.category, s.state) == ("refused", lc.ANSWERED)
    return s


def test_a_refused_case_does_not_close_without_accountability_or_exemption():
    error = refusal(refused_answered(), close("resolved"))
    assert (error.code, error.field) == ("not_allowed", "case_id")
    assert (
        error.zh == "案件 DD-20260928-0001 屬不給辦：須先登記問責，或由領導登記容錯免責（附理由），才能銷號"
    )


def test_a_refused_case_closes_after_its_accountability_record():
    s, _ = apply(
        refused_answered(),
        lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=finding("interview")),
    )
    _, events = apply(s, close("resolved"))
    assert [e.type for e in events] == ["case.closed"]


def test_the_exemption_is_a_leaders_with_no_measures_and_it_closes_the_case():
    s = refused_answered()
    exempt = finding("none", fault_tolerance=True)
    assert refusal(s, lc.RecordAccountability(actor="w-zhang", actor_rank=CLERK, data=exempt)).field == (
        "fault_tolerance"
    )
    with_measure = finding("interview", fault_tolerance=True)
    error = refusal(s, lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=with_measure))
    assert error.field == "measures"
    s, _ = apply(s, lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=exempt))
    _, events = apply(s, close("resolved"))
    assert [e.type for e in events] == ["case.closed"]


def test_accountability_and_the_exemption_exclude_each_other_either_way():
    s = refused_answered()
    recorded, _ = apply(
        s, lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=finding("performance_review"))
    )
    exempt = lc.RecordAccountability(
        actor="leader-gao", actor_rank=LEADER, data=finding("none", fault_tolerance=True)
    )
    assert "exclude each other" in str(refusal(recorded, exempt))
    exempted, _ = apply(s, exempt)
    error = refusal(
        exempted,
        lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=finding("performance_review")),
    )
    assert error.zh == "案件 DD-20260928-0001 已由領導登記容錯免責，不能再登記問責（兩者只能擇一）"
    # a second record of measures (another staff member) is still allowed
    again, events = apply(
        recorded, lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=finding("criticism"))
    )
    assert [e.type for e in events] == ["accountability.recorded"] and len(again.accountability) == 2


def test_reclassifying_away_from_refused_after_a_record_needs_a_leader_and_keeps_the_record():
    s, _ = apply(
        refused_answered(),
        lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=finding("interview")),
    )
    hard = classification("hard", ("renshe",))
    error = refusal(s, lc.Classify(actor="w-zhang", actor_rank=CLERK, classification=hard))
    assert (error.field, error.zh) == (
        "actor",
        "案件 DD-20260928-0001 已有問責記錄：只有領導（分管領導及以上）可以改為其他類別，問責記錄保留",
    )
    s, _ = apply(s, lc.Classify(actor="leader-gao", actor_rank=LEADER, classification=hard))
    assert s.category == "hard" and [a["measures"] for a in s.accountability] == [["interview"]]
    # without a record anyone the rules allow may reclassify it
    s, _ = apply(refused_answered(), lc.Classify(actor="w-zhang", actor_rank=CLERK, classification=hard))
    assert s.category == "hard"


# --- 銷號 agrees with the answers ------------------------------------------------------------------------


def cannot_answered(departments: tuple[str, ...] = ("chengguan",)) -> lc.CaseState:
    s = opened("01", departments=departments)
    s, _ = apply(s, answer(s, "chengguan", "cannot"))
    return s


def test_closing_resolved_against_a_cannot_answer_is_refused_naming_the_answers():
    error = refusal(cannot_answered(), close("resolved"))
    assert (error.code, error.field) == ("not_allowed", "outcome")
    assert str(error) == (
        "outcome resolved contradicts the departments' answers (chengguan: cannot): only a leader closes so, "
        "with override_reason"
    )


def test_a_leader_overrides_the_answers_only_with_a_reason_and_the_override_is_recorded():
    s = cannot_answered()
    assert refusal(s, close("resolved", "leader-gao", LEADER)).field == "override_reason"
    _, events = apply(s, close("resolved", "leader-gao", LEADER, reason="省廳口頭同意特事特辦"))
    assert events[0].data == ev.CaseClosed(
        outcome="resolved",
        explanation="已向申請人說明",
        closed_by="leader-gao",
        on_time=True,
        override_reason="省廳口頭同意特事特辦",
        overridden_by="leader-gao",
    )


def test_an_outcome_that_agrees_needs_no_override_and_refuses_one():
    s = cannot_answered()
    _, events = apply(s, close("cannot"))
    assert events[0].data.override_reason is None
    assert refusal(s, close("cannot", "leader-gao", LEADER, reason="多餘")).field == "override_reason"


def test_resolved_needs_every_department_resolved_and_withdrawn_always_agrees():
    s = cannot_answered(("chengguan", "scjg"))
    s, _ = apply(s, answer(s, "scjg", "resolved"))
    assert s.state == lc.ANSWERED
    assert refusal(s, close("resolved")).field == "outcome"
    assert refusal(s, close("guided")).field == "outcome"
    for outcome in ("cannot", "withdrawn"):
        assert [e.type for e in apply(s, close(outcome))[1]] == ["case.closed"]


# --- the review of a `cannot` ----------------------------------------------------------------------------


def test_a_cannot_with_no_adapter_above_is_a_manual_review_with_its_own_due_date():
    s = opened("01")
    s, events = apply(s, answer(s, "chengguan", "cannot"))
    assert events[1].data == ev.ReviewRequested(
        department="chengguan",
        legal_basis="城市容貌標準第5條",
        higher_department="省住建廳",
        notify_by=OCT8,
        due_date=OCT12,
    )
    assert s.state == lc.ANSWERED and len(s.coordinations) == 1
    s, events = apply(
        s, lc.ConcludeReview(actor="w-zhang", department="chengguan", outcome="upheld", note="維持")
    )
    assert events == [
        lc.NewEvent("w-zhang", ev.ReviewConcluded(department="chengguan", outcome="upheld", note="維持"))
    ]
    assert s.reviews[0]["conclusion"] == "upheld"
    assert refusal(
        s, lc.ConcludeReview(actor="w-zhang", department="chengguan", outcome="upheld", note="x")
    ).field == ("department")


def test_a_cannot_goes_to_a_higher_department_the_bus_knows_beside_the_case():
    s = opened("01")
    s, events = apply(s, answer(s, "chengguan", "cannot", higher="zhujian"))
    rid = "DD-20260928-0001-c2"
    assert [e.type for e in events] == [
        "coordination.replied",
        "case.review_requested",
        "coordination.requested",
        "case.resolved",
    ]
    assert events[1].data.request_id == rid
    assert (events[2].data.department, events[2].data.deadline, events[2].data.review_of) == (
        "zhujian",
        OCT12,
        "chengguan",
    )
    # the review runs beside the case: answered, and it closes while the review goes on
    assert s.state == lc.ANSWERED and s.current() == [s.coordinations["DD-20260928-0001-c1"]]
    s, _ = apply(s, close("cannot"))
    assert s.state == lc.CLOSED and s.watched
    # the higher department's answer concludes it, even on a closed case
    s, events = apply(s, answer(s, "zhujian", "resolved", higher="zhujian"))
    assert [e.type for e in events] == ["coordination.replied"]
    assert s.reviews[0]["conclusion"] == "overturned" and not s.watched


def test_the_reviewers_own_cannot_upholds_and_is_not_reviewed_again():
    s = opened("01")
    s, _ = apply(s, answer(s, "chengguan", "cannot", higher="zhujian"))
    s, events = apply(s, answer(s, "zhujian", "cannot", higher="zhujian"))
    assert [e.type for e in events] == ["coordination.replied"]
    assert s.reviews[0]["conclusion"] == "upheld" and len(s.reviews) == 1


def test_a_closed_case_records_no_late_answer_but_a_reviews():
    s = opened("01", departments=("chengguan", "scjg"))
    s, _ = apply(s, close("withdrawn"))
    late = answer(s, "scjg", "resolved")
    assert refusal(s, late).field == "request_id"


def test_the_applicants_notice_is_warned_then_escalated_at_the_window_until_given():
    s = opened("01", category="hard")  # due Saturday 10 October (a make-up working day)
    s, _ = apply(s, answer(s, "chengguan", "cannot"))  # notice by 8 October, review by 12 October
    s, events = apply(s, check(SEP30, 3, days_left={OCT8: 1, OCT12: 4}))
    assert events == [
        lc.NewEvent(
            "system",
            ev.DeadlineWarned(
                due_date=OCT8, working_days_left=1, about="review_notice", department="chengguan"
            ),
        )
    ]
    assert s.reviews[0]["notice_warned"] == [1]
    assert apply(s, check(SEP30, 3, days_left={OCT8: 1, OCT12: 4}))[1] == []  # warned once
    s, events = apply(s, check(OCT9, 1, days_left={OCT12: 2}), at=at(10, 9))
    assert [
        (e.type, e.data.working_days_left if e.type == "case.deadline_warned" else e.data.reason)
        for e in events
    ] == [
        ("case.deadline_warned", 1),  # the case's own deadline; the review's has 2 days left, not warned
        ("case.escalated", "notice_overdue"),
    ]
    assert (events[1].data.department, events[1].data.level) == ("window", 1) and s.reviews[0]["notice_late"]
    s, events = apply(s, check(OCT10, 0, worked=8, days_left={OCT12: 1}), at=at(10, 10))
    assert [(e.type, getattr(e.data, "about", None)) for e in events] == [
        ("case.deadline_warned", None),  # the case's own, due today
        ("case.deadline_warned", "review"),  # the review's conclusion, 1 working day left
        ("case.escalated", None),
    ]
    assert (events[2].data.level, events[2].data.reason) == (2, "notice_overdue")
    s, _ = apply(s, lc.RecordReviewNotice(actor="w-zhang", department="chengguan", how="電話告知"))
    assert s.reviews[0]["notified"] is True
    s, events = apply(s, check(OCT12, -1, worked=8, days_left={OCT12: 0}), at=at(10, 12))
    assert [e.data.reason for e in events if e.type == "case.escalated"] == ["overdue"]  # the case's own


def test_a_review_past_its_due_date_escalates_whoever_owes_the_conclusion():
    s = opened("01")
    s, _ = apply(s, answer(s, "chengguan", "cannot"))
    s, _ = apply(s, close("cannot"))  # 銷號 tells the applicant: the notice is given
    assert s.reviews[0]["notified"] is True and s.watched
    s, events = apply(s, check(OCT13, -2), at=at(10, 13))
    assert [(e.data.department, e.data.level, e.data.reason) for e in events] == [
        ("window", 1, "review_overdue")
    ]
    s, _ = apply(s, lc.ConcludeReview(actor="w-zhang", department="chengguan", outcome="upheld", note="維持"))
    assert not s.watched and apply(s, check(OCT13, -2, worked=8))[1] == []

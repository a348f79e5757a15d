"""The window's rules on the pure lifecycle functions: no NATS, no clock, no I/O."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from lifecycle_support import CAL, OPENED, apply, classification, opened, reply_command, tick

from unstuck import lifecycle as lc
from unstuck.clock import CHINA
from unstuck.schemas.common import Satisfaction
from unstuck.schemas.events import AccountabilityRecorded

LEADER = 2  # rank of a leader in charge
CLERK = 0


def types(events: list[lc.NewEvent]) -> list[str]:
    return [e.type for e in events]


# --- opening and classification ------------------------------------------------------------------


def test_case_opened_with_category_is_classified_and_coordinated_at_once():
    s = opened("01")
    assert s.state == lc.COORDINATING
    assert s.category == "cannot" and s.owner == "w-zhang"
    assert [c.department for c in s.coordinations.values()] == ["chengguan"]
    assert next(iter(s.coordinations)) == "DD-20260928-0001-c1"


def test_case_opened_without_category_waits_in_intake():
    body_state = lc.CaseState(case_id="DD-20260928-0002")
    from conftest import sample
    from unstuck.schemas import CaseIntake

    intake = CaseIntake.model_validate({**sample("01"), "category": None})
    s, events = apply(body_state, lc.Open(intake=intake))
    assert types(events) == ["case.opened"]
    assert s.state == lc.INTAKE
    s, events = apply(s, lc.Classify(actor="w-zhang", classification=classification("cannot")))
    assert types(events) == ["case.classified", "coordination.requested"]
    assert s.state == lc.COORDINATING


def test_guided_case_is_not_coordinated_and_closes_when_guided_to_the_named_window():
    s = opened("05")
    assert s.state == lc.GUIDING and s.coordinations == {}
    s, events = apply(
        s,
        lc.Guide(
            actor="w-wang",
            actor_rank=CLERK,
            window="市場監管局食品許可窗口",
            instructions="帶平面圖去辦",
            today=OPENED.date(),
        ),
    )
    assert types(events) == ["case.guided", "case.closed"]
    assert s.state == lc.CLOSED and s.closing["outcome"] == "guided" and s.closing["on_time"] is True


def test_reclassification_is_its_own_event_with_a_reason_and_moves_the_deadline():
    s = opened("02", category="cannot")
    assert s.due_date == date(2026, 10, 8)
    s, events = apply(s, lc.Classify(actor="w-li", classification=classification("hard", ("scjg",))))
    assert types(events) == ["case.reclassified"]
    assert s.category == "hard" and s.due_date == date(2026, 10, 10)


def test_reclassifying_to_the_same_category_is_refused():
    s = opened("02")
    with pytest.raises(lc.Refused, match="already classified hard"):
        lc.decide(s, lc.Classify(actor="w-li", classification=classification("hard", ("scjg",))))


def test_a_command_not_allowed_in_the_state_names_the_state_and_what_is_allowed():
    s = opened("05")
    with pytest.raises(lc.Refused) as exc:
        lc.decide(
            s,
            lc.Evaluate(
                actor="w-wang",
                level=Satisfaction.SATISFIED,
                comment="",
                department_at_fault=None,
                working_days=1,
                due_date=date(2026, 9, 29),
            ),
        )
    message = str(exc.value)
    assert "is guiding" in message and "'evaluate' is not allowed" in message and "allowed: guide" in message


def test_commands_on_a_case_that_does_not_exist_are_refused_as_not_found():
    with pytest.raises(lc.Refused) as exc:
        lc.decide(
            lc.CaseState(case_id="NOPE-1"), lc.Handover(actor="a", actor_rank=CLERK, owner="b", reason="r")
        )
    assert exc.value.code == "not_found"


# --- 首問負責制: ownership -----------------------------------------------------------------------


def test_handover_is_an_explicit_event_with_the_new_owner_and_the_reason():
    s = opened("01")
    s, events = apply(s, lc.Handover(actor="w-zhang", actor_rank=CLERK, owner="w-li", reason="輪休"))
    assert types(events) == ["case.owner_assigned"]
    assert s.owner == "w-li"
    assert events[0].data.previous_owner == "w-zhang"


def test_only_the_owner_or_a_leader_can_hand_over():
    s = opened("01")
    with pytest.raises(lc.Refused, match="only the owner"):
        lc.decide(s, lc.Handover(actor="w-li", actor_rank=CLERK, owner="w-wang", reason="我來"))
    s, _ = apply(s, lc.Handover(actor="leader-gao", actor_rank=LEADER, owner="w-wang", reason="調整分工"))
    assert s.owner == "w-wang"


UPHELD = lc.ConcludeReview(actor="w-zhang", department="chengguan", outcome="upheld", note="省廳維持不能辦")


def test_only_the_owner_or_a_leader_above_them_can_close():
    s = opened("01")
    s, _ = apply(s, reply_command(s, "cannot"))
    s, _ = apply(s, UPHELD)  # the higher department's review, concluded by hand
    assert s.state == lc.ANSWERED
    with pytest.raises(lc.Refused, match="only the owner"):
        lc.decide(
            s,
            lc.Close(
                actor="w-li", actor_rank=CLERK, outcome="cannot", explanation="說明", today=OPENED.date()
            ),
        )
    s, events = apply(
        s,
        lc.Close(
            actor="leader-gao",
            actor_rank=LEADER,
            outcome="cannot",
            explanation="已說明依據",
            today=OPENED.date(),
        ),
    )
    assert types(events) == ["case.closed"] and s.state == lc.CLOSED


def test_closing_while_departments_still_owe_an_answer_is_refused_unless_withdrawn():
    s = opened("01")
    with pytest.raises(lc.Refused, match="still waits for chengguan"):
        lc.decide(
            s,
            lc.Close(
                actor="w-zhang", actor_rank=CLERK, outcome="resolved", explanation="x", today=OPENED.date()
            ),
        )
    s, _ = apply(
        s,
        lc.Close(
            actor="w-zhang",
            actor_rank=CLERK,
            outcome="withdrawn",
            explanation="申請人撤回",
            today=OPENED.date(),
        ),
    )
    assert s.state == lc.CLOSED


# --- department answers -------------------------------------------------------------------------


def test_cannot_answer_requests_review_by_the_higher_department_and_tells_the_applicant_within_3_days():
    s = opened("01")
    s, events = apply(s, reply_command(s, "cannot"))
    assert types(events) == ["coordination.replied", "case.review_requested", "case.resolved"]
    review = events[1].data
    assert review.higher_department == "省廳" and review.notify_by == date(2026, 10, 8)
    assert s.resolution["outcome"] == "cannot"


def test_not_ours_reroutes_to_the_named_department_and_counts_a_bounce():
    s = opened("10")  # construction waste filed at renshe
    s, events = apply(s, reply_command(s, "not_ours", belongs_to="chengguan"))
    assert types(events) == ["coordination.replied", "coordination.requested"]
    assert events[1].data.department == "chengguan" and events[1].data.rerouted_from == "renshe"
    assert s.bounces == 1 and s.state == lc.COORDINATING


def test_after_the_configured_bounces_the_duty_leader_rules():
    s = opened("10")
    s, _ = apply(s, reply_command(s, "not_ours", belongs_to="chengguan", max_bounces=2))
    s, events = apply(
        s, reply_command(s, "not_ours", department="chengguan", belongs_to="scjg", max_bounces=2)
    )
    assert types(events) == ["coordination.replied", "case.escalated"]
    assert events[1].data.audience == "duty_leader" and events[1].data.reason == "bounced"
    assert s.bounce_ruling_needed
    with pytest.raises(lc.Refused, match="duty leader"):
        lc.decide(s, lc.RuleBounce(actor="w-li", actor_rank=CLERK, department="chengguan"))
    s, events = apply(s, lc.RuleBounce(actor="leader-gao", actor_rank=LEADER, department="chengguan"))
    assert types(events) == ["case.bounce_ruled", "coordination.requested"]
    assert not s.bounce_ruling_needed


def test_a_reply_from_the_wrong_department_is_refused():
    s = opened("01")
    command = reply_command(s, "resolved")
    wrong = command.reply.model_copy(update={"department": "scjg"})
    with pytest.raises(lc.Refused, match="came from scjg"):
        lc.decide(
            s, lc.RecordReply(**{**{f: getattr(command, f) for f in command.__slots__}, "reply": wrong})
        )


def test_a_reply_for_an_unknown_request_id_is_refused():
    s = opened("01")
    with pytest.raises(lc.Refused) as exc:
        lc.decide(s, reply_command(s, "resolved", request_id="DD-20260928-0001-c9"))
    assert exc.value.code == "not_found"


def test_accepted_answer_stops_retrying_but_keeps_the_case_coordinating():
    s = opened("08")
    s, events = apply(s, reply_command(s, "accepted"))
    assert types(events) == ["coordination.replied"]
    c = next(iter(s.coordinations.values()))
    assert not c.awaiting_reply and c.open and s.state == lc.COORDINATING


def test_stall_escalates_to_the_section_head_of_that_department():
    s = opened("01")
    rid = next(iter(s.coordinations))
    s, events = apply(
        s,
        lc.RecordStall(
            request_id=rid, attempts=3, last_reason="timeout", chain={"section_head": "市容科科長"}
        ),
    )
    assert types(events) == ["coordination.stalled", "case.escalated"]
    assert events[1].data.role == "section_head" and events[1].data.target == "市容科科長"
    assert events[1].data.audience == "chengguan_section_head"


# --- deadlines: 1-3-5, warnings, overdue, escalation, extension ----------------------------------


# The 1-3-5 due dates themselves are pinned through the broker in test_deadlines.py.


def test_hard_case_opened_before_national_day_is_due_on_13_october():
    assert CAL.add_working_days(date(2026, 9, 30), 5) == date(2026, 10, 13)


def test_warning_comes_one_working_day_before_and_on_the_due_day_once_each():
    s = opened("02")  # hard, due Sat 10 Oct (make-up working day)
    assert lc.decide(s, tick(s, date(2026, 10, 8))) == []
    s, events = apply(s, tick(s, date(2026, 10, 9)))
    assert types(events) == ["case.deadline_warned"] and events[0].data.working_days_left == 1
    assert lc.decide(s, tick(s, date(2026, 10, 9))) == []
    s, events = apply(s, tick(s, date(2026, 10, 10)))
    assert types(events) == ["case.deadline_warned"] and events[0].data.working_days_left == 0


def test_at_the_deadline_the_case_is_overdue_and_climbs_one_level_per_working_day():
    s = opened("06")  # chengguan, hard, due Saturday 10 Oct (a make-up working day)
    sunday = datetime(2026, 10, 11, 9, tzinfo=CHINA)
    s, events = apply(s, tick(s, date(2026, 10, 11), sunday), at=sunday)
    assert types(events) == ["case.overdue"]  # a day off: the ladder waits for Monday
    monday = datetime(2026, 10, 12, 9, tzinfo=CHINA)
    s, events = apply(s, tick(s, date(2026, 10, 12), monday), at=monday)
    assert [(e.data.role, e.data.reason) for e in events] == [("section_head", "overdue")]
    # 09:00-17:00 is one working day of office hours: 16:59 is a minute short
    short = datetime(2026, 10, 12, 16, 59, tzinfo=CHINA)
    assert lc.decide(s, tick(s, date(2026, 10, 12), short)) == []
    evening = datetime(2026, 10, 12, 17, tzinfo=CHINA)
    s, events = apply(s, tick(s, date(2026, 10, 12), evening), at=evening)
    assert [e.data.role for e in events] == ["leader_in_charge"]
    night = datetime(2026, 10, 13, 8, tzinfo=CHINA)  # no office hours since 17:00
    assert lc.decide(s, tick(s, date(2026, 10, 13), night)) == []
    tuesday = datetime(2026, 10, 13, 17, tzinfo=CHINA)
    s, events = apply(s, tick(s, date(2026, 10, 13), tuesday), at=tuesday)
    assert [e.data.role for e in events] == ["director"]
    later = datetime(2026, 10, 20, 17, tzinfo=CHINA)
    assert lc.decide(s, tick(s, date(2026, 10, 20), later)) == []  # the director is the top


def test_extension_requested_before_expiry_and_approved_by_a_leader_moves_the_due_date():
    s = opened("08")
    new_due = CAL.add_working_days(s.due_date, 3)
    s, events = apply(
        s,
        lc.RequestExtension(
            actor="w-zhang",
            working_days=3,
            reason="等回函",
            today=date(2026, 10, 9),
            proposed_due_date=new_due,
        ),
    )
    assert types(events) == ["case.extension_requested"]
    with pytest.raises(lc.Refused, match="approved by a leader"):
        lc.decide(s, lc.ApproveExtension(actor="w-zhang", actor_rank=CLERK))
    s, events = apply(s, lc.ApproveExtension(actor="leader-gao", actor_rank=LEADER))
    assert types(events) == ["case.extended"]
    assert s.due_date == date(2026, 10, 14) and s.extension_days == 3


def test_extension_after_expiry_is_refused():
    s = opened("08")
    with pytest.raises(lc.Refused, match="before expiry"):
        lc.decide(
            s,
            lc.RequestExtension(
                actor="w-zhang",
                working_days=2,
                reason="晚了",
                today=date(2026, 10, 12),
                proposed_due_date=date(2026, 10, 14),
            ),
        )


def test_extensions_may_not_exceed_ten_working_days_in_total():
    s = opened("08")
    s, _ = apply(
        s,
        lc.RequestExtension(
            actor="w-zhang",
            working_days=8,
            reason="省裡研究",
            today=date(2026, 10, 9),
            proposed_due_date=date(2026, 10, 22),
        ),
    )
    s, _ = apply(s, lc.ApproveExtension(actor="leader-gao", actor_rank=LEADER))
    with pytest.raises(lc.Refused, match="would total 11 working days"):
        lc.decide(
            s,
            lc.RequestExtension(
                actor="w-zhang",
                working_days=3,
                reason="再延",
                today=date(2026, 10, 12),
                proposed_due_date=date(2026, 10, 27),
            ),
        )


def test_closing_after_the_due_date_is_recorded_as_late():
    s = opened("01")
    s, _ = apply(s, reply_command(s, "cannot"))
    s, _ = apply(s, UPHELD)  # the higher department's review, concluded by hand
    s, events = apply(
        s,
        lc.Close(
            actor="w-zhang", actor_rank=CLERK, outcome="cannot", explanation="說明", today=date(2026, 10, 9)
        ),
    )
    assert events[0].data.on_time is False


# --- closing, evaluation, reopening --------------------------------------------------------------


def test_bad_evaluation_attributed_to_the_department_reopens_the_case():
    s = opened("07")
    s, _ = apply(s, reply_command(s, "resolved"))
    s, _ = apply(
        s,
        lc.Close(actor="w-li", actor_rank=CLERK, outcome="resolved", explanation="已辦", today=OPENED.date()),
    )
    s, events = apply(
        s,
        lc.Evaluate(
            actor="w-li",
            level=Satisfaction.DISSATISFIED,
            comment="表述不對",
            department_at_fault="scjg",
            working_days=5,
            due_date=date(2026, 10, 10),
        ),
    )
    assert types(events) == ["case.evaluated", "case.reopened", "coordination.requested"]
    assert s.state == lc.COORDINATING and s.round == 2
    assert list(s.coordinations)[-1] == "DD-20260928-0001-c2"


def test_bad_evaluation_not_attributed_to_a_department_ends_the_case():
    s = opened("07")
    s, _ = apply(s, reply_command(s, "resolved"))
    s, _ = apply(
        s,
        lc.Close(actor="w-li", actor_rank=CLERK, outcome="resolved", explanation="已辦", today=OPENED.date()),
    )
    s, events = apply(
        s,
        lc.Evaluate(
            actor="w-li",
            level=Satisfaction.DISSATISFIED,
            comment="排隊太久",
            department_at_fault=None,
            working_days=5,
            due_date=date(2026, 10, 10),
        ),
    )
    assert types(events) == ["case.evaluated"] and s.state == lc.EVALUATED


def test_fault_attributed_to_a_department_never_asked_is_refused():
    s = opened("07")
    s, _ = apply(s, reply_command(s, "resolved"))
    s, _ = apply(
        s,
        lc.Close(actor="w-li", actor_rank=CLERK, outcome="resolved", explanation="已辦", today=OPENED.date()),
    )
    with pytest.raises(lc.Refused, match="was not asked"):
        lc.decide(
            s,
            lc.Evaluate(
                actor="w-li",
                level=Satisfaction.DISSATISFIED,
                comment="x",
                department_at_fault="renshe",
                working_days=5,
                due_date=date(2026, 10, 10),
            ),
        )


def test_only_a_leader_can_order_a_reopening():
    s = opened("07")
    s, _ = apply(s, reply_command(s, "resolved"))
    s, _ = apply(
        s,
        lc.Close(actor="w-li", actor_rank=CLERK, outcome="resolved", explanation="已辦", today=OPENED.date()),
    )
    with pytest.raises(lc.Refused, match="only a leader"):
        lc.decide(
            s,
            lc.Reopen(
                actor="w-li", actor_rank=CLERK, reason="重辦", working_days=5, due_date=date(2026, 10, 10)
            ),
        )
    s, _ = apply(
        s,
        lc.Reopen(
            actor="leader-gao",
            actor_rank=LEADER,
            reason="督查發現問題",
            working_days=5,
            due_date=date(2026, 10, 10),
        ),
    )
    assert s.state == lc.COORDINATING


# --- 不給辦 accountability ------------------------------------------------------------------------


def accountability() -> AccountabilityRecorded:
    return AccountabilityRecorded(
        staff="renshe-clerk-07",
        section="養老保險科",
        leader_in_charge="分管副局長",
        finding="推諉",
        measures=["interview"],
        fault_tolerance=False,
    )


def test_refused_case_records_who_refused_and_whether_fault_tolerance_applies():
    s = opened("03")
    s, events = apply(
        s, lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=accountability())
    )
    assert types(events) == ["accountability.recorded"]
    assert (
        s.accountability[0]["staff"] == "renshe-clerk-07" and s.accountability[0]["fault_tolerance"] is False
    )


def test_accountability_is_only_for_refused_cases():
    s = opened("01")
    with pytest.raises(lc.Refused, match="refused"):
        lc.decide(s, lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=accountability()))


def test_direct_escalation_lets_the_window_address_any_level():
    s = opened("01")
    s, events = apply(
        s,
        lc.Escalate(
            actor="leader-gao",
            department="chengguan",
            level=3,
            note="請局長過問",
            chain={"director": "城管局局長"},
        ),
    )
    assert events[0].data.role == "director" and events[0].data.reason == "direct"
    assert events[0].data.target == "城管局局長"


def test_the_lifecycle_imports_only_the_standard_library_and_the_schemas():
    import ast
    import sys
    from pathlib import Path

    for module in sorted((Path(__file__).resolve().parents[1] / "core" / "lifecycle").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                assert top in sys.stdlib_module_names or name.startswith("unstuck.schemas"), (
                    module.name,
                    name,
                )
                assert top != "logging", module.name


def test_addressing_a_lower_level_directly_never_lowers_the_level_reached():
    """After 局長 (director, level 3) a clerk writes to the section head (level 1) directly: the event
    is recorded, the chain's level stays at 3, with the time it was reached."""
    s = opened("01")
    up = datetime(2026, 9, 29, 10, 0, tzinfo=CHINA)
    down = datetime(2026, 9, 30, 10, 0, tzinfo=CHINA)
    s, _ = apply(
        s,
        lc.Escalate(actor="leader-gao", department="chengguan", level=3, note="請局長過問", chain={}),
        at=up,
    )
    s, events = apply(
        s,
        lc.Escalate(actor="w-zhang", department="chengguan", level=1, note="請科長跟進", chain={}),
        at=down,
    )
    assert [(e.type, e.data.level, e.data.reason) for e in events] == [("case.escalated", 1, "direct")]
    assert s.escalations["chengguan"] == (3, up)
    again = datetime(2026, 10, 8, 10, 0, tzinfo=CHINA)
    s, _ = apply(
        s,
        lc.Escalate(actor="leader-gao", department="chengguan", level=3, note="再請局長過問", chain={}),
        at=again,
    )
    assert s.escalations["chengguan"] == (3, again)  # the same level again: reached anew, now

"""The window's rules case by case on the pure lifecycle, with every expected event and state written out
by hand: each command's events (types in order, actors, payloads), each refusal (message, field, code),
each branch of ``decide``, ``evolve`` and the reply rules, and the state's serialisation.

Dates follow the mainland calendar: Monday 28 September 2026 is the opening day; 1-7 October is the
National Day holiday; Saturday 10 October is a make-up working day. So from the 28th, 1 working day is
Tue 29 Sep, 3 are Thu 8 Oct, 5 are Sat 10 Oct; and 3 more from Sat 10 Oct are Wed 14 Oct.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import date, datetime

import pytest

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.clock import CHINA
from unstuck.schemas import CaseIntake, Category, CoordinationReply
from unstuck.schemas import events as ev
from unstuck.schemas.common import Satisfaction

CID = "DD-20260928-0001"
C1, C2, C3, C4 = f"{CID}-c1", f"{CID}-c2", f"{CID}-c3", f"{CID}-c4"
T0 = datetime(2026, 9, 28, 9, 0, tzinfo=CHINA)  # Monday 28 September 2026, the case is opened
DESC = "申請在二樓外立面設置門頭招牌"
Q_CANNOT = "[cannot] 二樓門頭招牌設置: 申請在二樓外立面設置門頭招牌"
Q_HARD = "[hard] 二樓門頭招牌設置: 申請在二樓外立面設置門頭招牌"
Q_REFUSED = "[refused] 二樓門頭招牌設置: 申請在二樓外立面設置門頭招牌"
KNOWN = frozenset({"renshe", "scjg", "chengguan"})
CLERK, SECTION_HEAD, LEADER = 0, 1, 2
CHAINS = {
    "chengguan": {"section_head": "市容科科長", "leader_in_charge": "分管副局長", "director": "城管局局長"},
    "window": {"section_head": "窗口科長"},
}
SEP29, SEP30 = date(2026, 9, 29), date(2026, 9, 30)
OCT8, OCT9, OCT10, OCT11, OCT12 = (date(2026, 10, d) for d in (8, 9, 10, 11, 12))
OCT13, OCT14 = date(2026, 10, 13), date(2026, 10, 14)


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CHINA)


def meta(seq: int, when: datetime = T0) -> lc.EventMeta:
    return lc.EventMeta(seq=seq, at=when, hash=f"h{seq}")


def step(state: lc.CaseState, command: object, when: datetime = T0) -> tuple[lc.CaseState, list[lc.NewEvent]]:
    """decide, then evolve each event as the broker stores it (next seq, hash h<seq>, time ``when``)."""
    events = lc.decide(state, command)
    for e in events:
        state = lc.evolve(state, e.type, e.data, replace(meta(state.seq + 1, when), actor=e.actor))
    return state, events


def refused(state: lc.CaseState, command: object, message: str, field: str | None, code: str) -> None:
    with pytest.raises(lc.Refused) as exc:
        lc.decide(state, command)
    assert (str(exc.value), exc.value.field, exc.value.code) == (message, field, code)


def intake(category: str | None = None, **changes: object) -> CaseIntake:
    """Sample 01 (a shop sign at chengguan, owner w-zhang) with a short description."""
    return CaseIntake.model_validate(sample("01", **{"description": DESC, "category": category, **changes}))


def intake_json(category: str | None) -> dict[str, object]:
    return {
        "channel": "window",
        "applicant": {
            "kind": "enterprise",
            "name": "丹東市振興區味道小廚餐飲店",
            "id_number": "92210603MA0KC8QX2K",
            "phone": "13904151234",
            "contact": "王麗",
            "email": None,
        },
        "matter": "shop_sign",
        "matter_title": "二樓門頭招牌設置",
        "facts": {"floor": 2, "building": "臨街商住樓"},
        "window": "城管局戶外廣告審批窗口",
        "department": "chengguan",
        "description": DESC,
        "category": category,
        "owner": "w-zhang",
        "client_ref": None,
    }


DUE = {
    "guided": (1, SEP29),
    "refused": (1, SEP29),
    "cannot": (3, OCT8),
    "hard": (5, OCT10),
}


def cls(
    category: str,
    departments: tuple[str, ...] = ("chengguan",),
    duty_leader: str | None = "leader-gao",
    reason: str = "窗口分類",
) -> lc.Classification:
    days, due = DUE[category]
    return lc.Classification(
        category=Category(category),
        reason=reason,
        working_days=days,
        due_date=due,
        departments=departments,
        duty_leader=duty_leader,
    )


def opened(category: str | None = "cannot", departments: tuple[str, ...] = ("chengguan",)) -> lc.CaseState:
    """A case opened at T0 (seq 1..n at T0), classified at once when a category is given."""
    c = None if category is None else cls(category, departments)
    state, _ = step(lc.CaseState(case_id=CID), lc.Open(intake=intake(category), classification=c))
    return state


def answer(
    rid: str,
    dept: str,
    outcome: str,
    *,
    attempt: int = 1,
    recorded_by: str | None = None,
    max_bounces: int = 2,
    message: str = "答覆",
    **fields: object,
) -> lc.RecordReply:
    return lc.RecordReply(
        reply=CoordinationReply(
            request_id=rid, department=dept, outcome=outcome, message=message, handler="科室", **fields
        ),
        attempt=attempt,
        today=SEP29,
        review_notify_by=OCT9,
        review_due_date=OCT12,
        higher_department="省住建廳",
        max_bounces=max_bounces,
        known_departments=KNOWN,
        recorded_by=recorded_by,
    )


def tick(
    today: date,
    left: int,
    when: datetime | None = None,
    warn_at: tuple[int, ...] = (1, 0),
    hours: float = 8,
    working_day: bool = True,
    worked: float = 0.0,
    days_left: dict[date, int] | None = None,
) -> lc.CheckDeadlines:
    """``worked``: the working hours since every level reached (the shell counts them on the calendar)."""
    return lc.CheckDeadlines(
        today=today,
        at=when or datetime(today.year, today.month, today.day, 9, tzinfo=CHINA),
        working_days_left=left,
        warn_at=warn_at,
        escalation_hours=hours,
        chains=CHAINS,
        working_day=working_day,
        working_hours_since=dict.fromkeys([*KNOWN, "window"], worked),
        days_left=days_left or {},
    )


def coordination(rid: str, dept: str, question: str = Q_CANNOT, deadline: date = OCT8, **kw: object):
    return lc.Coordination(
        request_id=rid,
        department=dept,
        round=kw.pop("round", 1),
        question=question,
        deadline=deadline,
        requested_at=kw.pop("requested_at", T0),
        **kw,
    )


def requested(
    rid: str, dept: str, question: str = Q_CANNOT, deadline: date = OCT8, round_: int = 1, rerouted_from=None
) -> lc.NewEvent:
    return lc.NewEvent(
        "system",
        ev.CoordinationRequested(
            request_id=rid,
            department=dept,
            question=question,
            deadline=deadline,
            rerouted_from=rerouted_from,
            round=round_,
        ),
    )


def escalated(
    dept: str, level: int, role: str, target: str, reason: str, audience: str, note: str = "", actor="system"
) -> lc.NewEvent:
    return lc.NewEvent(
        actor,
        ev.CaseEscalated(
            department=dept,
            level=level,
            role=role,
            target=target,
            reason=reason,
            audience=audience,
            note=note,
        ),
    )


def replied(
    rid: str, dept: str, outcome: str, actor: str | None = None, attempt: int = 1, recorded_by=None, **kw
) -> lc.NewEvent:
    return lc.NewEvent(
        actor or dept,
        ev.CoordinationReplied(
            request_id=rid,
            department=dept,
            outcome=outcome,
            message=kw.pop("message", "答覆"),
            handler="科室",
            attempt=attempt,
            recorded_by=recorded_by,
            **kw,
        ),
    )


def resolved(outcome: str, summary: str, departments: list[str]) -> lc.NewEvent:
    return lc.NewEvent("system", ev.CaseResolved(outcome=outcome, summary=summary, departments=departments))


# --- the state's helpers and its serialisation --------------------------------------------------------


def test_refused_carries_its_message_field_and_code():
    plain = lc.Refused("不行")
    assert (str(plain), plain.field, plain.code) == ("不行", None, "not_allowed")
    named = lc.Refused("不行", field="actor", code="conflict")
    assert (str(named), named.field, named.code) == ("不行", "actor", "conflict")


def test_a_case_that_was_never_opened_does_not_exist_and_serialises_empty():
    s = lc.CaseState(case_id=CID)
    assert s.exists is False
    assert s.departments == [] and s.current() == []
    assert s.to_dict() == {
        "case_id": CID,
        "seq": 0,
        "head_hash": "",
        "state": "",
        "opened_at": None,
        "category": None,
        "mode": None,
        "owner": None,
        "duty_leader": None,
        "working_days": 0,
        "due_date": None,
        "due_date_provisional": False,
        "extension_days": 0,
        "pending_extension": None,
        "overdue": False,
        "escalations": {},
        "round": 1,
        "bounces": 0,
        "bounce_ruling_needed": False,
        "coordinations": [],
        "resolution": None,
        "closing": None,
        "evaluation": None,
        "follow_up": None,
        "rating_invited": False,
        "accountability": [],
        "reviews": [],
        "intake": {},
    }


def test_a_case_exists_from_its_first_event():
    assert lc.CaseState(case_id=CID, seq=1).exists is True


def full_state() -> lc.CaseState:
    return lc.CaseState(
        case_id=CID,
        seq=9,
        head_hash="h9",
        state=lc.CLOSED,
        opened_at=T0,
        last_event_at=at(10, 9, 15),
        intake={"matter": "shop_sign", "owner": "w-zhang"},
        category="cannot",
        mode="coordinate",
        owner="w-li",
        duty_leader="leader-gao",
        working_days=3,
        due_date=OCT13,
        due_date_provisional=True,
        due_basis=(T0, 5),
        extension_days=2,
        pending_extension={"working_days": 1, "reason": "等回函", "proposed_due_date": OCT14},
        overdue=True,
        warned=frozenset({1}),
        escalations={"chengguan": (2, at(10, 9)), "window": (1, at(10, 9, 10))},
        coordinations={
            C1: coordination(
                C1,
                "chengguan",
                "問一",
                OCT8,
                status="answered",
                attempts=2,
                outcome="cannot",
                message="不符合規定",
                legal_basis="條例第十條",
                rerouted_from="renshe",
                last_reason="timeout",
            ),
            C2: coordination(C2, "scjg", "問二", OCT13, round=2),
            C3: coordination(C3, "chengguan", "問三", OCT13, round=2, status="stalled", attempts=3),
        },
        round=2,
        bounces=1,
        bounce_ruling_needed=True,
        ruled_department="scjg",
        resolution={"outcome": "cannot"},
        closing={"outcome": "cannot", "on_time": False},
        evaluation={"rating": "bad"},
        accountability=({"staff": "clerk-7"}, {"staff": "clerk-8"}),
        reviews=({"department": "chengguan"},),
    )


def test_the_state_serialises_every_field_a_reader_needs():
    assert full_state().to_dict() == {
        "case_id": CID,
        "seq": 9,
        "head_hash": "h9",
        "state": "closed",
        "opened_at": "2026-09-28T09:00:00+08:00",
        "category": "cannot",
        "mode": "coordinate",
        "owner": "w-li",
        "duty_leader": "leader-gao",
        "working_days": 3,
        "due_date": "2026-10-13",
        "due_date_provisional": True,
        "extension_days": 2,
        "pending_extension": {"working_days": 1, "reason": "等回函", "proposed_due_date": OCT14},
        "overdue": True,
        "escalations": {
            "chengguan": {"level": 2, "at": "2026-10-09T09:00:00+08:00"},
            "window": {"level": 1, "at": "2026-10-09T10:00:00+08:00"},
        },
        "round": 2,
        "bounces": 1,
        "bounce_ruling_needed": True,
        "coordinations": [
            {
                "request_id": C1,
                "department": "chengguan",
                "round": 1,
                "status": "answered",
                "attempts": 2,
                "outcome": "cannot",
                "message": "不符合規定",
                "legal_basis": "條例第十條",
                "rerouted_from": "renshe",
                "review_of": None,
                "deadline": "2026-10-08",
            },
            {
                "request_id": C2,
                "department": "scjg",
                "round": 2,
                "status": "pending",
                "attempts": 0,
                "outcome": None,
                "message": None,
                "legal_basis": None,
                "rerouted_from": None,
                "review_of": None,
                "deadline": "2026-10-13",
            },
            {
                "request_id": C3,
                "department": "chengguan",
                "round": 2,
                "status": "stalled",
                "attempts": 3,
                "outcome": None,
                "message": None,
                "legal_basis": None,
                "rerouted_from": None,
                "review_of": None,
                "deadline": "2026-10-13",
            },
        ],
        "resolution": {"outcome": "cannot"},
        "closing": {"outcome": "cannot", "on_time": False},
        "evaluation": {"rating": "bad"},
        "follow_up": None,
        "rating_invited": False,
        "accountability": [{"staff": "clerk-7"}, {"staff": "clerk-8"}],
        "reviews": [{"department": "chengguan"}],
        "intake": {"matter": "shop_sign", "owner": "w-zhang"},
    }


def test_departments_are_listed_once_in_the_order_first_asked_and_current_is_this_round():
    s = full_state()
    assert s.departments == ["chengguan", "scjg"]
    assert [c.request_id for c in s.current()] == [C2, C3]


@pytest.mark.parametrize(
    ("status", "outcome", "is_open", "awaiting"),
    [
        ("pending", None, True, True),
        ("stalled", None, True, True),
        ("answered", "accepted", True, False),
        ("answered", "resolved", False, False),
        ("answered", "cannot", False, False),
        ("bounced", "not_ours", False, False),
        ("bounced", "accepted", False, False),
    ],
)
def test_a_coordination_is_open_until_a_final_answer_and_awaited_until_any_answer(
    status, outcome, is_open, awaiting
):
    c = coordination(C1, "chengguan", status=status, outcome=outcome)
    assert (c.open, c.awaiting_reply) == (is_open, awaiting)


# --- commands a state does not allow ------------------------------------------------------------------

# the watcher's own verb (tick) is allowed in every open state but never offered to staff
ALL_INTAKE = "classify, handover, escalate"
ALL_GUIDING = "guide, classify, handover, extend, approve_extension, escalate"
ALL_COORDINATING = (
    "classify, handover, extend, approve_extension, record, escalate, rule_bounce, accountability, close, "
    "review_notice, review_conclude, follow_up"
)
ALL_ANSWERED = (
    "classify, handover, extend, approve_extension, record, close, escalate, accountability, review_notice, "
    "review_conclude, follow_up"
)
ALL_CLOSED = "evaluate, reopen, accountability, record, review_notice, review_conclude, follow_up"
ALL_EVALUATED = "reopen, accountability, record, review_notice, review_conclude, follow_up"
GUIDE = lc.Guide(actor="w-zhang", actor_rank=CLERK, window="窗口", instructions="說明", today=SEP29)


@pytest.mark.parametrize(
    ("state", "command", "name", "allowed"),
    [
        (lc.INTAKE, GUIDE, "guide", ALL_INTAKE),
        (
            lc.GUIDING,
            lc.Close(actor="w-zhang", actor_rank=CLERK, outcome="guided", explanation="說明", today=SEP29),
            "close",
            ALL_GUIDING,
        ),
        (
            lc.GUIDING,
            lc.RecordAttemptFailure(request_id=C1, attempt=1, reason="timeout"),
            "record",
            ALL_GUIDING,
        ),
        (lc.COORDINATING, GUIDE, "guide", ALL_COORDINATING),
        (
            lc.ANSWERED,
            lc.RuleBounce(actor="leader-gao", actor_rank=LEADER, department="scjg"),
            "rule_bounce",
            ALL_ANSWERED,
        ),
        (
            lc.EVALUATED,
            lc.Evaluate(
                actor="w-zhang",
                level=Satisfaction.SATISFIED,
                comment="",
                department_at_fault=None,
                working_days=1,
                due_date=SEP29,
            ),
            "evaluate",
            ALL_EVALUATED,
        ),
        (lc.EVALUATED, lc.Classify(actor="w-zhang", classification=cls("hard")), "classify", ALL_EVALUATED),
        (
            lc.EVALUATED,
            lc.Handover(actor="w-zhang", actor_rank=CLERK, owner="w-li", reason="輪休"),
            "handover",
            ALL_EVALUATED,
        ),
        (
            lc.EVALUATED,
            lc.RequestExtension(
                actor="w-zhang", working_days=1, reason="r", today=SEP29, proposed_due_date=SEP30
            ),
            "extend",
            ALL_EVALUATED,
        ),
        (
            lc.EVALUATED,
            lc.ApproveExtension(actor="leader-gao", actor_rank=LEADER),
            "approve_extension",
            ALL_EVALUATED,
        ),
        (
            lc.EVALUATED,
            lc.Escalate(actor="w-zhang", department="scjg", level=1, note="", chain={}),
            "escalate",
            ALL_EVALUATED,
        ),
        (
            lc.EVALUATED,
            lc.Close(actor="w-zhang", actor_rank=CLERK, outcome="resolved", explanation="x", today=SEP29),
            "close",
            ALL_EVALUATED,
        ),
        (lc.EVALUATED, GUIDE, "guide", ALL_EVALUATED),
        (
            lc.EVALUATED,
            lc.RuleBounce(actor="leader-gao", actor_rank=LEADER, department="scjg"),
            "rule_bounce",
            ALL_EVALUATED,
        ),
    ],
)
def test_a_command_the_state_does_not_allow_is_refused_naming_the_state_and_what_is_allowed(
    state, command, name, allowed
):
    s = lc.CaseState(case_id=CID, seq=4, state=state)
    message = f"case {CID} is {state}: '{name}' is not allowed now; allowed: {allowed}"
    refused(s, command, message, None, "not_allowed")


def test_a_refusal_says_the_same_in_chinese_naming_the_state_and_what_staff_may_do():
    s = lc.CaseState(case_id=CID, seq=4, state=lc.INTAKE)
    with pytest.raises(lc.Refused) as caught:
        lc.decide(s, GUIDE)
    assert caught.value.zh == f"案件 {CID} 目前「受理待分類」，不能引導辦理；現在可以：分類、移交、督辦"
    s = lc.CaseState(case_id=CID, seq=4, state=lc.EVALUATED)
    with pytest.raises(lc.Refused) as caught:
        lc.decide(s, GUIDE)
    assert caught.value.zh == (
        f"案件 {CID} 目前「已評價」，不能引導辦理；現在可以：重辦、問責記錄、登記部門答覆、登記複核告知、登記複核結論、登記回訪整改"
    )


def test_a_command_on_a_case_that_was_never_opened_is_refused_as_not_found():
    refused(
        lc.CaseState(case_id="DD-20260928-0099"),
        lc.Handover(actor="w-zhang", actor_rank=CLERK, owner="w-li", reason="輪休"),
        "case DD-20260928-0099 does not exist",
        "case_id",
        "not_found",
    )


def test_opening_a_case_that_is_already_open_is_a_conflict():
    s = opened("cannot")
    refused(
        s,
        lc.Open(intake=intake("cannot")),
        f"case {CID} is already open (state coordinating)",
        None,
        "conflict",
    )


# --- opening and classification -----------------------------------------------------------------------


def test_a_case_opened_without_a_category_waits_in_intake_owned_by_whoever_accepted_it():
    s, events = step(lc.CaseState(case_id=CID), lc.Open(intake=intake(None)))
    assert [(e.type, e.actor) for e in events] == [("case.opened", "w-zhang")]
    assert events[0].data.model_dump(mode="json") == intake_json(None)
    assert s == lc.CaseState(
        case_id=CID,
        seq=1,
        head_hash="h1",
        state=lc.INTAKE,
        opened_at=T0,
        last_event_at=T0,
        intake=intake_json(None),
        owner="w-zhang",
    )


def test_a_case_opened_with_a_category_is_classified_and_its_department_asked_at_once():
    s, events = step(
        lc.CaseState(case_id=CID), lc.Open(intake=intake("cannot"), classification=cls("cannot"))
    )
    assert [e.type for e in events] == ["case.opened", "case.classified", "coordination.requested"]
    assert events[0].actor == "w-zhang" and events[0].data.model_dump(mode="json") == intake_json("cannot")
    assert events[1:] == [
        lc.NewEvent(
            "w-zhang",
            ev.CaseClassified(
                category=Category.CANNOT,
                reason="窗口分類",
                mode="coordinate",
                working_days=3,
                due_date=OCT8,
                duty_leader="leader-gao",
                departments=["chengguan"],
            ),
        ),
        requested(C1, "chengguan", Q_CANNOT, OCT8),
    ]
    assert s == lc.CaseState(
        case_id=CID,
        seq=3,
        head_hash="h3",
        state=lc.COORDINATING,
        opened_at=T0,
        last_event_at=T0,
        intake=intake_json("cannot"),
        category="cannot",
        mode="coordinate",
        owner="w-zhang",
        duty_leader="leader-gao",
        working_days=3,
        due_date=OCT8,
        due_basis=(T0, 3),
        coordinations={C1: coordination(C1, "chengguan", Q_CANNOT, OCT8)},
    )


def test_every_department_of_the_classification_is_asked_with_its_own_request_id():
    s, events = step(
        lc.CaseState(case_id=CID),
        lc.Open(intake=intake("hard"), classification=cls("hard", ("scjg", "chengguan", "renshe"))),
    )
    assert events[2:] == [
        requested(C1, "scjg", Q_HARD, OCT10),
        requested(C2, "chengguan", Q_HARD, OCT10),
        requested(C3, "renshe", Q_HARD, OCT10),
    ]
    assert s.coordinations == {
        C1: coordination(C1, "scjg", Q_HARD, OCT10),
        C2: coordination(C2, "chengguan", Q_HARD, OCT10),
        C3: coordination(C3, "renshe", Q_HARD, OCT10),
    }
    assert s.departments == ["scjg", "chengguan", "renshe"]


def test_a_guided_case_asks_no_department_and_has_no_duty_leader_even_when_the_shell_names_them():
    s, events = step(
        lc.CaseState(case_id=CID),
        lc.Open(intake=intake("guided"), classification=cls("guided", ("scjg",), duty_leader="leader-gao")),
    )
    assert events[1:] == [
        lc.NewEvent(
            "w-zhang",
            ev.CaseClassified(
                category=Category.GUIDED,
                reason="窗口分類",
                mode="guide",
                working_days=1,
                due_date=SEP29,
                duty_leader=None,
                departments=[],
            ),
        )
    ]
    assert s == lc.CaseState(
        case_id=CID,
        seq=2,
        head_hash="h2",
        state=lc.GUIDING,
        opened_at=T0,
        last_event_at=T0,
        intake=intake_json("guided"),
        category="guided",
        mode="guide",
        owner="w-zhang",
        working_days=1,
        due_date=SEP29,
        due_basis=(T0, 1),
    )


def test_a_case_to_coordinate_with_no_department_is_refused():
    refused(
        lc.CaseState(case_id=CID),
        lc.Open(intake=intake("refused"), classification=cls("refused", ())),
        "a case that is not guided needs at least one department to coordinate with",
        "departments",
        "invalid_request",
    )


def test_the_question_to_a_department_is_cut_at_4000_characters():
    long_text = "說" * 4000
    s, events = step(
        lc.CaseState(case_id=CID),
        lc.Open(intake=intake("hard", description=long_text), classification=cls("hard")),
    )
    # "[hard] " (7) + "二樓門頭招牌設置" (8) + ": " (2) = 17 characters before the description
    expected = "[hard] 二樓門頭招牌設置: " + "說" * 3983
    assert events[2].data.question == expected and len(expected) == 4000
    assert s.coordinations[C1].question == expected


def test_the_question_names_the_category_even_when_the_intake_lacks_title_and_description():
    assert lc._question({}, "hard") == "[hard] : "
    assert lc._question({"matter_title": "招牌"}, "") == "[] 招牌: "
    assert lc._question({"description": "說明"}, "cannot") == "[cannot] : 說明"


def test_classifying_a_case_in_intake_asks_its_departments_as_the_classifier():
    s = opened(None)
    s, events = step(
        s, lc.Classify(actor="w-li", classification=cls("hard", ("scjg", "chengguan"))), at(9, 28, 10)
    )
    assert events == [
        lc.NewEvent(
            "w-li",
            ev.CaseClassified(
                category=Category.HARD,
                reason="窗口分類",
                mode="coordinate",
                working_days=5,
                due_date=OCT10,
                duty_leader="leader-gao",
                departments=["scjg", "chengguan"],
            ),
        ),
        requested(C1, "scjg", Q_HARD, OCT10),
        requested(C2, "chengguan", Q_HARD, OCT10),
    ]
    assert s == lc.CaseState(
        case_id=CID,
        seq=4,
        head_hash="h4",
        state=lc.COORDINATING,
        opened_at=T0,
        last_event_at=at(9, 28, 10),
        intake=intake_json(None),
        category="hard",
        mode="coordinate",
        owner="w-zhang",
        duty_leader="leader-gao",
        working_days=5,
        due_date=OCT10,
        due_basis=(T0, 5),
        coordinations={
            C1: coordination(C1, "scjg", Q_HARD, OCT10, requested_at=at(9, 28, 10)),
            C2: coordination(C2, "chengguan", Q_HARD, OCT10, requested_at=at(9, 28, 10)),
        },
    )


def test_classifying_a_case_in_intake_as_guided_sends_it_to_guiding():
    s, events = step(opened(None), lc.Classify(actor="w-li", classification=cls("guided", ("scjg",))))
    assert [e.type for e in events] == ["case.classified"]
    assert (s.state, s.category, s.mode, s.duty_leader, s.coordinations) == (
        lc.GUIDING,
        "guided",
        "guide",
        None,
        {},
    )


def test_classifying_in_intake_without_a_department_is_refused():
    refused(
        opened(None),
        lc.Classify(actor="w-li", classification=cls("cannot", ())),
        "a case that is not guided needs at least one department to coordinate with",
        "departments",
        "invalid_request",
    )


def test_reclassifying_to_the_same_category_is_refused():
    refused(
        opened("cannot"),
        lc.Classify(actor="w-li", classification=cls("cannot")),
        f"case {CID} is already classified cannot",
        "category",
        "not_allowed",
    )


def test_reclassifying_moves_the_deadline_and_clears_overdue_and_warnings_but_asks_no_one_new():
    s = opened("cannot")  # due Thu 8 Oct
    s, _ = step(s, tick(OCT8, 0), at(10, 8))  # a warning (point 1, caught up on the due day)
    s, _ = step(s, tick(OCT9, 0), at(10, 9))  # overdue, chengguan escalated
    assert s.overdue is True and s.warned == frozenset({1})
    before = s
    s, events = step(
        s, lc.Classify(actor="w-li", classification=cls("hard", ("scjg",), reason="政策空白")), at(10, 9, 10)
    )
    assert events == [
        lc.NewEvent(
            "w-li",
            ev.CaseReclassified(
                previous=Category.CANNOT,
                category=Category.HARD,
                reason="政策空白",
                working_days=5,
                due_date=OCT10,
            ),
        )
    ]
    assert s == lc.CaseState(
        case_id=CID,
        seq=before.seq + 1,
        head_hash=f"h{before.seq + 1}",
        state=lc.COORDINATING,
        opened_at=T0,
        last_event_at=at(10, 9, 10),
        intake=intake_json("cannot"),
        category="hard",
        mode="coordinate",
        owner="w-zhang",
        duty_leader="leader-gao",
        working_days=5,
        due_date=OCT10,
        due_basis=(T0, 5),
        overdue=False,
        warned=frozenset(),
        escalations={"chengguan": (1, at(10, 9))},
        coordinations={C1: coordination(C1, "chengguan", Q_CANNOT, OCT8)},
    )


def test_reclassifying_a_guided_case_for_coordination_asks_the_departments_now():
    s = opened("guided")
    s, events = step(s, lc.Classify(actor="w-li", classification=cls("hard", ("scjg",))))
    assert events == [
        lc.NewEvent(
            "w-li",
            ev.CaseReclassified(
                previous=Category.GUIDED,
                category=Category.HARD,
                reason="窗口分類",
                working_days=5,
                due_date=OCT10,
            ),
        ),
        requested(C1, "scjg", Q_HARD, OCT10),
    ]
    assert (s.state, s.category, s.mode, s.due_date, s.working_days) == (
        lc.COORDINATING,
        "hard",
        "coordinate",
        OCT10,
        5,
    )
    assert s.coordinations == {C1: coordination(C1, "scjg", Q_HARD, OCT10)}


def test_reclassifying_a_guided_case_for_coordination_without_departments_is_refused():
    refused(
        opened("guided"),
        lc.Classify(actor="w-li", classification=cls("cannot", ())),
        "reclassifying out of guided needs departments to coordinate with",
        "departments",
        "not_allowed",
    )


def test_a_case_still_waiting_for_departments_cannot_become_guided():
    refused(
        opened("cannot"),
        lc.Classify(actor="w-li", classification=cls("guided")),
        f"case {CID} still waits for departments; it cannot become guided now",
        "category",
        "not_allowed",
    )


def test_an_answered_case_can_become_guided():
    s = opened("cannot")
    s, _ = step(s, answer(C1, "chengguan", "resolved"))
    assert s.state == lc.ANSWERED
    s, events = step(s, lc.Classify(actor="w-li", classification=cls("guided", ("scjg",))))
    assert events == [
        lc.NewEvent(
            "w-li",
            ev.CaseReclassified(
                previous=Category.CANNOT,
                category=Category.GUIDED,
                reason="窗口分類",
                working_days=1,
                due_date=SEP29,
            ),
        )
    ]
    assert (s.state, s.category, s.mode, s.due_date, s.working_days) == (
        lc.GUIDING,
        "guided",
        "guide",
        SEP29,
        1,
    )


def test_a_coordinating_case_whose_only_request_bounced_can_become_guided():
    s = opened("cannot")
    s, _ = step(s, answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    assert s.state == lc.COORDINATING and s.bounce_ruling_needed is True
    s, events = step(s, lc.Classify(actor="w-li", classification=cls("guided")))
    assert [e.type for e in events] == ["case.reclassified"]
    assert (s.state, s.mode) == (lc.GUIDING, "guide")


def test_an_answered_case_reclassified_for_coordination_stays_answered():
    s = opened("cannot")
    s, _ = step(s, answer(C1, "chengguan", "resolved"))
    s, events = step(s, lc.Classify(actor="w-li", classification=cls("hard")))
    assert [e.type for e in events] == ["case.reclassified"]
    assert (s.state, s.category, s.mode, s.due_date) == (lc.ANSWERED, "hard", "coordinate", OCT10)


# --- 首問負責制: handing a case over ---------------------------------------------------------------------


def test_the_owner_hands_the_case_over_with_a_reason():
    s, events = step(
        opened("cannot"),
        lc.Handover(actor="w-zhang", actor_rank=CLERK, owner="w-li", reason="輪休"),
        at(9, 28, 11),
    )
    assert events == [
        lc.NewEvent(
            "w-zhang",
            ev.OwnerAssigned(owner="w-li", previous_owner="w-zhang", reason="輪休"),
        )
    ]
    assert (s.owner, s.seq, s.head_hash, s.last_event_at) == ("w-li", 4, "h4", at(9, 28, 11))


def test_a_leader_who_does_not_own_the_case_may_hand_it_over():
    s, events = step(
        opened("cannot"),
        lc.Handover(actor="leader-gao", actor_rank=LEADER, owner="w-wang", reason="調整分工"),
    )
    assert events == [
        lc.NewEvent(
            "leader-gao",
            ev.OwnerAssigned(owner="w-wang", previous_owner="w-zhang", reason="調整分工"),
        )
    ]
    assert s.owner == "w-wang"


@pytest.mark.parametrize("rank", [CLERK, SECTION_HEAD])
def test_someone_below_a_leader_who_does_not_own_the_case_cannot_hand_it_over(rank):
    refused(
        opened("cannot"),
        lc.Handover(actor="w-li", actor_rank=rank, owner="w-wang", reason="我來"),
        f"only the owner (w-zhang) or a leader can hand case {CID} over",
        "actor",
        "not_allowed",
    )


def test_handing_a_case_to_its_owner_is_refused():
    refused(
        opened("cannot"),
        lc.Handover(actor="leader-gao", actor_rank=LEADER, owner="w-zhang", reason="再交"),
        f"w-zhang already owns case {CID}",
        "owner",
        "not_allowed",
    )


# --- attempts and stalls -------------------------------------------------------------------------------


def test_a_failed_attempt_is_recorded_with_its_reason_and_a_detail_cut_at_500_characters():
    s, events = step(
        opened("cannot"),
        lc.RecordAttemptFailure(request_id=C1, attempt=2, reason="no_responders", detail="詳" * 600),
        at(9, 28, 10),
    )
    assert events == [
        lc.NewEvent(
            "system",
            ev.CoordinationRetried(
                request_id=C1, department="chengguan", attempt=2, reason="no_responders", detail="詳" * 500
            ),
        )
    ]
    assert s.coordinations == {
        C1: coordination(C1, "chengguan", attempts=2, last_reason="no_responders"),
    }
    assert (s.seq, s.last_event_at) == (4, at(9, 28, 10))


def test_a_failed_attempt_without_detail_records_an_empty_detail():
    _, events = step(opened("cannot"), lc.RecordAttemptFailure(request_id=C1, attempt=1, reason="timeout"))
    assert events[0].data == ev.CoordinationRetried(
        request_id=C1, department="chengguan", attempt=1, reason="timeout", detail=""
    )


def test_an_attempt_or_a_stall_on_an_unknown_request_is_not_found():
    refused(
        opened("cannot"),
        lc.RecordAttemptFailure(request_id=f"{CID}-c9", attempt=1, reason="timeout"),
        f"request_id '{CID}-c9' is not a coordination of case {CID}",
        "request_id",
        "not_found",
    )
    refused(
        opened("cannot"),
        lc.RecordStall(request_id=f"{CID}-c9", attempts=3, last_reason="timeout", chain={}),
        f"request_id '{CID}-c9' is not a coordination of case {CID}",
        "request_id",
        "not_found",
    )


def test_an_attempt_on_a_request_already_answered_is_a_conflict():
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(s, answer(C2, "chengguan", "accepted", expected_date=OCT9))
    refused(
        s,
        lc.RecordAttemptFailure(request_id=C2, attempt=2, reason="timeout"),
        f"request {C2} to chengguan is already answered",
        "request_id",
        "conflict",
    )
    refused(
        s,
        lc.RecordStall(request_id=C2, attempts=3, last_reason="timeout", chain={}),
        f"request {C2} to chengguan is already answered",
        "request_id",
        "conflict",
    )


def test_a_stall_marks_the_request_and_escalates_its_department_to_the_section_head():
    s, events = step(
        opened("cannot"),
        lc.RecordStall(request_id=C1, attempts=3, last_reason="timeout", chain=CHAINS["chengguan"]),
        at(9, 28, 12),
    )
    assert events == [
        lc.NewEvent(
            "system",
            ev.CoordinationStalled(request_id=C1, department="chengguan", attempts=3, last_reason="timeout"),
        ),
        escalated("chengguan", 1, "section_head", "市容科科長", "stalled", "chengguan_section_head"),
    ]
    assert s.coordinations == {
        C1: coordination(C1, "chengguan", status="stalled", attempts=3, last_reason="timeout"),
    }
    assert s.escalations == {"chengguan": (1, at(9, 28, 12))}
    assert s.bounce_ruling_needed is False


def test_a_stalled_request_can_still_fail_an_attempt_but_stalls_only_once():
    s, _ = step(opened("cannot"), lc.RecordStall(request_id=C1, attempts=3, last_reason="timeout", chain={}))
    assert lc.decide(s, lc.RecordStall(request_id=C1, attempts=4, last_reason="timeout", chain={})) == []
    s, events = step(s, lc.RecordAttemptFailure(request_id=C1, attempt=4, reason="error", detail="500"))
    assert [e.type for e in events] == ["coordination.retried"]
    assert s.coordinations[C1] == coordination(
        C1, "chengguan", status="stalled", attempts=4, last_reason="error"
    )


def test_a_stall_climbs_one_level_above_where_the_department_already_is_up_to_the_director():
    s, _ = step(
        opened("cannot", ("chengguan", "scjg")),
        lc.Escalate(actor="w-zhang", department="scjg", level=2, note="請分管領導過問", chain={}),
    )
    _, events = step(s, lc.RecordStall(request_id=C2, attempts=3, last_reason="timeout", chain={}))
    assert events[1] == escalated("scjg", 3, "director", "scjg director", "stalled", "scjg_director")
    s, _ = step(s, lc.Escalate(actor="w-zhang", department="chengguan", level=3, note="請局長過問", chain={}))
    _, events = step(
        s, lc.RecordStall(request_id=C1, attempts=3, last_reason="timeout", chain=CHAINS["chengguan"])
    )
    assert events[1] == escalated("chengguan", 3, "director", "城管局局長", "stalled", "chengguan_director")


def test_a_stall_after_a_direct_escalation_to_the_section_head_goes_to_the_leader_in_charge():
    s, _ = step(
        opened("cannot"), lc.Escalate(actor="w-zhang", department="chengguan", level=1, note="", chain={})
    )
    _, events = step(
        s, lc.RecordStall(request_id=C1, attempts=3, last_reason="timeout", chain=CHAINS["chengguan"])
    )
    assert events[1] == escalated(
        "chengguan", 2, "leader_in_charge", "分管副局長", "stalled", "chengguan_leader_in_charge"
    )


# --- department answers ---------------------------------------------------------------------------------


def test_the_only_department_resolving_it_answers_the_case():
    s, events = step(opened("cannot"), answer(C1, "chengguan", "resolved"), at(9, 29, 10))
    assert events == [
        replied(C1, "chengguan", "resolved"),
        resolved("resolved", "chengguan: resolved: 答覆", ["chengguan"]),
    ]
    assert s.state == lc.ANSWERED
    assert s.resolution == {
        "outcome": "resolved",
        "summary": "chengguan: resolved: 答覆",
        "departments": ["chengguan"],
    }
    assert s.coordinations == {
        C1: coordination(C1, "chengguan", status="answered", attempts=1, outcome="resolved", message="答覆")
    }
    assert (s.seq, s.head_hash, s.last_event_at) == (5, "h5", at(9, 29, 10))


def test_an_answer_the_window_records_is_by_the_recorder_with_the_attempt_it_came_on():
    s, events = step(opened("cannot"), answer(C1, "chengguan", "resolved", attempt=3, recorded_by="w-li"))
    assert events[0] == replied(C1, "chengguan", "resolved", actor="w-li", attempt=3, recorded_by="w-li")
    assert s.coordinations[C1].attempts == 3


def test_cannot_asks_the_higher_department_to_review_and_answers_the_case():
    s, events = step(
        opened("cannot"), answer(C1, "chengguan", "cannot", legal_basis="城市容貌標準第5條"), at(9, 29, 10)
    )
    assert events == [
        replied(C1, "chengguan", "cannot", legal_basis="城市容貌標準第5條"),
        lc.NewEvent(
            "system",
            ev.ReviewRequested(
                department="chengguan",
                legal_basis="城市容貌標準第5條",
                higher_department="省住建廳",
                notify_by=OCT9,
                due_date=OCT12,  # the bus has no adapter for 省住建廳: a manual step the window concludes
            ),
        ),
        resolved("cannot", "chengguan: cannot: 答覆", ["chengguan"]),
    ]
    assert s.reviews == (
        {
            "department": "chengguan",
            "legal_basis": "城市容貌標準第5條",
            "higher_department": "省住建廳",
            "notify_by": "2026-10-09",
            "due_date": "2026-10-12",
            "notified": False,
            "conclusion": None,
        },
    )
    assert s.coordinations[C1] == coordination(
        C1,
        "chengguan",
        status="answered",
        attempts=1,
        outcome="cannot",
        message="答覆",
        legal_basis="城市容貌標準第5條",
    )
    assert s.resolution == {
        "outcome": "cannot",
        "summary": "chengguan: cannot: 答覆",
        "departments": ["chengguan"],
    }


def test_need_materials_answers_the_case_with_that_outcome():
    s, events = step(
        opened("cannot"), answer(C1, "chengguan", "need_materials", materials=["平面圖", "租賃合同"])
    )
    assert events == [
        replied(C1, "chengguan", "need_materials", materials=["平面圖", "租賃合同"]),
        resolved("need_materials", "chengguan: need_materials: 答覆", ["chengguan"]),
    ]
    assert s.state == lc.ANSWERED


def test_accepted_keeps_the_case_waiting_until_the_final_answer_is_recorded():
    s, events = step(opened("cannot"), answer(C1, "chengguan", "accepted", expected_date=OCT9))
    assert events == [replied(C1, "chengguan", "accepted", expected_date=OCT9)]
    assert s.state == lc.COORDINATING and s.resolution is None
    assert s.coordinations[C1] == coordination(
        C1, "chengguan", status="answered", attempts=1, outcome="accepted", message="答覆"
    )
    s, events = step(s, answer(C1, "chengguan", "resolved", recorded_by="w-zhang", message="已辦結"))
    assert events == [
        replied(C1, "chengguan", "resolved", actor="w-zhang", recorded_by="w-zhang", message="已辦結"),
        resolved("resolved", "chengguan: resolved: 已辦結", ["chengguan"]),
    ]
    assert s.state == lc.ANSWERED


def test_the_case_is_answered_only_when_every_department_of_the_round_has_answered():
    s = opened("hard", ("scjg", "chengguan"))
    s, events = step(s, answer(C1, "scjg", "need_materials", materials=["章程"]))
    assert [e.type for e in events] == ["coordination.replied"] and s.state == lc.COORDINATING
    s, events = step(s, answer(C2, "chengguan", "cannot", legal_basis="條例"))
    assert [e.type for e in events] == ["coordination.replied", "case.review_requested", "case.resolved"]
    # cannot outranks need_materials; the summary lists the departments in the order asked
    assert events[2] == resolved(
        "cannot", "scjg: need_materials: 答覆; chengguan: cannot: 答覆", ["scjg", "chengguan"]
    )


def test_cannot_outranks_every_other_outcome_of_the_round():
    s = opened("hard", ("scjg", "chengguan", "renshe"))
    s, _ = step(s, answer(C1, "scjg", "cannot", legal_basis="條例"))
    s, _ = step(s, answer(C2, "chengguan", "need_materials", materials=["圖"]))
    s, events = step(s, answer(C3, "renshe", "resolved"))
    assert events[-1] == resolved(
        "cannot",
        "scjg: cannot: 答覆; chengguan: need_materials: 答覆; renshe: resolved: 答覆",
        ["scjg", "chengguan", "renshe"],
    )


def test_the_round_is_resolved_only_when_every_department_resolved_it():
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(s, answer(C1, "scjg", "need_materials", materials=["章程"]))
    _, events = step(s, answer(C2, "chengguan", "resolved"))
    assert events[-1].data.outcome == "need_materials"
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(s, answer(C1, "scjg", "resolved"))
    _, events = step(s, answer(C2, "chengguan", "resolved"))
    assert events[-1].data.outcome == "resolved"


def test_need_materials_alone_is_the_outcome_of_the_round():
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(s, answer(C1, "scjg", "need_materials", materials=["章程"]))
    _, events = step(s, answer(C2, "chengguan", "need_materials", materials=["圖"]))
    assert events[-1] == resolved(
        "need_materials", "scjg: need_materials: 答覆; chengguan: need_materials: 答覆", ["scjg", "chengguan"]
    )


def test_the_summary_of_the_answers_is_cut_at_4000_characters():
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(s, answer(C1, "scjg", "resolved", message="甲" * 3000))
    _, events = step(s, answer(C2, "chengguan", "resolved", message="乙" * 3000))
    # "scjg: resolved: " is 16 characters, "; chengguan: resolved: " 23
    expected = "scjg: resolved: " + "甲" * 3000 + "; chengguan: resolved: " + "乙" * 961
    assert len(expected) == 4000
    assert events[-1] == resolved("resolved", expected, ["scjg", "chengguan"])


def test_a_bounced_request_does_not_count_as_an_answer_of_the_round():
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(s, answer(C1, "scjg", "resolved"))
    # chengguan bounces once too often: the duty leader must rule before the case is answered
    s, events = step(s, answer(C2, "chengguan", "not_ours", belongs_to="renshe", max_bounces=1))
    assert [e.type for e in events] == ["coordination.replied", "case.escalated"]
    assert s.state == lc.COORDINATING and s.bounce_ruling_needed is True


def test_a_reply_from_another_department_than_the_one_asked_is_refused():
    refused(
        opened("cannot"),
        answer(C1, "scjg", "resolved"),
        f"reply for {C1} came from scjg, but the request went to chengguan",
        "department",
        "invalid_request",
    )


def test_a_reply_for_an_unknown_request_is_not_found():
    refused(
        opened("cannot"),
        answer(C2, "chengguan", "resolved"),
        f"request_id '{C2}' is not a coordination of case {CID}",
        "request_id",
        "not_found",
    )


def test_a_second_final_answer_is_a_conflict_naming_the_first():
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(s, answer(C1, "scjg", "cannot", legal_basis="條例"))
    refused(
        s,
        answer(C1, "scjg", "resolved"),
        f"request {C1} to scjg is already answered (cannot)",
        "request_id",
        "conflict",
    )
    s, _ = step(s, answer(C2, "chengguan", "not_ours", belongs_to="renshe"))
    refused(
        s,
        answer(C2, "chengguan", "resolved"),
        f"request {C2} to chengguan is already answered (not_ours)",
        "request_id",
        "conflict",
    )


def test_not_ours_reroutes_the_request_to_the_named_department_and_counts_a_bounce():
    s, events = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg"), at(9, 29))
    assert events == [
        replied(C1, "chengguan", "not_ours", belongs_to="scjg"),
        requested(C2, "scjg", Q_CANNOT, OCT8, rerouted_from="chengguan"),
    ]
    assert s.bounces == 1 and s.state == lc.COORDINATING and s.bounce_ruling_needed is False
    assert s.coordinations == {
        C1: coordination(C1, "chengguan", status="bounced", attempts=1, outcome="not_ours", message="答覆"),
        C2: coordination(C2, "scjg", rerouted_from="chengguan", requested_at=at(9, 29)),
    }


def test_the_bounce_that_reaches_the_limit_asks_the_duty_leader_to_rule():
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=2))
    s, events = step(s, answer(C2, "scjg", "not_ours", belongs_to="renshe", max_bounces=2), at(9, 29))
    assert events == [
        replied(C2, "scjg", "not_ours", belongs_to="renshe"),
        escalated(
            "scjg",
            2,
            "leader_in_charge",
            "leader-gao",
            "bounced",
            "duty_leader",
            note="2 bounces; the duty leader rules which department handles it",
        ),
    ]
    assert s.bounces == 2 and s.bounce_ruling_needed is True
    assert s.escalations == {"scjg": (2, at(9, 29))}
    assert len(s.coordinations) == 2


def test_with_a_limit_of_one_the_first_bounce_goes_to_the_duty_leader():
    _, events = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    assert events[1] == escalated(
        "chengguan",
        2,
        "leader_in_charge",
        "leader-gao",
        "bounced",
        "duty_leader",
        note="1 bounces; the duty leader rules which department handles it",
    )


def test_without_a_named_duty_leader_the_bounce_goes_to_the_duty_leader_post():
    s, _ = step(
        lc.CaseState(case_id=CID),
        lc.Open(intake=intake("cannot"), classification=cls("cannot", duty_leader=None)),
    )
    assert s.duty_leader is None
    _, events = step(s, answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    assert events[1].data.target == "duty leader"


def test_a_department_the_duty_leader_ruled_on_that_bounces_again_goes_back_to_the_duty_leader():
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    s, _ = step(s, lc.RuleBounce(actor="leader-gao", actor_rank=LEADER, department="scjg"))
    assert s.ruled_department == "scjg"
    # far below the limit, but the ruling named scjg
    s, events = step(s, answer(C2, "scjg", "not_ours", belongs_to="renshe", max_bounces=10))
    assert events[1] == escalated(
        "scjg",
        2,
        "leader_in_charge",
        "leader-gao",
        "bounced",
        "duty_leader",
        note="2 bounces; the duty leader rules which department handles it",
    )
    assert s.bounce_ruling_needed is True


def test_a_department_not_ruled_on_that_bounces_below_the_limit_is_rerouted():
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    s, _ = step(s, lc.RuleBounce(actor="leader-gao", actor_rank=LEADER, department="scjg"))
    s, _ = step(s, answer(C2, "scjg", "accepted", expected_date=OCT9))
    s = lc.evolve(
        s,
        "coordination.requested",
        ev.CoordinationRequested(request_id=C3, department="renshe", question="問", deadline=OCT8),
        meta(s.seq + 1),
    )
    _, events = step(s, answer(C3, "renshe", "not_ours", belongs_to="chengguan", max_bounces=10))
    assert events == [
        replied(C3, "renshe", "not_ours", belongs_to="chengguan"),
        requested(C4, "chengguan", Q_CANNOT, OCT8, rerouted_from="renshe"),
    ]


def test_a_bounce_to_an_unknown_department_asks_the_duty_leader_to_rule():
    s, events = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="zhujian"), at(9, 29))
    assert events == [
        replied(C1, "chengguan", "not_ours", belongs_to="zhujian"),
        escalated(
            "chengguan",
            2,
            "leader_in_charge",
            "leader-gao",
            "bounced",
            "duty_leader",
            note="chengguan says it belongs to unknown department zhujian; "
            "the duty leader rules which department handles it",
        ),
    ]
    assert s.bounces == 1 and s.bounce_ruling_needed is True and s.state == lc.COORDINATING
    assert s.resolution is None


def test_an_old_rounds_late_answer_does_not_answer_the_case_again():
    s = opened("cannot")
    s, _ = step(
        s,
        lc.Close(
            actor="w-zhang", actor_rank=CLERK, outcome="withdrawn", explanation="申請人撤回", today=SEP29
        ),
    )
    s, _ = step(
        s, lc.Reopen(actor="leader-gao", actor_rank=LEADER, reason="領導督辦", working_days=3, due_date=OCT9)
    )
    s, _ = step(s, answer(C2, "chengguan", "resolved"))
    assert s.state == lc.ANSWERED and s.round == 2
    # the first round's request still awaits its answer; it arrives now
    s, events = step(s, answer(C1, "chengguan", "cannot", legal_basis="條例"))
    assert [e.type for e in events] == ["coordination.replied", "case.review_requested"]
    assert s.state == lc.ANSWERED


# --- ruling on bounces ----------------------------------------------------------------------------------


def test_no_ruling_without_a_bounce_waiting_for_one():
    refused(
        opened("cannot"),
        lc.RuleBounce(actor="leader-gao", actor_rank=LEADER, department="scjg"),
        f"case {CID} has no bounce waiting for a ruling",
        "case_id",
        "not_allowed",
    )


@pytest.mark.parametrize("rank", [CLERK, SECTION_HEAD])
def test_only_the_duty_leader_or_a_leader_rules_on_a_bounce(rank):
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    refused(
        s,
        lc.RuleBounce(actor="w-li", actor_rank=rank, department="scjg"),
        "only the window's duty leader rules on a bounced case",
        "actor",
        "not_allowed",
    )


def test_the_duty_leader_rules_even_without_a_leaders_rank_and_the_named_department_is_asked():
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    s, events = step(s, lc.RuleBounce(actor="leader-gao", actor_rank=CLERK, department="renshe"), at(9, 30))
    assert events == [
        lc.NewEvent(
            "leader-gao",
            ev.BounceRuled(department="renshe", ruled_by="leader-gao", bounces=1),
        ),
        requested(C2, "renshe", Q_CANNOT, OCT8),
    ]
    assert (s.bounce_ruling_needed, s.ruled_department, s.bounces) == (False, "renshe", 1)
    assert s.coordinations[C2] == coordination(C2, "renshe", requested_at=at(9, 30))


def test_a_leader_who_is_not_the_duty_leader_may_not_rule():
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    refused(
        s,
        lc.RuleBounce(actor="director-ma", actor_rank=LEADER, department="scjg"),
        "only the window's duty leader rules on a bounced case",
        "actor",
        "not_allowed",
    )


# --- the deadline watcher: warnings, overdue, climbing ----------------------------------------------------


def test_no_tick_does_anything_to_a_case_without_a_due_date():
    s = lc.CaseState(case_id=CID, seq=2, state=lc.GUIDING, category="guided")
    assert lc.decide(s, tick(OCT12, 0)) == []


def test_warnings_come_one_working_day_before_and_on_the_due_day_once_each():
    s = opened("hard")  # due Sat 10 Oct, a make-up working day
    assert lc.decide(s, tick(OCT8, 2)) == []
    s, events = step(s, tick(OCT9, 1), at(10, 9))
    assert events == [lc.NewEvent("system", ev.DeadlineWarned(due_date=OCT10, working_days_left=1))]
    assert s.warned == frozenset({1})
    assert lc.decide(s, tick(OCT9, 1, at(10, 9, 15))) == []
    s, events = step(s, tick(OCT10, 0), at(10, 10))
    assert events == [lc.NewEvent("system", ev.DeadlineWarned(due_date=OCT10, working_days_left=0))]
    assert s.warned == frozenset({1, 0})
    assert lc.decide(s, tick(OCT10, 0, at(10, 10, 15))) == []


def test_a_missed_warning_point_is_caught_up_first_one_point_per_tick():
    s = opened("hard")
    s, events = step(s, tick(OCT10, 0), at(10, 10))
    assert [e.data for e in events] == [ev.DeadlineWarned(due_date=OCT10, working_days_left=1)]
    s, events = step(s, tick(OCT10, 0, at(10, 10, 12)), at(10, 10, 12))
    assert [e.data for e in events] == [ev.DeadlineWarned(due_date=OCT10, working_days_left=0)]


def test_warning_points_are_taken_from_the_farthest_whatever_their_order_in_the_settings():
    s = opened("hard")
    _, events = step(s, tick(OCT9, 1, warn_at=(0, 2, 1)))
    assert [e.data for e in events] == [ev.DeadlineWarned(due_date=OCT10, working_days_left=2)]
    s, _ = step(s, tick(OCT8, 2, warn_at=(0, 2, 1)))
    _, events = step(s, tick(OCT9, 1, warn_at=(0, 2, 1)))
    assert [e.data for e in events] == [ev.DeadlineWarned(due_date=OCT10, working_days_left=1)]


def test_a_warning_point_further_than_the_days_left_does_not_warn_yet():
    s = opened("hard")
    assert lc.decide(s, tick(OCT8, 2, warn_at=(1,))) == []
    assert lc.decide(s, tick(SEP30, 4, warn_at=(3, 0))) == []


def test_the_day_after_the_due_date_the_case_is_overdue_and_each_waiting_department_escalated():
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(s, lc.Escalate(actor="w-li", department="scjg", level=2, note="", chain={}), at(10, 9))
    s, events = step(s, tick(OCT11, 0), at(10, 11))
    assert events == [
        lc.NewEvent("system", ev.CaseOverdue(due_date=OCT10)),
        escalated("chengguan", 1, "section_head", "市容科科長", "overdue", "chengguan_section_head"),
        escalated("scjg", 3, "director", "scjg director", "overdue", "scjg_director"),
    ]
    assert s.overdue is True
    assert s.escalations == {"scjg": (3, at(10, 11)), "chengguan": (1, at(10, 11))}


def test_an_overdue_department_already_at_the_director_stays_there():
    s = opened("hard")
    s, _ = step(s, lc.Escalate(actor="w-li", department="chengguan", level=3, note="", chain={}))
    _, events = step(s, tick(OCT11, 0))
    assert events[1] == escalated("chengguan", 3, "director", "城管局局長", "overdue", "chengguan_director")


def test_an_overdue_case_no_department_owes_escalates_the_window_itself():
    s = opened("hard")
    s, _ = step(s, answer(C1, "chengguan", "resolved"))
    assert s.state == lc.ANSWERED
    s, events = step(s, tick(OCT12, 0), at(10, 12))
    assert events == [
        lc.NewEvent("system", ev.CaseOverdue(due_date=OCT10)),
        escalated("window", 1, "section_head", "窗口科長", "overdue", "window_section_head"),
    ]
    assert s.escalations == {"window": (1, at(10, 12))}


def test_an_accepted_department_still_owes_its_answer_when_the_case_is_overdue():
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(s, answer(C1, "scjg", "accepted", expected_date=OCT12))
    s, _ = step(s, answer(C2, "chengguan", "resolved"))
    _, events = step(s, tick(OCT11, 0))
    assert [(e.type, getattr(e.data, "department", None)) for e in events] == [
        ("case.overdue", None),
        ("case.escalated", "scjg"),
    ]


def test_an_overdue_case_climbs_one_level_per_working_day_up_to_the_director():
    s = opened("hard")
    s, _ = step(s, tick(OCT11, 0), at(10, 11))  # overdue: chengguan to the section head
    # the shell counts office hours on working days since the level was reached: 8 is one working day
    assert lc.decide(s, tick(OCT12, 0, at(10, 12, 16, 59), worked=7 + 59 / 60)) == []  # a minute short
    s, events = step(s, tick(OCT12, 0, at(10, 12, 17), worked=8), at(10, 12, 17))
    assert events == [
        escalated("chengguan", 2, "leader_in_charge", "分管副局長", "overdue", "chengguan_leader_in_charge")
    ]
    s, events = step(s, tick(OCT13, 0, at(10, 13, 17), worked=8), at(10, 13, 17))
    assert events == [escalated("chengguan", 3, "director", "城管局局長", "overdue", "chengguan_director")]
    assert s.escalations == {"chengguan": (3, at(10, 13, 17))}
    assert lc.decide(s, tick(OCT14, 0, at(10, 20), worked=40)) == []


def test_the_working_hours_between_levels_come_from_the_settings():
    s = opened("hard")
    s, _ = step(s, tick(OCT11, 0), at(10, 11))
    assert lc.decide(s, tick(OCT12, 0, at(10, 12, 10), hours=2, worked=1)) == []
    _, events = step(s, tick(OCT12, 0, at(10, 12, 11), hours=2, worked=2))
    assert [e.data.level for e in events] == [2]


def test_a_stalled_department_climbs_per_period_while_the_case_is_not_overdue():
    s = opened("hard", ("scjg", "chengguan"))
    s, _ = step(
        s,
        lc.RecordStall(request_id=C2, attempts=3, last_reason="timeout", chain=CHAINS["chengguan"]),
        at(9, 29),
    )
    s, _ = step(
        s, lc.Escalate(actor="w-li", department="scjg", level=1, note="", chain={}), at(9, 29)
    )  # scjg is pending, not stalled
    _, events = step(s, tick(SEP30, 4, at(9, 30), worked=8))
    assert events == [
        escalated("chengguan", 2, "leader_in_charge", "分管副局長", "stalled", "chengguan_leader_in_charge")
    ]


def test_a_stalled_department_without_an_escalation_does_not_stop_the_others_climbing():
    # states as an auditor may meet them: two stalled departments, only one of them escalated
    s = lc.CaseState(
        case_id=CID,
        seq=6,
        state=lc.COORDINATING,
        category="hard",
        due_date=OCT10,
        coordinations={
            C1: coordination(C1, "chengguan", status="stalled"),
            C2: coordination(C2, "scjg", status="stalled"),
        },
        escalations={"scjg": (1, at(9, 29))},
    )
    assert lc.decide(s, tick(SEP30, 4, at(9, 30), worked=8)) == [
        escalated("scjg", 2, "leader_in_charge", "scjg leader_in_charge", "stalled", "scjg_leader_in_charge")
    ]
    overdue = lc.CaseState(
        case_id=CID,
        seq=6,
        state=lc.COORDINATING,
        category="hard",
        due_date=OCT10,
        overdue=True,
        coordinations={
            C1: coordination(C1, "chengguan"),
            C2: coordination(C2, "scjg"),
        },
        escalations={"scjg": (2, at(10, 11))},
    )
    # chengguan, owing an answer with no level yet, starts the ladder; scjg climbs on
    assert lc.decide(overdue, tick(OCT12, 0, at(10, 12), worked=8)) == [
        escalated("chengguan", 1, "section_head", "市容科科長", "overdue", "chengguan_section_head"),
        escalated("scjg", 3, "director", "scjg director", "overdue", "scjg_director"),
    ]


def test_once_overdue_the_departments_owing_an_answer_climb_as_overdue_even_when_stalled():
    s = opened("hard")
    s, _ = step(s, lc.RecordStall(request_id=C1, attempts=3, last_reason="timeout", chain={}), at(10, 9))
    s, events = step(s, tick(OCT11, 0), at(10, 11))
    assert events[1] == escalated(
        "chengguan", 2, "leader_in_charge", "分管副局長", "overdue", "chengguan_leader_in_charge"
    )
    _, events = step(s, tick(OCT12, 0, worked=8), at(10, 12))
    assert events == [escalated("chengguan", 3, "director", "城管局局長", "overdue", "chengguan_director")]


def test_an_overdue_case_whose_departments_answered_climbs_at_the_window():
    s = opened("hard")
    s, _ = step(s, tick(OCT11, 0), at(10, 11))
    s, _ = step(s, answer(C1, "chengguan", "resolved"), at(10, 11, 10))
    _, events = step(s, tick(OCT12, 0), at(10, 12))
    # still overdue, nobody owes an answer any more: the window's own ladder starts
    assert events == [escalated("window", 1, "section_head", "窗口科長", "overdue", "window_section_head")]
    s = lc.evolve(
        s,
        "case.escalated",
        escalated("window", 1, "section_head", "窗口科長", "overdue", "window_section_head").data,
        meta(s.seq + 1, at(10, 11, 10)),
    )
    _, events = step(s, tick(OCT12, 0, at(10, 12, 10), worked=8))
    assert events == [
        escalated(
            "window", 2, "leader_in_charge", "window leader_in_charge", "overdue", "window_leader_in_charge"
        )
    ]


def test_overdue_on_a_day_off_is_recorded_and_the_ladder_starts_on_the_next_working_day():
    s = opened("hard")  # due 10 October, chengguan asked
    s, events = step(s, tick(OCT11, 0, working_day=False), at(10, 11))  # Sunday, a day off
    assert [e.type for e in events] == ["case.overdue"]
    _, events = step(s, tick(OCT11, 0, at(10, 11, 18), working_day=False))
    assert events == []  # nothing climbs on a day off
    s, events = step(s, tick(OCT12, 0, at(10, 12)), at(10, 12))  # Monday
    assert events == [
        escalated("chengguan", 1, "section_head", "市容科科長", "overdue", "chengguan_section_head")
    ]
    _, events = step(s, tick(OCT13, 0, at(10, 13), working_day=False, worked=8))  # a day's hours, a day off
    assert events == []
    _, events = step(s, tick(OCT13, 0, at(10, 13), worked=8))  # the same reading on a working day
    assert events == [
        escalated("chengguan", 2, "leader_in_charge", "分管副局長", "overdue", "chengguan_leader_in_charge")
    ]


# --- extensions (延期) -----------------------------------------------------------------------------------


def test_an_extension_is_requested_before_expiry_and_a_leader_approves_the_proposed_date():
    s = opened("hard")
    s, events = step(
        s,
        lc.RequestExtension(
            actor="w-zhang", working_days=3, reason="等省廳回函", today=OCT10, proposed_due_date=OCT14
        ),
        at(10, 10),
    )
    assert events == [
        lc.NewEvent(
            "w-zhang",
            ev.ExtensionRequested(working_days=3, reason="等省廳回函", proposed_due_date=OCT14),
        )
    ]
    assert s.pending_extension == {
        "working_days": 3,
        "reason": "等省廳回函",
        "proposed_due_date": OCT14,
        "requested_by": "w-zhang",
    }
    assert s.due_date == OCT10
    s, events = step(s, lc.ApproveExtension(actor="leader-gao", actor_rank=LEADER), at(10, 10, 11))
    assert events == [
        lc.NewEvent(
            "leader-gao",
            ev.CaseExtended(working_days=3, due_date=OCT14, approved_by="leader-gao", total_extension_days=3),
        )
    ]
    assert (s.due_date, s.extension_days, s.pending_extension, s.overdue) == (OCT14, 3, None, False)


def test_an_approval_may_carry_the_due_date_as_it_stands_now():
    s = opened("hard")
    s, _ = step(
        s,
        lc.RequestExtension(
            actor="w-zhang", working_days=2, reason="等回函", today=OCT9, proposed_due_date=OCT13
        ),
    )
    _, events = step(s, lc.ApproveExtension(actor="leader-gao", actor_rank=LEADER, due_date=OCT14))
    assert events[0].data == ev.CaseExtended(
        working_days=2, due_date=OCT14, approved_by="leader-gao", total_extension_days=2
    )


def test_extensions_add_up_and_may_reach_exactly_the_maximum():
    s = opened("hard")
    s, _ = step(
        s,
        lc.RequestExtension(
            actor="w-zhang",
            working_days=8,
            reason="省裡研究",
            today=OCT9,
            proposed_due_date=date(2026, 10, 22),
        ),
    )
    s, _ = step(s, lc.ApproveExtension(actor="leader-gao", actor_rank=LEADER))
    s, events = step(
        s,
        lc.RequestExtension(
            actor="w-zhang", working_days=2, reason="再延", today=OCT12, proposed_due_date=date(2026, 10, 26)
        ),
    )
    assert events[0].data == ev.ExtensionRequested(
        working_days=2, reason="再延", proposed_due_date=date(2026, 10, 26)
    )
    s, events = step(s, lc.ApproveExtension(actor="director-ma", actor_rank=3))
    assert events[0].data == ev.CaseExtended(
        working_days=2, due_date=date(2026, 10, 26), approved_by="director-ma", total_extension_days=10
    )
    assert s.extension_days == 10


def test_extensions_beyond_the_maximum_are_refused():
    s = opened("hard")
    s, _ = step(
        s,
        lc.RequestExtension(
            actor="w-zhang",
            working_days=8,
            reason="省裡研究",
            today=OCT9,
            proposed_due_date=date(2026, 10, 22),
        ),
    )
    s, _ = step(s, lc.ApproveExtension(actor="leader-gao", actor_rank=LEADER))
    refused(
        s,
        lc.RequestExtension(
            actor="w-zhang", working_days=3, reason="再延", today=OCT12, proposed_due_date=date(2026, 10, 27)
        ),
        f"extensions of case {CID} would total 11 working days; at most 10 (already 8)",
        "working_days",
        "not_allowed",
    )
    refused(
        opened("hard"),
        lc.RequestExtension(
            actor="w-zhang",
            working_days=6,
            reason="再延",
            today=OCT9,
            proposed_due_date=date(2026, 10, 19),
            max_total=5,
        ),
        f"extensions of case {CID} would total 6 working days; at most 5 (already 0)",
        "working_days",
        "not_allowed",
    )


def test_an_extension_may_be_asked_on_the_due_day_but_not_after():
    s = opened("hard")
    assert [
        e.type
        for e in lc.decide(
            s,
            lc.RequestExtension(
                actor="w-zhang", working_days=1, reason="r", today=OCT10, proposed_due_date=OCT12
            ),
        )
    ] == ["case.extension_requested"]
    refused(
        s,
        lc.RequestExtension(
            actor="w-zhang", working_days=1, reason="r", today=OCT11, proposed_due_date=OCT13
        ),
        f"case {CID} is past its deadline 2026-10-10: an extension must be requested before expiry",
        "working_days",
        "not_allowed",
    )


def test_an_extension_without_a_due_date_is_refused():
    s = lc.CaseState(case_id=CID, seq=2, state=lc.GUIDING, category="guided")
    refused(
        s,
        lc.RequestExtension(
            actor="w-zhang", working_days=1, reason="r", today=SEP29, proposed_due_date=SEP30
        ),
        f"case {CID} is past its deadline None: an extension must be requested before expiry",
        "working_days",
        "not_allowed",
    )


def test_only_one_extension_waits_at_a_time():
    s, _ = step(
        opened("hard"),
        lc.RequestExtension(actor="w-zhang", working_days=1, reason="r", today=OCT9, proposed_due_date=OCT12),
    )
    refused(
        s,
        lc.RequestExtension(actor="w-zhang", working_days=1, reason="r", today=OCT9, proposed_due_date=OCT12),
        f"case {CID} already has an extension waiting for approval",
        None,
        "not_allowed",
    )


def test_approving_with_nothing_waiting_is_refused():
    refused(
        opened("hard"),
        lc.ApproveExtension(actor="leader-gao", actor_rank=LEADER),
        f"case {CID} has no extension waiting for approval",
        None,
        "not_allowed",
    )


def test_only_a_leader_approves_an_extension():
    s, _ = step(
        opened("hard"),
        lc.RequestExtension(actor="w-zhang", working_days=1, reason="r", today=OCT9, proposed_due_date=OCT12),
    )
    refused(
        s,
        lc.ApproveExtension(actor="section-head-li", actor_rank=SECTION_HEAD),
        "an extension must be approved by a leader (分管領導 or above)",
        "actor",
        "not_allowed",
    )


def test_an_extension_approved_after_the_case_went_overdue_lifts_the_overdue_flag_and_the_warnings():
    s = opened("hard")
    s, _ = step(s, tick(OCT10, 0), at(10, 10))  # warning (point 1)
    s, _ = step(
        s,
        lc.RequestExtension(
            actor="w-zhang", working_days=3, reason="等回函", today=OCT10, proposed_due_date=OCT14
        ),
        at(10, 10),
    )
    s, _ = step(s, tick(OCT11, 0), at(10, 11))
    assert s.overdue is True and s.warned == frozenset({1})
    s, _ = step(s, lc.ApproveExtension(actor="leader-gao", actor_rank=LEADER), at(10, 12))
    assert (s.due_date, s.overdue, s.warned, s.extension_days, s.pending_extension) == (
        OCT14,
        False,
        frozenset(),
        3,
        None,
    )
    assert s.escalations == {"chengguan": (1, at(10, 11))}


# --- direct escalation -----------------------------------------------------------------------------------


def test_the_window_addresses_any_level_directly():
    s, events = step(
        opened("cannot"),
        lc.Escalate(
            actor="leader-gao", department="chengguan", level=3, note="請局長過問", chain=CHAINS["chengguan"]
        ),
        at(9, 30),
    )
    assert events == [
        escalated(
            "chengguan",
            3,
            "director",
            "城管局局長",
            "direct",
            "chengguan_director",
            "請局長過問",
            "leader-gao",
        )
    ]
    assert s.escalations == {"chengguan": (3, at(9, 30))}
    assert s.bounce_ruling_needed is False
    _, events = step(s, lc.Escalate(actor="w-zhang", department="scjg", level=0, note="", chain={}))
    assert events == [escalated("scjg", 0, "clerk", "scjg clerk", "direct", "scjg_clerk", "", "w-zhang")]


def test_escalating_a_case_in_intake_is_allowed():
    s, events = step(
        opened(None),
        lc.Escalate(
            actor="w-zhang", department="chengguan", level=1, note="先打招呼", chain=CHAINS["chengguan"]
        ),
    )
    assert events == [
        escalated(
            "chengguan",
            1,
            "section_head",
            "市容科科長",
            "direct",
            "chengguan_section_head",
            "先打招呼",
            "w-zhang",
        )
    ]
    assert s.state == lc.INTAKE


# --- guiding and closing (銷號) ------------------------------------------------------------------------------


def test_guiding_names_the_window_and_closes_the_case_on_time_on_the_due_day():
    s, events = step(
        opened("guided"),
        lc.Guide(
            actor="w-zhang",
            actor_rank=CLERK,
            window="市場監管局食品許可窗口",
            instructions="帶平面圖去辦",
            today=SEP29,
        ),
        at(9, 29, 16),
    )
    assert events == [
        lc.NewEvent(
            "w-zhang",
            ev.CaseGuided(window="市場監管局食品許可窗口", instructions="帶平面圖去辦"),
        ),
        lc.NewEvent(
            "w-zhang",
            ev.CaseClosed(outcome="guided", explanation="帶平面圖去辦", closed_by="w-zhang", on_time=True),
        ),
    ]
    assert s.state == lc.CLOSED
    assert s.resolution == {"outcome": "guided", "window": "市場監管局食品許可窗口"}
    assert s.closing == {
        "outcome": "guided",
        "explanation": "帶平面圖去辦",
        "closed_by": "w-zhang",
        "on_time": True,
        "at": "2026-09-29T16:00:00+08:00",
    }


def test_guiding_after_the_due_day_is_late_and_a_leader_may_do_it():
    _, events = step(
        opened("guided"),
        lc.Guide(actor="leader-gao", actor_rank=LEADER, window="窗口", instructions="說明", today=SEP30),
    )
    assert events[1] == lc.NewEvent(
        "leader-gao",
        ev.CaseClosed(outcome="guided", explanation="說明", closed_by="leader-gao", on_time=False),
    )


@pytest.mark.parametrize("rank", [CLERK, SECTION_HEAD])
def test_only_the_owner_or_a_leader_guides(rank):
    refused(
        opened("guided"),
        lc.Guide(actor="w-li", actor_rank=rank, window="窗口", instructions="說明", today=SEP29),
        f"only the owner (w-zhang) or a leader above them can guide and close case {CID}",
        "actor",
        "not_allowed",
    )


def test_closing_without_a_due_date_is_on_time():
    s = lc.CaseState(case_id=CID, seq=3, state=lc.ANSWERED, owner="w-zhang", category="cannot")
    _, events = step(
        s,
        lc.Close(
            actor="w-zhang", actor_rank=CLERK, outcome="resolved", explanation="已辦", today=date(2027, 1, 4)
        ),
    )
    assert events[0].data.on_time is True


def test_closing_an_answered_case_records_outcome_explanation_and_punctuality():
    s = opened("cannot")
    s, _ = step(s, answer(C1, "chengguan", "cannot", legal_basis="條例"))
    s, _ = step(s, lc.ConcludeReview(actor="w-zhang", department="chengguan", outcome="upheld", note="維持"))
    s, events = step(
        s,
        lc.Close(actor="w-zhang", actor_rank=CLERK, outcome="cannot", explanation="已說明依據", today=OCT8),
        at(10, 8, 17),
    )
    assert events == [
        lc.NewEvent(
            "w-zhang",
            ev.CaseClosed(outcome="cannot", explanation="已說明依據", closed_by="w-zhang", on_time=True),
        )
    ]
    assert s.closing == {
        "outcome": "cannot",
        "explanation": "已說明依據",
        "closed_by": "w-zhang",
        "on_time": True,
        "at": "2026-10-08T17:00:00+08:00",
    }
    assert s.state == lc.CLOSED
    late = lc.decide(
        lc.CaseState(case_id=CID, seq=5, state=lc.ANSWERED, owner="w-zhang", due_date=OCT8),
        lc.Close(actor="w-zhang", actor_rank=CLERK, outcome="cannot", explanation="已說明依據", today=OCT9),
    )
    assert late[0].data.on_time is False


@pytest.mark.parametrize("rank", [CLERK, SECTION_HEAD])
def test_only_the_owner_or_a_leader_closes(rank):
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "resolved"))
    refused(
        s,
        lc.Close(actor="w-li", actor_rank=rank, outcome="resolved", explanation="已辦", today=SEP29),
        f"only the owner (w-zhang) or a leader above them can close case {CID}",
        "actor",
        "not_allowed",
    )


def test_a_leader_closes_a_case_they_do_not_own():
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "resolved"))
    _, events = step(
        s,
        lc.Close(actor="leader-gao", actor_rank=LEADER, outcome="resolved", explanation="已辦", today=SEP29),
    )
    assert events[0].data.closed_by == "leader-gao"


def test_a_coordinating_case_closes_only_as_withdrawn_naming_who_still_owes_an_answer():
    s = opened("hard", ("scjg", "chengguan", "renshe"))
    s, _ = step(s, answer(C3, "renshe", "resolved"))
    refused(
        s,
        lc.Close(actor="w-zhang", actor_rank=CLERK, outcome="resolved", explanation="已辦", today=OCT9),
        f"case {CID} is coordinating and still waits for scjg, chengguan: close it after every department "
        "answered, or with outcome withdrawn if the applicant withdrew",
        "outcome",
        "not_allowed",
    )
    s, _ = step(
        s,
        lc.RequestExtension(actor="w-zhang", working_days=1, reason="r", today=OCT9, proposed_due_date=OCT12),
    )
    s, events = step(
        s,
        lc.Close(
            actor="w-zhang", actor_rank=CLERK, outcome="withdrawn", explanation="申請人撤回", today=OCT9
        ),
        at(10, 9),
    )
    assert events == [
        lc.NewEvent(
            "w-zhang",
            ev.CaseClosed(outcome="withdrawn", explanation="申請人撤回", closed_by="w-zhang", on_time=True),
        )
    ]
    assert (s.state, s.pending_extension) == (lc.CLOSED, None)


# --- evaluation (好差評) and reopening (重辦) -----------------------------------------------------------------


def closed_case(departments: tuple[str, ...] = ("chengguan",)) -> lc.CaseState:
    s = opened("cannot", departments)
    for i, dept in enumerate(departments, start=1):
        s, _ = step(s, answer(f"{CID}-c{i}", dept, "resolved"))
    s, _ = step(
        s,
        lc.Close(actor="w-zhang", actor_rank=CLERK, outcome="resolved", explanation="已辦結", today=OCT8),
        at(10, 8),
    )
    return s


def test_a_good_rating_ends_the_case():
    s, events = step(
        closed_case(),
        lc.Evaluate(
            actor="w-zhang",
            level=Satisfaction.SATISFIED,
            comment="滿意",
            department_at_fault=None,
            working_days=3,
            due_date=OCT14,
        ),
        at(10, 9),
    )
    assert events == [
        lc.NewEvent(
            "w-zhang",
            ev.CaseEvaluated(level="satisfied", rating="good", comment="滿意", department_at_fault=None),
        )
    ]
    assert s.state == lc.EVALUATED
    assert s.evaluation == {
        "level": "satisfied",
        "rating": "good",
        "comment": "滿意",
        "department_at_fault": None,
    }


def test_a_bad_rating_blamed_on_no_department_ends_the_case():
    s, events = step(
        closed_case(),
        lc.Evaluate(
            actor="w-zhang",
            level=Satisfaction.DISSATISFIED,
            comment="排隊太久",
            department_at_fault=None,
            working_days=3,
            due_date=OCT14,
        ),
    )
    assert [e.type for e in events] == ["case.evaluated"]
    assert s.state == lc.EVALUATED and s.round == 1


def test_a_department_at_fault_goes_only_with_a_bad_rating():
    refused(
        closed_case(),
        lc.Evaluate(
            actor="w-zhang",
            level=Satisfaction.SATISFIED,
            comment="",
            department_at_fault="chengguan",
            working_days=3,
            due_date=OCT14,
        ),
        "department_at_fault goes only with a bad rating",
        "department_at_fault",
        "not_allowed",
    )


def test_a_department_at_fault_must_have_been_asked():
    refused(
        closed_case(("scjg", "chengguan")),
        lc.Evaluate(
            actor="w-zhang",
            level=Satisfaction.DISSATISFIED,
            comment="",
            department_at_fault="renshe",
            working_days=3,
            due_date=OCT14,
        ),
        f"department_at_fault 'renshe' was not asked in case {CID}; asked: scjg, chengguan",
        "department_at_fault",
        "not_allowed",
    )
    guided, _ = step(
        opened("guided"),
        lc.Guide(actor="w-zhang", actor_rank=CLERK, window="窗口", instructions="說明", today=SEP29),
    )
    refused(
        guided,
        lc.Evaluate(
            actor="w-zhang",
            level=Satisfaction.DISSATISFIED,
            comment="",
            department_at_fault="scjg",
            working_days=3,
            due_date=OCT14,
        ),
        f"department_at_fault 'scjg' was not asked in case {CID}; asked: none",
        "department_at_fault",
        "not_allowed",
    )


def test_a_bad_rating_blamed_on_a_department_reopens_the_case_with_a_new_round_for_it():
    s = closed_case(("scjg", "chengguan"))
    s, events = step(
        s,
        lc.Evaluate(
            actor="w-zhang",
            level=Satisfaction.DISSATISFIED,
            comment="答非所問",
            department_at_fault="chengguan",
            working_days=3,
            due_date=OCT14,
        ),
        at(10, 9),
    )
    assert events == [
        lc.NewEvent(
            "w-zhang",
            ev.CaseEvaluated(
                level="dissatisfied", rating="bad", comment="答非所問", department_at_fault="chengguan"
            ),
        ),
        lc.NewEvent(
            "w-zhang",
            ev.CaseReopened(
                reason="差評歸責 chengguan: 答非所問",
                departments=["chengguan"],
                round=2,
                working_days=3,
                due_date=OCT14,
            ),
        ),
        requested(C3, "chengguan", Q_CANNOT, OCT14, round_=2),
    ]
    assert (s.state, s.round, s.working_days, s.due_date, s.closing, s.resolution) == (
        lc.COORDINATING,
        2,
        3,
        OCT14,
        None,
        None,
    )
    assert s.evaluation == {
        "level": "dissatisfied",
        "rating": "bad",
        "comment": "答非所問",
        "department_at_fault": "chengguan",
    }
    assert [c.request_id for c in s.current()] == [C3]
    assert s.coordinations[C3] == coordination(
        C3, "chengguan", Q_CANNOT, OCT14, round=2, requested_at=at(10, 9)
    )


def test_the_reopening_reason_from_a_long_comment_is_cut_at_200_characters():
    _, events = step(
        closed_case(),
        lc.Evaluate(
            actor="w-zhang",
            level=Satisfaction.DISSATISFIED,
            comment="差" * 300,
            department_at_fault="chengguan",
            working_days=3,
            due_date=OCT14,
        ),
    )
    # "差評歸責 chengguan: " is 16 characters
    assert events[1].data.reason == "差評歸責 chengguan: " + "差" * 184
    assert len(events[1].data.reason) == 200


@pytest.mark.parametrize("rank", [CLERK, SECTION_HEAD])
def test_only_a_leader_orders_a_reopening(rank):
    refused(
        closed_case(),
        lc.Reopen(actor="w-zhang", actor_rank=rank, reason="重辦", working_days=3, due_date=OCT14),
        "only a leader can order a case reopened (重辦)",
        "actor",
        "not_allowed",
    )


def test_a_guided_case_is_not_reopened():
    guided, _ = step(
        opened("guided"),
        lc.Guide(actor="w-zhang", actor_rank=CLERK, window="窗口", instructions="說明", today=SEP29),
    )
    refused(
        guided,
        lc.Reopen(actor="leader-gao", actor_rank=LEADER, reason="重辦", working_days=3, due_date=OCT14),
        f"case {CID} was guided, not coordinated: open a new case instead",
        None,
        "not_allowed",
    )


def test_a_leaders_reopening_asks_every_department_again_and_resets_the_round():
    s = closed_case(("scjg", "chengguan"))
    s, _ = step(
        s,
        lc.Evaluate(
            actor="w-zhang",
            level=Satisfaction.SATISFIED,
            comment="",
            department_at_fault=None,
            working_days=3,
            due_date=OCT14,
        ),
        at(10, 9),
    )
    s, events = step(
        s,
        lc.Reopen(actor="director-ma", actor_rank=3, reason="督查發現問題", working_days=3, due_date=OCT14),
        at(10, 9, 10),
    )
    assert events == [
        lc.NewEvent(
            "director-ma",
            ev.CaseReopened(
                reason="督查發現問題",
                departments=["scjg", "chengguan"],
                round=2,
                working_days=3,
                due_date=OCT14,
            ),
        ),
        requested(C3, "scjg", Q_CANNOT, OCT14, round_=2),
        requested(C4, "chengguan", Q_CANNOT, OCT14, round_=2),
    ]
    s, events = step(s, answer(C3, "scjg", "resolved"))
    assert [e.type for e in events] == ["coordination.replied"]
    s, events = step(s, answer(C4, "chengguan", "resolved"))
    assert events[-1] == resolved(
        "resolved", "scjg: resolved: 答覆; chengguan: resolved: 答覆", ["scjg", "chengguan"]
    )
    s, _ = step(
        s,
        lc.Close(actor="w-zhang", actor_rank=CLERK, outcome="resolved", explanation="已辦結", today=OCT14),
        at(10, 14),
    )
    _, events = step(
        s,
        lc.Reopen(
            actor="leader-gao",
            actor_rank=LEADER,
            reason="再次重辦",
            working_days=3,
            due_date=date(2026, 10, 19),
        ),
    )
    assert events[0].data.round == 3
    assert [e.data.request_id for e in events[1:]] == [f"{CID}-c5", f"{CID}-c6"]


# --- 不給辦 accountability ---------------------------------------------------------------------------------


def accountability(staff: str = "chengguan-clerk-07") -> ev.AccountabilityRecorded:
    return ev.AccountabilityRecorded(
        staff=staff,
        section="戶外廣告科",
        leader_in_charge="分管副局長",
        finding="以領導不在為由推諉",
        measures=["interview", "criticism"],
        fault_tolerance=False,
    )


def test_accountability_is_recorded_for_a_refused_case_in_order():
    s = opened("refused")
    s, events = step(
        s, lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=accountability()), at(9, 29)
    )
    assert events == [lc.NewEvent("leader-gao", accountability())]
    s, _ = step(
        s,
        lc.RecordAccountability(
            actor="leader-gao", actor_rank=LEADER, data=accountability("chengguan-clerk-08")
        ),
        at(9, 30),
    )
    assert s.accountability == (
        {
            "staff": "chengguan-clerk-07",
            "section": "戶外廣告科",
            "leader_in_charge": "分管副局長",
            "finding": "以領導不在為由推諉",
            "measures": ["interview", "criticism"],
            "fault_tolerance": False,
            "at": "2026-09-29T09:00:00+08:00",
        },
        {
            "staff": "chengguan-clerk-08",
            "section": "戶外廣告科",
            "leader_in_charge": "分管副局長",
            "finding": "以領導不在為由推諉",
            "measures": ["interview", "criticism"],
            "fault_tolerance": False,
            "at": "2026-09-30T09:00:00+08:00",
        },
    )


def test_accountability_is_only_for_refused_cases():
    refused(
        opened("cannot"),
        lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=accountability()),
        f"accountability is recorded for 不給辦 (refused) cases; case {CID} is cannot",
        "case_id",
        "not_allowed",
    )


# --- evolve: folding stored events -----------------------------------------------------------------------


def test_an_event_with_no_rule_is_a_type_error_naming_its_type():
    s = opened("cannot")
    not_an_event = CoordinationReply(
        request_id=C1, department="chengguan", outcome="resolved", message="m", handler="h"
    )
    with pytest.raises(TypeError) as exc:
        lc.evolve(s, "case.unheard_of", not_an_event, meta(4))
    assert str(exc.value) == "evolve: no rule for case.unheard_of"
    # a decided event takes its type from its payload's model: one that is no event has none
    with pytest.raises(ev.EventSchemaError) as schema_exc:
        lc.evolve_many(s, [lc.NewEvent("chengguan", not_an_event)], meta(4))
    assert str(schema_exc.value) == "CoordinationReply is not an event payload model"


def test_every_event_type_has_its_rule_and_every_command_its_function():
    from typing import get_args

    from unstuck.lifecycle.decide import _DECIDERS
    from unstuck.lifecycle.evolve import _RULES

    assert set(_RULES) == set(ev.EVENT_TYPES.values())
    assert set(_DECIDERS) == set(get_args(lc.Command))
    assert [lc.NewEvent("w", model.model_construct()).type for model in ev.EVENT_TYPES.values()] == list(
        ev.EVENT_TYPES
    )


def test_evolve_many_folds_events_in_order_under_one_meta():
    s = lc.evolve_many(
        opened(None),
        [
            lc.NewEvent(
                "w-zhang",
                ev.OwnerAssigned(owner="w-li", previous_owner="w-zhang", reason="輪休"),
            ),
            lc.NewEvent(
                "w-li",
                ev.OwnerAssigned(owner="w-wang", previous_owner="w-li", reason="輪休"),
            ),
        ],
        lc.EventMeta(seq=7, at=at(9, 29), hash="h7"),
    )
    assert (s.owner, s.seq, s.head_hash, s.last_event_at, s.opened_at) == ("w-wang", 7, "h7", at(9, 29), T0)


def test_the_look_ahead_meta_repeats_the_states_position():
    s = opened("cannot")
    assert lc._placeholder_meta(s) == lc.EventMeta(seq=3, at=T0, hash="h3")
    assert lc._placeholder_meta(lc.CaseState(case_id=CID)) == lc.EventMeta(seq=0, at=datetime.min, hash="")


def test_replacing_an_unknown_state_field_is_a_type_error_naming_the_first():
    with pytest.raises(TypeError) as exc:
        lc._replace_state(lc.CaseState(case_id=CID), zeta=1, alpha=2)
    assert str(exc.value) == "CaseState has no field 'alpha'"
    assert lc._replace_state(lc.CaseState(case_id=CID), seq=2) == lc.CaseState(case_id=CID, seq=2)


def test_events_for_a_request_the_case_never_made_leave_the_coordinations_alone():
    s = opened("cannot")
    for n, (event_type, data) in enumerate(
        [
            (
                "coordination.retried",
                ev.CoordinationRetried(request_id=C4, department="scjg", attempt=1, reason="timeout"),
            ),
            (
                "coordination.stalled",
                ev.CoordinationStalled(request_id=C4, department="scjg", attempts=3, last_reason="timeout"),
            ),
            (
                "coordination.replied",
                ev.CoordinationReplied(
                    request_id=C4, department="scjg", outcome="resolved", message="m", handler="h"
                ),
            ),
        ],
        start=4,
    ):
        after = lc.evolve(s, event_type, data, meta(n, at(9, 29)))
        assert after == lc._replace_state(s, seq=n, head_hash=f"h{n}", last_event_at=at(9, 29))


def test_the_intakes_few_valued_strings_are_shared_between_cases():
    s = opened("cannot")
    for key in ("channel", "matter", "matter_title", "window", "department", "category", "owner"):
        assert s.intake[key] is sys.intern(s.intake[key]), key
    assert s.intake["applicant"]["kind"] is sys.intern("enterprise")
    assert s.duty_leader is sys.intern("leader-gao") and s.mode is sys.intern("coordinate")
    assert s.coordinations[C1].department is sys.intern("chengguan")
    assert opened(None).intake["category"] is None


def test_the_vocabulary_of_an_intake_without_an_applicant_is_still_shared():
    intake_dict = {"matter": "".join(["shop", "_sign"]), "facts": {}}
    out = lc._shared_vocabulary(intake_dict)
    assert out == {"matter": "shop_sign", "facts": {}} and out["matter"] is sys.intern("shop_sign")
    assert lc._shared_vocabulary({"applicant": {"name": "趙"}, "owner": None}) == {
        "applicant": {"name": "趙"},
        "owner": None,
    }


def test_a_retry_records_the_failed_attempt_and_its_reason():
    s = lc.evolve(
        opened("cannot"),
        "coordination.retried",
        ev.CoordinationRetried(
            request_id=C1, department="chengguan", attempt=2, reason="invalid_reply", detail="x"
        ),
        meta(4),
    )
    assert s.coordinations[C1] == coordination(C1, "chengguan", attempts=2, last_reason="invalid_reply")


def test_a_reply_without_attempt_counts_as_the_first():
    s = lc.evolve(
        opened("cannot"),
        "coordination.replied",
        ev.CoordinationReplied(
            request_id=C1, department="chengguan", outcome="resolved", message="好", handler="h"
        ),
        meta(4),
    )
    assert s.coordinations[C1] == coordination(
        C1, "chengguan", status="answered", attempts=1, outcome="resolved", message="好"
    )


def test_a_reclassification_stored_while_in_intake_leaves_the_state_in_intake():
    s = lc.evolve(
        opened(None),
        "case.reclassified",
        ev.CaseReclassified(previous="cannot", category="hard", reason="r", working_days=5, due_date=OCT10),
        meta(2),
    )
    assert (s.state, s.category, s.mode, s.working_days, s.due_date) == (
        lc.INTAKE,
        "hard",
        "coordinate",
        5,
        OCT10,
    )


def test_an_escalation_while_a_ruling_waits_keeps_the_ruling_waiting():
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    s, _ = step(s, lc.Escalate(actor="w-zhang", department="scjg", level=1, note="", chain={}))
    assert s.bounce_ruling_needed is True
    s, _ = step(s, tick(OCT9, 0))
    assert s.bounce_ruling_needed is True and s.overdue is True


def test_only_a_bounce_addressed_to_the_duty_leader_waits_for_a_ruling():
    s = opened("cannot")
    for reason, audience in [("bounced", "chengguan_section_head"), ("direct", "duty_leader")]:
        after = lc.evolve(
            s,
            "case.escalated",
            ev.CaseEscalated(
                department="chengguan",
                level=2,
                role="leader_in_charge",
                target="t",
                reason=reason,
                audience=audience,
            ),
            meta(4),
        )
        assert after.bounce_ruling_needed is False, (reason, audience)
    after = lc.evolve(
        s,
        "case.escalated",
        ev.CaseEscalated(
            department="chengguan",
            level=2,
            role="leader_in_charge",
            target="t",
            reason="bounced",
            audience="duty_leader",
        ),
        meta(4),
    )
    assert after.bounce_ruling_needed is True


def test_an_extension_to_an_earlier_date_keeps_an_overdue_case_overdue():
    s = lc.CaseState(
        case_id=CID, seq=8, state=lc.COORDINATING, due_date=OCT12, overdue=True, warned=frozenset({1, 0})
    )
    after = lc.evolve(
        s,
        "case.extended",
        ev.CaseExtended(working_days=1, due_date=OCT9, approved_by="leader-gao", total_extension_days=1),
        meta(9),
    )
    assert (after.due_date, after.overdue, after.warned, after.extension_days) == (OCT9, True, frozenset(), 1)
    later = lc.evolve(
        s,
        "case.extended",
        ev.CaseExtended(working_days=1, due_date=OCT13, approved_by="leader-gao", total_extension_days=1),
        meta(9),
    )
    assert later.overdue is False
    same = lc.evolve(
        s,
        "case.extended",
        ev.CaseExtended(working_days=1, due_date=OCT12, approved_by="leader-gao", total_extension_days=1),
        meta(9),
    )
    assert same.overdue is False
    no_due = lc.evolve(
        lc._replace_state(s, due_date=None),
        "case.extended",
        ev.CaseExtended(working_days=1, due_date=OCT12, approved_by="leader-gao", total_extension_days=1),
        meta(9),
    )
    assert (no_due.overdue, no_due.due_date) == (False, OCT12)


# --- scripted cases: stored events folded one by one, the state written out by hand ----------------------


def fold(script: list[tuple[str, object, datetime]]) -> list[lc.CaseState]:
    """Every state along the script: states[n] is the state after the n-th event (states[0]: nothing)."""
    states = [lc.CaseState(case_id=CID)]
    for seq, (event_type, data, when) in enumerate(script, start=1):
        states.append(lc.evolve(states[-1], event_type, data, meta(seq, when)))
    return states


def test_a_hard_case_with_a_stall_an_extension_a_review_and_a_reopening():
    script = [
        ("case.opened", ev.CaseOpened.model_validate(intake_json("hard")), T0),
        (
            "case.classified",
            ev.CaseClassified(
                category="hard",
                reason="新業態",
                mode="coordinate",
                working_days=5,
                due_date=OCT10,
                duty_leader="leader-gao",
                departments=["scjg", "chengguan"],
            ),
            T0,
        ),
        (
            "coordination.requested",
            ev.CoordinationRequested(request_id=C1, department="scjg", question=Q_HARD, deadline=OCT10),
            T0,
        ),
        (
            "coordination.requested",
            ev.CoordinationRequested(request_id=C2, department="chengguan", question=Q_HARD, deadline=OCT10),
            T0,
        ),
        (
            "coordination.retried",
            ev.CoordinationRetried(request_id=C2, department="chengguan", attempt=1, reason="timeout"),
            at(9, 28, 9, 1),
        ),
        (
            "coordination.replied",
            ev.CoordinationReplied(
                request_id=C1,
                department="scjg",
                outcome="accepted",
                message="已受理",
                handler="登記科",
                expected_date=OCT9,
            ),
            at(9, 28, 10),
        ),
        (
            "coordination.stalled",
            ev.CoordinationStalled(request_id=C2, department="chengguan", attempts=3, last_reason="timeout"),
            at(9, 28, 9, 5),
        ),
        (
            "case.escalated",
            ev.CaseEscalated(
                department="chengguan",
                level=1,
                role="section_head",
                target="市容科科長",
                reason="stalled",
                audience="chengguan_section_head",
            ),
            at(9, 28, 9, 5),
        ),
        (
            "case.escalated",
            ev.CaseEscalated(
                department="chengguan",
                level=2,
                role="leader_in_charge",
                target="分管副局長",
                reason="stalled",
                audience="chengguan_leader_in_charge",
            ),
            at(9, 29, 9, 5),
        ),
        ("case.deadline_warned", ev.DeadlineWarned(due_date=OCT10, working_days_left=1), at(10, 9)),
        (
            "case.extension_requested",
            ev.ExtensionRequested(working_days=3, reason="等省局回函", proposed_due_date=OCT14),
            at(10, 9, 10),
        ),
        (
            "case.extended",
            ev.CaseExtended(working_days=3, due_date=OCT14, approved_by="leader-gao", total_extension_days=3),
            at(10, 9, 11),
        ),
    ]
    states = fold(script)
    assert (states[1].state, states[2].state, states[2].coordinations) == (lc.INTAKE, lc.COORDINATING, {})
    assert states[12] == lc.CaseState(
        case_id=CID,
        seq=12,
        head_hash="h12",
        state=lc.COORDINATING,
        opened_at=T0,
        last_event_at=at(10, 9, 11),
        intake=intake_json("hard"),
        category="hard",
        mode="coordinate",
        owner="w-zhang",
        duty_leader="leader-gao",
        working_days=5,
        due_date=OCT14,
        due_basis=(T0, 8),
        extension_days=3,
        pending_extension=None,
        overdue=False,
        warned=frozenset(),
        escalations={"chengguan": (2, at(9, 29, 9, 5))},
        coordinations={
            C1: coordination(
                C1, "scjg", Q_HARD, OCT10, status="answered", attempts=1, outcome="accepted", message="已受理"
            ),
            C2: coordination(
                C2, "chengguan", Q_HARD, OCT10, status="stalled", attempts=3, last_reason="timeout"
            ),
        },
    )
    assert states[11].pending_extension == {
        "working_days": 3,
        "reason": "等省局回函",
        "proposed_due_date": OCT14,
        "requested_by": "",  # the script's events name no actor
    }
    assert states[11].warned == frozenset({1}) and states[11].due_date == OCT10
    script += [
        (
            "coordination.replied",
            ev.CoordinationReplied(
                request_id=C2,
                department="chengguan",
                outcome="resolved",
                message="已同意設置",
                handler="市容科",
                attempt=4,
            ),
            at(10, 12, 10),
        ),
        (
            "coordination.replied",
            ev.CoordinationReplied(
                request_id=C1,
                department="scjg",
                outcome="cannot",
                message="不予登記",
                handler="登記科",
                legal_basis="名稱登記管理規定第十一條",
                recorded_by="w-li",
            ),
            at(10, 12, 11),
        ),
        (
            "case.review_requested",
            ev.ReviewRequested(
                department="scjg",
                legal_basis="名稱登記管理規定第十一條",
                higher_department="省市場監管局",
                notify_by=date(2026, 10, 15),
            ),
            at(10, 12, 11),
        ),
        (
            "case.resolved",
            ev.CaseResolved(
                outcome="resolved",
                summary="scjg: cannot: 不予登記; chengguan: resolved: 已同意設置",
                departments=["scjg", "chengguan"],
            ),
            at(10, 12, 11),
        ),
        (
            "case.closed",
            ev.CaseClosed(outcome="resolved", explanation="已向申請人說明", closed_by="w-li", on_time=True),
            at(10, 13, 15),
        ),
    ]
    states = fold(script)
    review = {
        "department": "scjg",
        "legal_basis": "名稱登記管理規定第十一條",
        "higher_department": "省市場監管局",
        "notify_by": "2026-10-15",
        # a review recorded before reviews were followed has no due date; 銷號 told the applicant
        "notified": True,
        "conclusion": None,
    }
    c1_final = coordination(
        C1,
        "scjg",
        Q_HARD,
        OCT10,
        status="answered",
        attempts=1,
        outcome="cannot",
        message="不予登記",
        legal_basis="名稱登記管理規定第十一條",
    )
    c2_final = coordination(
        C2,
        "chengguan",
        Q_HARD,
        OCT10,
        status="answered",
        attempts=4,
        outcome="resolved",
        message="已同意設置",
        last_reason="timeout",
    )
    assert states[16].state == lc.ANSWERED
    assert states[17] == lc.CaseState(
        case_id=CID,
        seq=17,
        head_hash="h17",
        state=lc.CLOSED,
        opened_at=T0,
        last_event_at=at(10, 13, 15),
        intake=intake_json("hard"),
        category="hard",
        mode="coordinate",
        owner="w-zhang",
        duty_leader="leader-gao",
        working_days=5,
        due_date=OCT14,
        due_basis=(T0, 8),
        extension_days=3,
        escalations={"chengguan": (2, at(9, 29, 9, 5))},
        coordinations={C1: c1_final, C2: c2_final},
        resolution={
            "outcome": "resolved",
            "summary": "scjg: cannot: 不予登記; chengguan: resolved: 已同意設置",
            "departments": ["scjg", "chengguan"],
        },
        closing={
            "outcome": "resolved",
            "explanation": "已向申請人說明",
            "closed_by": "w-li",
            "on_time": True,
            "at": "2026-10-13T15:00:00+08:00",
        },
        reviews=(review,),
    )
    script += [
        (
            "case.evaluated",
            ev.CaseEvaluated(
                level="dissatisfied", rating="bad", comment="答覆不清", department_at_fault="chengguan"
            ),
            at(10, 14),
        ),
        (
            "case.reopened",
            ev.CaseReopened(
                reason="差評歸責 chengguan: 答覆不清",
                departments=["chengguan"],
                round=2,
                working_days=5,
                due_date=date(2026, 10, 21),
            ),
            at(10, 14),
        ),
        (
            "coordination.requested",
            ev.CoordinationRequested(
                request_id=C3, department="chengguan", question=Q_HARD, deadline=date(2026, 10, 21), round=2
            ),
            at(10, 14),
        ),
    ]
    states = fold(script)
    assert states[18].state == lc.EVALUATED and states[18].closing == states[17].closing
    assert (states[19].state, states[19].round, states[19].closing, states[19].coordinations) == (
        lc.COORDINATING,
        2,
        None,
        {C1: c1_final, C2: c2_final},
    )
    assert states[20] == lc.CaseState(
        case_id=CID,
        seq=20,
        head_hash="h20",
        state=lc.COORDINATING,
        opened_at=T0,
        last_event_at=at(10, 14),
        intake=intake_json("hard"),
        category="hard",
        mode="coordinate",
        owner="w-zhang",
        duty_leader="leader-gao",
        working_days=5,
        due_date=date(2026, 10, 21),
        due_basis=(at(10, 14), 5),  # the second round counts from its reopening
        extension_days=3,
        escalations={},
        coordinations={
            C1: c1_final,
            C2: c2_final,
            C3: coordination(C3, "chengguan", Q_HARD, date(2026, 10, 21), round=2, requested_at=at(10, 14)),
        },
        round=2,
        evaluation={
            "level": "dissatisfied",
            "rating": "bad",
            "comment": "答覆不清",
            "department_at_fault": "chengguan",
        },
        reviews=(review,),
    )


def test_a_refused_case_handed_over_bounced_twice_ruled_overdue_closed_late_and_rated_good():
    bounce_note = "2 bounces; the duty leader rules which department handles it"
    script = [
        ("case.opened", ev.CaseOpened.model_validate(intake_json("refused")), T0),
        (
            "case.classified",
            ev.CaseClassified(
                category="refused",
                reason="態度推諉",
                mode="coordinate",
                working_days=1,
                due_date=SEP29,
                duty_leader="leader-gao",
                departments=["chengguan"],
            ),
            T0,
        ),
        (
            "coordination.requested",
            ev.CoordinationRequested(
                request_id=C1, department="chengguan", question=Q_REFUSED, deadline=SEP29
            ),
            T0,
        ),
        (
            "case.owner_assigned",
            ev.OwnerAssigned(owner="w-li", previous_owner="w-zhang", reason="輪休"),
            at(9, 28, 10),
        ),
        (
            "coordination.replied",
            ev.CoordinationReplied(
                request_id=C1,
                department="chengguan",
                outcome="not_ours",
                message="不屬本局",
                handler="窗口",
                belongs_to="renshe",
            ),
            at(9, 28, 11),
        ),
        (
            "coordination.requested",
            ev.CoordinationRequested(
                request_id=C2,
                department="renshe",
                question=Q_REFUSED,
                deadline=SEP29,
                rerouted_from="chengguan",
            ),
            at(9, 28, 11),
        ),
        (
            "coordination.replied",
            ev.CoordinationReplied(
                request_id=C2,
                department="renshe",
                outcome="not_ours",
                message="不屬人社",
                handler="窗口",
                belongs_to="chengguan",
            ),
            at(9, 28, 14),
        ),
        (
            "case.escalated",
            ev.CaseEscalated(
                department="renshe",
                level=2,
                role="leader_in_charge",
                target="leader-gao",
                reason="bounced",
                audience="duty_leader",
                note=bounce_note,
            ),
            at(9, 28, 14),
        ),
    ]
    states = fold(script)
    assert (states[7].bounces, states[7].bounce_ruling_needed, states[7].state) == (2, False, lc.COORDINATING)
    assert (states[8].bounces, states[8].bounce_ruling_needed) == (2, True)
    script += [
        (
            "case.bounce_ruled",
            ev.BounceRuled(department="chengguan", ruled_by="leader-gao", bounces=2),
            at(9, 28, 16),
        ),
        (
            "coordination.requested",
            ev.CoordinationRequested(
                request_id=C3, department="chengguan", question=Q_REFUSED, deadline=SEP29
            ),
            at(9, 28, 16),
        ),
        ("case.deadline_warned", ev.DeadlineWarned(due_date=SEP29, working_days_left=0), at(9, 29)),
        ("case.overdue", ev.CaseOverdue(due_date=SEP29), at(9, 30)),
        (
            "case.escalated",
            ev.CaseEscalated(
                department="chengguan",
                level=1,
                role="section_head",
                target="市容科科長",
                reason="overdue",
                audience="chengguan_section_head",
            ),
            at(9, 30),
        ),
        (
            "coordination.replied",
            ev.CoordinationReplied(
                request_id=C3,
                department="chengguan",
                outcome="resolved",
                message="已受理備案",
                handler="廣告科",
            ),
            at(9, 30, 10),
        ),
        (
            "case.resolved",
            ev.CaseResolved(
                outcome="resolved", summary="chengguan: resolved: 已受理備案", departments=["chengguan"]
            ),
            at(9, 30, 10),
        ),
        ("accountability.recorded", accountability(), at(9, 30, 11)),
        (
            "case.closed",
            ev.CaseClosed(outcome="resolved", explanation="已辦結並致歉", closed_by="w-li", on_time=False),
            at(9, 30, 15),
        ),
        ("case.evaluated", ev.CaseEvaluated(level="satisfied", rating="good", comment="終於辦成"), at(10, 8)),
    ]
    states = fold(script)
    assert states[18] == lc.CaseState(
        case_id=CID,
        seq=18,
        head_hash="h18",
        state=lc.EVALUATED,
        opened_at=T0,
        last_event_at=at(10, 8),
        intake=intake_json("refused"),
        category="refused",
        mode="coordinate",
        owner="w-li",
        duty_leader="leader-gao",
        working_days=1,
        due_date=SEP29,
        due_basis=(T0, 1),
        overdue=True,
        warned=frozenset({0}),
        escalations={"renshe": (2, at(9, 28, 14)), "chengguan": (1, at(9, 30))},
        coordinations={
            C1: coordination(
                C1,
                "chengguan",
                Q_REFUSED,
                SEP29,
                status="bounced",
                attempts=1,
                outcome="not_ours",
                message="不屬本局",
            ),
            C2: coordination(
                C2,
                "renshe",
                Q_REFUSED,
                SEP29,
                status="bounced",
                attempts=1,
                outcome="not_ours",
                message="不屬人社",
                rerouted_from="chengguan",
                requested_at=at(9, 28, 11),
            ),
            C3: coordination(
                C3,
                "chengguan",
                Q_REFUSED,
                SEP29,
                status="answered",
                attempts=1,
                outcome="resolved",
                message="已受理備案",
                requested_at=at(9, 28, 16),
            ),
        },
        bounces=2,
        bounce_ruling_needed=False,
        ruled_department="chengguan",
        resolution={
            "outcome": "resolved",
            "summary": "chengguan: resolved: 已受理備案",
            "departments": ["chengguan"],
        },
        closing={
            "outcome": "resolved",
            "explanation": "已辦結並致歉",
            "closed_by": "w-li",
            "on_time": False,
            "at": "2026-09-30T15:00:00+08:00",
        },
        evaluation={
            "level": "satisfied",
            "rating": "good",
            "comment": "終於辦成",
            "department_at_fault": None,
        },
        accountability=(
            {
                "staff": "chengguan-clerk-07",
                "section": "戶外廣告科",
                "leader_in_charge": "分管副局長",
                "finding": "以領導不在為由推諉",
                "measures": ["interview", "criticism"],
                "fault_tolerance": False,
                "at": "2026-09-30T11:00:00+08:00",
            },
        ),
    )


def test_a_guided_case_closed_at_the_regular_window():
    script = [
        ("case.opened", ev.CaseOpened.model_validate(intake_json("guided")), T0),
        (
            "case.classified",
            ev.CaseClassified(
                category="guided", reason="材料不全", mode="guide", working_days=1, due_date=SEP29
            ),
            T0,
        ),
        (
            "case.guided",
            ev.CaseGuided(window="城管局戶外廣告審批窗口", instructions="補交外立面效果圖"),
            at(9, 28, 10),
        ),
        (
            "case.closed",
            ev.CaseClosed(
                outcome="guided", explanation="補交外立面效果圖", closed_by="w-zhang", on_time=True
            ),
            at(9, 28, 10),
        ),
    ]
    assert fold(script)[4] == lc.CaseState(
        case_id=CID,
        seq=4,
        head_hash="h4",
        state=lc.CLOSED,
        opened_at=T0,
        last_event_at=at(9, 28, 10),
        intake=intake_json("guided"),
        category="guided",
        mode="guide",
        owner="w-zhang",
        working_days=1,
        due_date=SEP29,
        due_basis=(T0, 1),
        resolution={"outcome": "guided", "window": "城管局戶外廣告審批窗口"},
        closing={
            "outcome": "guided",
            "explanation": "補交外立面效果圖",
            "closed_by": "w-zhang",
            "on_time": True,
            "at": "2026-09-28T10:00:00+08:00",
        },
    )


def test_a_reopening_clears_the_closed_rounds_overdue_warnings_escalations_bounces_and_ruling():
    s = opened("cannot")
    s, _ = step(s, answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1), at(9, 29))
    s, _ = step(s, lc.RuleBounce(actor="leader-gao", actor_rank=LEADER, department="scjg"), at(9, 30))
    s, _ = step(s, tick(OCT8, 0), at(10, 8))  # warning
    s, _ = step(s, tick(OCT9, 0), at(10, 9))  # overdue: scjg owes the answer
    s, _ = step(s, answer(C2, "scjg", "resolved"), at(10, 9, 10))
    s, events = step(
        s,
        lc.Close(actor="w-zhang", actor_rank=CLERK, outcome="resolved", explanation="已辦結", today=OCT9),
        at(10, 9, 11),
    )
    assert events[0].data.on_time is False
    assert (s.state, s.overdue, s.warned, s.bounces, s.ruled_department, s.seq) == (
        lc.CLOSED,
        True,
        frozenset({1}),
        1,
        "scjg",
        13,
    )
    assert s.escalations == {"chengguan": (2, at(9, 29)), "scjg": (1, at(10, 9))}
    # 5 working days from Fri 9 Oct: Sat 10 (make-up day), Mon 12, Tue 13, Wed 14, Thu 15
    oct15 = date(2026, 10, 15)
    s, events = step(
        s,
        lc.Reopen(
            actor="leader-gao", actor_rank=LEADER, reason="督查發現問題", working_days=5, due_date=oct15
        ),
        at(10, 9, 14),
    )
    assert events == [
        lc.NewEvent(
            "leader-gao",
            ev.CaseReopened(
                reason="督查發現問題",
                departments=["chengguan", "scjg"],
                round=2,
                working_days=5,
                due_date=oct15,
            ),
        ),
        requested(C3, "chengguan", Q_CANNOT, oct15, round_=2),
        requested(C4, "scjg", Q_CANNOT, oct15, round_=2),
    ]
    assert s == lc.CaseState(
        case_id=CID,
        seq=16,
        head_hash="h16",
        state=lc.COORDINATING,
        opened_at=T0,
        last_event_at=at(10, 9, 14),
        intake=intake_json("cannot"),
        category="cannot",
        mode="coordinate",
        owner="w-zhang",
        duty_leader="leader-gao",
        working_days=5,
        due_date=oct15,
        due_basis=(at(10, 9, 14), 5),
        overdue=False,
        warned=frozenset(),
        escalations={},
        coordinations={
            C1: coordination(
                C1, "chengguan", status="bounced", attempts=1, outcome="not_ours", message="答覆"
            ),
            C2: coordination(
                C2,
                "scjg",
                status="answered",
                attempts=1,
                outcome="resolved",
                message="答覆",
                requested_at=at(9, 30),
            ),
            C3: coordination(C3, "chengguan", Q_CANNOT, oct15, round=2, requested_at=at(10, 9, 14)),
            C4: coordination(C4, "scjg", Q_CANNOT, oct15, round=2, requested_at=at(10, 9, 14)),
        },
        round=2,
        bounces=0,
        bounce_ruling_needed=False,
        ruled_department=None,
        resolution=None,
        closing=None,
    )


def test_a_case_withdrawn_while_a_ruling_waited_is_reopened_without_it():
    s, _ = step(opened("cannot"), answer(C1, "chengguan", "not_ours", belongs_to="scjg", max_bounces=1))
    s, _ = step(
        s,
        lc.Close(
            actor="w-zhang", actor_rank=CLERK, outcome="withdrawn", explanation="申請人撤回", today=SEP29
        ),
    )
    assert (s.state, s.bounce_ruling_needed, s.bounces) == (lc.CLOSED, True, 1)
    s = lc.evolve(
        s,
        "case.reopened",
        ev.CaseReopened(
            reason="申請人再次申請", departments=["chengguan"], round=2, working_days=3, due_date=OCT13
        ),
        meta(7, at(10, 8)),
    )
    assert (
        s.state,
        s.round,
        s.working_days,
        s.due_date,
        s.bounce_ruling_needed,
        s.bounces,
        s.escalations,
    ) == (
        lc.COORDINATING,
        2,
        3,
        OCT13,
        False,
        0,
        {},
    )


def test_a_classification_alone_sets_the_state_its_mode_names():
    s = opened(None)
    coordinate = lc.evolve(
        s,
        "case.classified",
        ev.CaseClassified(
            category="hard",
            reason="r",
            mode="coordinate",
            working_days=5,
            due_date=OCT10,
            departments=["scjg"],
        ),
        meta(2),
    )
    assert (coordinate.state, coordinate.coordinations, coordinate.duty_leader) == (lc.COORDINATING, {}, None)
    guide = lc.evolve(
        s,
        "case.classified",
        ev.CaseClassified(category="guided", reason="r", mode="guide", working_days=1, due_date=SEP29),
        meta(2),
    )
    assert guide.state == lc.GUIDING


def test_a_reclassification_alone_moves_a_guided_case_to_coordinating():
    s = opened("guided")
    after = lc.evolve(
        s,
        "case.reclassified",
        ev.CaseReclassified(previous="guided", category="hard", reason="r", working_days=5, due_date=OCT10),
        meta(3),
    )
    assert (after.state, after.mode, after.coordinations) == (lc.COORDINATING, "coordinate", {})
    refusal = lc.evolve(
        s,
        "case.reclassified",
        ev.CaseReclassified(
            previous="guided", category="refused", reason="r", working_days=1, due_date=SEP29
        ),
        meta(3),
    )
    assert (refusal.state, refusal.category) == (lc.COORDINATING, "refused")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (lc.INTAKE, lc.COORDINATING),
        (lc.GUIDING, lc.COORDINATING),
        (lc.COORDINATING, lc.COORDINATING),
        (lc.ANSWERED, lc.COORDINATING),
        (lc.CLOSED, lc.COORDINATING),
        (lc.EVALUATED, lc.COORDINATING),
        ("", ""),  # a request stored before any case.opened: the auditor's findings name it
    ],
)
def test_a_stored_request_puts_an_open_case_back_to_coordinating(before, after):
    s = lc.CaseState(case_id=CID, seq=5, state=before)
    folded = lc.evolve(
        s,
        "coordination.requested",
        ev.CoordinationRequested(request_id=C1, department="scjg", question="問", deadline=OCT8),
        meta(6),
    )
    assert folded.state == after
    assert folded.coordinations == {C1: coordination(C1, "scjg", "問", OCT8)}


def test_the_interned_applicant_kind_is_shared():
    fresh = "".join(["enter", "prise"])
    assert fresh is not sys.intern("enterprise")
    out = lc._shared_vocabulary({"applicant": {"kind": fresh, "name": "店"}})
    assert out == {"applicant": {"kind": "enterprise", "name": "店"}}
    assert out["applicant"]["kind"] is sys.intern("enterprise")


def plain_json(value: object) -> bool:
    """Only the types JSON has: what a stored event's data holds, and what to_dict hands a reader."""
    if isinstance(value, dict):
        return all(type(k) is str and plain_json(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(plain_json(v) for v in value)
    return type(value) in (str, int, bool, float, type(None))


def test_the_resolution_closing_evaluation_reviews_and_accountability_are_kept_as_plain_json():
    s = opened("refused")
    s, _ = step(s, answer(C1, "chengguan", "cannot", legal_basis="條例"))
    s, _ = step(s, lc.RecordAccountability(actor="leader-gao", actor_rank=LEADER, data=accountability()))
    s, _ = step(s, lc.ConcludeReview(actor="w-zhang", department="chengguan", outcome="upheld", note="維持"))
    s, _ = step(
        s, lc.Close(actor="w-zhang", actor_rank=CLERK, outcome="cannot", explanation="已說明", today=SEP29)
    )
    s, _ = step(
        s,
        lc.Evaluate(
            actor="w-zhang",
            level=Satisfaction.DISSATISFIED,
            comment="不滿",
            department_at_fault=None,
            working_days=1,
            due_date=SEP30,
        ),
    )
    for part in (s.resolution, s.closing, s.evaluation, s.reviews, s.accountability, s.intake):
        assert part is not None and plain_json(part), part
    assert type(s.resolution["outcome"]) is str and s.resolution["outcome"] == "cannot"

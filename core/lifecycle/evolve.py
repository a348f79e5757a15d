"""``evolve(state, event_type, data, meta) -> state``: one stored event folded into the state, one
function per event type. Pure; replay and the live broker both use it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from unstuck.schemas import events as ev
from unstuck.schemas.common import Category, WireModel
from unstuck.schemas.coordination import Outcome

from .state import (
    ANSWERED,
    CLOSED,
    COORDINATING,
    EVALUATED,
    GUIDING,
    INTAKE,
    STATE_SETTERS,
    CaseState,
    Coordination,
    CoordinationStatus,
    EventMeta,
    NewEvent,
    replace_coordination,
)
from .state import replace_state as _replace_state

SHARED_INTAKE_FIELDS = ("channel", "matter", "matter_title", "window", "department", "category", "owner")
"""Intake fields from a small vocabulary (matters, windows, departments, staff): one copy for all cases."""


def evolve(state: CaseState, event_type: str, data: WireModel, meta: EventMeta) -> CaseState:
    """The state after one event. Pure; replay and the live broker both use it.

    The rules never read the event's position (seq, head hash, time of the last event); it is put
    into the state a rule returns, which is a new one not yet seen by anyone, so a state is copied
    once per event rather than twice. A rule that changes nothing returns the state it was given,
    and then the position goes into a copy.
    """
    rule = _RULES.get(type(data))
    if rule is None:
        raise TypeError(f"evolve: no rule for {event_type}")
    new = rule(state, data, meta)
    if new is state:
        return _replace_state(state, seq=meta.seq, head_hash=meta.hash, last_event_at=meta.at)
    _SET_SEQ(new, meta.seq)
    _SET_HEAD_HASH(new, meta.hash)
    _SET_LAST_EVENT_AT(new, meta.at)
    return new


_SET_SEQ, _SET_HEAD_HASH, _SET_LAST_EVENT_AT = (
    STATE_SETTERS["seq"],
    STATE_SETTERS["head_hash"],
    STATE_SETTERS["last_event_at"],
)


def evolve_many(state: CaseState, events: Iterable[NewEvent], meta: EventMeta) -> CaseState:
    """Fold decided events into a state (to look ahead inside ``decide``)."""
    for e in events:
        state = evolve(state, e.type, e.data, replace(meta, actor=e.actor))
    return state


def _placeholder_meta(state: CaseState) -> EventMeta:
    return EventMeta(seq=state.seq, at=state.last_event_at or datetime.min, hash=state.head_hash)


def _opened(s: CaseState, data: ev.CaseOpened, meta: EventMeta) -> CaseState:
    intake = _shared_vocabulary(data.model_dump(mode="json"))
    return _replace_state(s, state=INTAKE, opened_at=meta.at, intake=intake, owner=intake["owner"])


def _classified(s: CaseState, data: ev.CaseClassified, meta: EventMeta) -> CaseState:
    return _replace_state(
        s,
        category=data.category.value,
        mode=sys.intern(data.mode),
        working_days=data.working_days,
        due_date=data.due_date,
        due_date_provisional=data.due_date_provisional,
        due_basis=(s.opened_at or meta.at, data.working_days),  # counted from the opening (rules.py)
        duty_leader=_intern(data.duty_leader),
        state=GUIDING if data.mode == "guide" else COORDINATING,
        overdue=False,  # the intake deadline is met or missed; the category's deadline starts now
        warned=frozenset(),
    )


def _intake_deadline_set(s: CaseState, data: ev.IntakeDeadlineSet, meta: EventMeta) -> CaseState:
    return _replace_state(
        s,
        working_days=data.working_days,
        due_date=data.due_date,
        due_date_provisional=data.due_date_provisional,
        due_basis=None,
    )


def _reclassified(s: CaseState, data: ev.CaseReclassified, meta: EventMeta) -> CaseState:
    mode = "guide" if data.category is Category.GUIDED else "coordinate"
    new_state = s.state
    if s.state == GUIDING and mode == "coordinate":
        new_state = COORDINATING
    elif s.state in (COORDINATING, ANSWERED) and mode == "guide":
        new_state = GUIDING
    return _replace_state(
        s,
        category=data.category.value,
        mode=mode,
        working_days=data.working_days,
        due_date=data.due_date,
        due_date_provisional=data.due_date_provisional,
        # from the opening, with the extensions granted so far (api.classify)
        due_basis=(s.opened_at or meta.at, data.working_days + s.extension_days),
        state=new_state,
        overdue=False,
        warned=frozenset(),
    )


def _owner_assigned(s: CaseState, data: ev.OwnerAssigned, meta: EventMeta) -> CaseState:
    return _replace_state(s, owner=data.owner)


def _requested(s: CaseState, data: ev.CoordinationRequested, meta: EventMeta) -> CaseState:
    coords = dict(s.coordinations)
    coords[data.request_id] = Coordination(
        request_id=data.request_id,
        department=sys.intern(data.department),
        round=data.round,
        question=data.question,
        deadline=data.deadline,
        rerouted_from=data.rerouted_from,
        requested_at=meta.at,
        review_of=data.review_of,
    )
    if data.review_of is not None:  # a review runs beside the case, whatever its state
        return _replace_state(s, coordinations=coords)
    new_state = COORDINATING if s.state in (ANSWERED, CLOSED, EVALUATED, INTAKE, GUIDING) else s.state
    return _replace_state(s, coordinations=coords, state=new_state)


def _retried(s: CaseState, data: ev.CoordinationRetried, meta: EventMeta) -> CaseState:
    return _update(s, data.request_id, attempts=data.attempt, last_reason=sys.intern(data.reason))


def _stalled(s: CaseState, data: ev.CoordinationStalled, meta: EventMeta) -> CaseState:
    return _update(
        s,
        data.request_id,
        status=CoordinationStatus.STALLED,
        attempts=data.attempts,
        last_reason=data.last_reason,
    )


def _replied(s: CaseState, data: ev.CoordinationReplied, meta: EventMeta) -> CaseState:
    if any(r.get("request_id") == data.request_id for r in s.reviews):
        # the higher department's answer: `cannot` upholds the first, `resolved` overturns it; any
        # other answer leaves the conclusion to the window (review-conclude)
        conclusion = REVIEW_CONCLUSIONS.get(data.outcome)
        if conclusion is not None:
            s = _replace_reviews(s, lambda r: r.get("request_id") == data.request_id, conclusion=conclusion)
        return _update(
            s,
            data.request_id,
            status=CoordinationStatus.ANSWERED,
            outcome=data.outcome,
            message=data.message,
            legal_basis=data.legal_basis,
            attempts=max(data.attempt, 1),
        )
    bounced = data.outcome is Outcome.NOT_OURS
    s = _update(
        s,
        data.request_id,
        status=CoordinationStatus.BOUNCED if bounced else CoordinationStatus.ANSWERED,
        outcome=data.outcome,
        message=data.message,
        legal_basis=data.legal_basis,
        attempts=max(data.attempt, 1),
    )
    return _replace_state(s, bounces=s.bounces + 1) if bounced else s


def _escalated(s: CaseState, data: ev.CaseEscalated, meta: EventMeta) -> CaseState:
    """The level a department's chain has reached never goes down: addressing a lower level directly
    (after 局長, say) is recorded as its own event but keeps the level reached, and its time."""
    escalations = dict(s.escalations)
    reached = escalations.get(data.department)
    if reached is None or data.level >= reached[0]:
        escalations[data.department] = (data.level, meta.at)
    ruling = s.bounce_ruling_needed or (data.reason == "bounced" and data.audience == "duty_leader")
    if data.reason == "follow_up_overdue" and s.follow_up:
        s = _replace_state(s, follow_up={**s.follow_up, "late": True})
    if data.reason == "notice_overdue":
        s = _replace_reviews(s, lambda r: not r.get("notified"), notice_late=True)
    elif data.reason == "review_overdue":
        s = _replace_reviews(
            s,
            lambda r: r.get("conclusion") is None and review_reviewer(r) == data.department,
            review_late=True,
        )
    return _replace_state(s, escalations=escalations, bounce_ruling_needed=ruling)


def _bounce_ruled(s: CaseState, data: ev.BounceRuled, meta: EventMeta) -> CaseState:
    return _replace_state(s, bounce_ruling_needed=False, ruled_department=data.department)


def _deadline_warned(s: CaseState, data: ev.DeadlineWarned, meta: EventMeta) -> CaseState:
    if data.about is None:
        return _replace_state(s, warned=s.warned | {data.working_days_left})
    if data.about == "follow_up" and s.follow_up:
        warned = [*s.follow_up.get("warned", ()), data.working_days_left]
        return _replace_state(s, follow_up={**s.follow_up, "warned": warned})
    key, done = (
        ("notice_warned", "notified") if data.about == "review_notice" else ("review_warned", "conclusion")
    )

    def waiting(r: Any) -> bool:
        return r.get("department") == data.department and not r.get(done)

    return _replace_reviews(s, waiting, _add=(key, data.working_days_left))


def _overdue(s: CaseState, data: ev.CaseOverdue, meta: EventMeta) -> CaseState:
    return _replace_state(s, overdue=True)


def _extension_requested(s: CaseState, data: ev.ExtensionRequested, meta: EventMeta) -> CaseState:
    return _replace_state(s, pending_extension={**data.model_dump(mode="python"), "requested_by": meta.actor})


def _extended(s: CaseState, data: ev.CaseExtended, meta: EventMeta) -> CaseState:
    overdue = s.overdue and data.due_date < (s.due_date or data.due_date)
    basis = s.due_basis and (s.due_basis[0], s.due_basis[1] + data.working_days)
    return _replace_state(
        s,
        due_date=data.due_date,
        due_date_provisional=data.due_date_provisional,
        due_basis=basis,
        extension_days=data.total_extension_days,
        pending_extension=None,
        overdue=overdue,
        warned=frozenset(),
    )


def _guided(s: CaseState, data: ev.CaseGuided, meta: EventMeta) -> CaseState:
    return _replace_state(s, resolution={"outcome": "guided", "window": data.window})


def _review_requested(s: CaseState, data: ev.ReviewRequested, meta: EventMeta) -> CaseState:
    review = {**data.model_dump(mode="json", exclude_none=True), "notified": False, "conclusion": None}
    return _replace_state(s, reviews=(*s.reviews, review))


def _review_notice_given(s: CaseState, data: ev.ReviewNoticeGiven, meta: EventMeta) -> CaseState:
    return _replace_reviews(
        s, lambda r: r.get("department") == data.department and not r.get("notified"), notified=True
    )


def _follow_up_opened(s: CaseState, data: ev.FollowUpOpened, meta: EventMeta) -> CaseState:
    follow_up = {**data.model_dump(mode="json"), "done": False, "warned": [], "late": False}
    return _replace_state(s, follow_up=follow_up)


def _follow_up_done(s: CaseState, data: ev.FollowUpDone, meta: EventMeta) -> CaseState:
    done = {**(s.follow_up or {}), **data.model_dump(mode="json"), "done": True, "at": meta.at.isoformat()}
    return _replace_state(s, follow_up=done)


def _rating_invited(s: CaseState, data: ev.RatingInvited, meta: EventMeta) -> CaseState:
    return _replace_state(s, rating_invited=True)


def _receipt_issued(s: CaseState, data: ev.ReceiptIssued, meta: EventMeta) -> CaseState:
    return _replace_state(s, receipt_digest=data.digest)


def _nothing_changes(s: CaseState, data: WireModel, meta: EventMeta) -> CaseState:
    """An event that records an act without changing what the case is (a reveal of personal data)."""
    return s


def _review_concluded(s: CaseState, data: ev.ReviewConcluded, meta: EventMeta) -> CaseState:
    return _replace_reviews(
        s,
        lambda r: r.get("department") == data.department and r.get("conclusion") is None,
        conclusion=data.outcome,
    )


def _resolved(s: CaseState, data: ev.CaseResolved, meta: EventMeta) -> CaseState:
    return _replace_state(s, state=ANSWERED, resolution=data.model_dump(mode="json"))


def _closed(s: CaseState, data: ev.CaseClosed, meta: EventMeta) -> CaseState:
    closing = {**data.model_dump(mode="json", exclude_none=True), "at": meta.at.isoformat()}
    s = _replace_reviews(s, lambda r: not r.get("notified"), notified=True)  # 銷號 tells the applicant
    return _replace_state(s, state=CLOSED, closing=closing, pending_extension=None)


def _evaluated(s: CaseState, data: ev.CaseEvaluated, meta: EventMeta) -> CaseState:
    return _replace_state(s, state=EVALUATED, evaluation=data.model_dump(mode="json"))


def _reopened(s: CaseState, data: ev.CaseReopened, meta: EventMeta) -> CaseState:
    return _replace_state(
        s,
        state=COORDINATING,
        round=data.round,
        working_days=data.working_days,
        due_date=data.due_date,
        due_date_provisional=data.due_date_provisional,
        due_basis=(meta.at, data.working_days),  # a new round counts from the day it was reopened
        overdue=False,
        warned=frozenset(),
        closing=None,
        resolution=None,
        escalations={},
        bounces=0,
        bounce_ruling_needed=False,
        ruled_department=None,
    )


def _due_date_revised(s: CaseState, data: ev.DueDateRevised, meta: EventMeta) -> CaseState:
    """A later due date lifts the overdue mark and its warnings, as an extension does; an earlier one
    keeps them (the watcher marks the case overdue again if it is)."""
    later = s.due_date is None or data.due_date > s.due_date
    return _replace_state(
        s,
        due_date=data.due_date,
        due_date_provisional=data.due_date_provisional,
        overdue=s.overdue and not later,
        warned=frozenset() if later else s.warned,
    )


def _accountability_recorded(s: CaseState, data: ev.AccountabilityRecorded, meta: EventMeta) -> CaseState:
    record = {**data.model_dump(mode="json"), "at": meta.at.isoformat()}
    return _replace_state(s, accountability=(*s.accountability, record))


_RULES: dict[type[WireModel], Callable[[CaseState, Any, EventMeta], CaseState]] = {
    ev.CaseOpened: _opened,
    ev.CaseClassified: _classified,
    ev.CaseReclassified: _reclassified,
    ev.OwnerAssigned: _owner_assigned,
    ev.CoordinationRequested: _requested,
    ev.CoordinationRetried: _retried,
    ev.CoordinationStalled: _stalled,
    ev.CoordinationReplied: _replied,
    ev.CaseEscalated: _escalated,
    ev.BounceRuled: _bounce_ruled,
    ev.DeadlineWarned: _deadline_warned,
    ev.CaseOverdue: _overdue,
    ev.ExtensionRequested: _extension_requested,
    ev.CaseExtended: _extended,
    ev.CaseGuided: _guided,
    ev.ReviewRequested: _review_requested,
    ev.CaseResolved: _resolved,
    ev.CaseClosed: _closed,
    ev.CaseEvaluated: _evaluated,
    ev.CaseReopened: _reopened,
    ev.AccountabilityRecorded: _accountability_recorded,
    ev.IntakeDeadlineSet: _intake_deadline_set,
    ev.ReviewNoticeGiven: _review_notice_given,
    ev.ReviewConcluded: _review_concluded,
    ev.PersonalDataRevealed: _nothing_changes,
    ev.ReceiptIssued: _receipt_issued,
    ev.FollowUpOpened: _follow_up_opened,
    ev.FollowUpDone: _follow_up_done,
    ev.RatingInvited: _rating_invited,
    ev.DueDateRevised: _due_date_revised,
}
"""One rule per event type: the payload model is the type (``ev.EVENT_TYPES``)."""


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


def _shared_vocabulary(intake: dict[str, Any]) -> dict[str, Any]:
    """The intake with its few-valued strings interned: equal values, so the state is the same, but the
    broker keeps every open case in memory and these repeat across nearly all of them."""
    for key in SHARED_INTAKE_FIELDS:
        value = intake.get(key)
        if type(value) is str:
            intake[key] = sys.intern(value)
    applicant = intake.get("applicant")
    if isinstance(applicant, dict) and type(applicant.get("kind")) is str:
        applicant["kind"] = sys.intern(applicant["kind"])
    return intake


REVIEW_CONCLUSIONS = {Outcome.CANNOT: "upheld", Outcome.RESOLVED: "overturned"}
"""What the higher department's answer makes of the `cannot` it reviews."""


def review_reviewer(review: Mapping[str, Any]) -> str:
    """Who owes a review's conclusion: the higher department asked over the bus, else the window."""
    return str(review.get("higher_department")) if review.get("request_id") else "window"


def _replace_reviews(
    state: CaseState,
    which: Callable[[Mapping[str, Any]], bool],
    _add: tuple[str, int] | None = None,
    **changes: Any,
) -> CaseState:
    """The state with ``changes`` made to every review ``which`` picks (``_add``: a number added to a
    list field of the review); the state itself when none is picked."""
    if not any(which(r) for r in state.reviews):
        return state
    reviews = []
    for review in state.reviews:
        if which(review):
            review = {**review, **changes}
            if _add is not None:
                key, number = _add
                review[key] = sorted({*_numbers(review, key), number})
        reviews.append(review)
    return _replace_state(state, reviews=tuple(reviews))


def _numbers(review: Mapping[str, Any], key: str) -> list[int]:
    value = review.get(key)
    return list(value) if isinstance(value, list | tuple) else []


def _update(state: CaseState, request_id: str, **changes: Any) -> CaseState:
    coords = dict(state.coordinations)
    current = coords.get(request_id)
    if current is None:
        return state  # an event for an unknown request: verification flags it; the state ignores it
    coords[request_id] = replace_coordination(current, **changes)
    return _replace_state(state, coordinations=coords)

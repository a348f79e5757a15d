"""The case lifecycle as two pure functions (the Decider pattern).

``decide(state, command) -> list[NewEvent]`` refuses a command or says what happened;
``evolve(state, event) -> state`` folds one stored event into the state. Neither does I/O, reads a
clock or logs: the clock's reading, the calendar's answers and the plugins' choices arrive inside the
command, computed by the broker (the shell). Replay and the live broker use the same ``evolve``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from typing import Any

from unstuck.schemas import events as ev
from unstuck.schemas.case import CaseIntake
from unstuck.schemas.common import Category, WireModel
from unstuck.schemas.coordination import CoordinationReply, Outcome
from unstuck.schemas.department import LEVEL_NAMES, Level

# --- states ---------------------------------------------------------------------------------------

INTAKE = "intake"  # accepted, not yet classified
GUIDING = "guiding"  # no barrier: to be guided to a regular window
COORDINATING = "coordinating"  # waiting for departments
ANSWERED = "answered"  # every department answered; ready for 銷號
CLOSED = "closed"  # 銷號; waiting for the applicant's evaluation
EVALUATED = "evaluated"  # 好差評 recorded; the end unless reopened

STATES = (INTAKE, GUIDING, COORDINATING, ANSWERED, CLOSED, EVALUATED)
OPEN_STATES = frozenset({INTAKE, GUIDING, COORDINATING, ANSWERED})

ALLOWED: dict[str, tuple[str, ...]] = {
    INTAKE: ("classify", "handover", "escalate"),
    GUIDING: ("guide", "classify", "handover", "extend", "approve_extension", "escalate", "tick"),
    COORDINATING: (
        "classify",
        "handover",
        "extend",
        "approve_extension",
        "record",
        "escalate",
        "rule_bounce",
        "accountability",
        "close",
        "tick",
    ),
    ANSWERED: (
        "classify",
        "handover",
        "extend",
        "approve_extension",
        "record",
        "close",
        "escalate",
        "accountability",
        "tick",
    ),
    CLOSED: ("evaluate", "reopen", "accountability"),
    EVALUATED: ("reopen", "accountability"),
}

LEADER_RANK = int(Level.LEADER_IN_CHARGE)
"""Rank from which a staff member counts as a leader (分管領導, 局長, the window's duty leader)."""


class Refused(Exception):
    """A command not allowed now. The message names the state and what is allowed."""

    def __init__(self, message: str, field: str | None = None, code: str = "not_allowed") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


# --- state ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coordination:
    request_id: str
    department: str
    round: int
    question: str
    deadline: date
    status: str = "pending"  # pending | stalled | answered | bounced
    attempts: int = 0
    outcome: str | None = None
    message: str | None = None
    legal_basis: str | None = None
    rerouted_from: str | None = None
    requested_at: datetime | None = None
    last_reason: str | None = None

    @property
    def open(self) -> bool:
        return self.status in ("pending", "stalled") or (
            self.status == "answered" and self.outcome == "accepted"
        )

    @property
    def awaiting_reply(self) -> bool:
        """The broker should still be asking this department."""
        return self.status in ("pending", "stalled")


@dataclass(frozen=True, slots=True)
class CaseState:
    case_id: str
    seq: int = 0
    head_hash: str = ""
    state: str = ""
    opened_at: datetime | None = None
    last_event_at: datetime | None = None
    intake: Mapping[str, Any] = field(default_factory=dict)
    category: str | None = None
    mode: str | None = None
    owner: str | None = None
    duty_leader: str | None = None
    working_days: int = 0
    due_date: date | None = None
    extension_days: int = 0
    pending_extension: Mapping[str, Any] | None = None
    overdue: bool = False
    warned: frozenset[int] = frozenset()
    escalations: Mapping[str, tuple[int, datetime]] = field(default_factory=dict)
    coordinations: Mapping[str, Coordination] = field(default_factory=dict)
    round: int = 1
    bounces: int = 0
    bounce_ruling_needed: bool = False
    ruled_department: str | None = None
    resolution: Mapping[str, Any] | None = None
    closing: Mapping[str, Any] | None = None
    evaluation: Mapping[str, Any] | None = None
    accountability: tuple[Mapping[str, Any], ...] = ()
    reviews: tuple[Mapping[str, Any], ...] = ()

    @property
    def exists(self) -> bool:
        return self.seq > 0

    @property
    def departments(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in self.coordinations.values():
            seen.setdefault(c.department, None)
        return list(seen)

    def current(self) -> list[Coordination]:
        return [c for c in self.coordinations.values() if c.round == self.round]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the state (identifiers as stored: callers mask for display)."""
        return {
            "case_id": self.case_id,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "state": self.state,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "category": self.category,
            "mode": self.mode,
            "owner": self.owner,
            "duty_leader": self.duty_leader,
            "working_days": self.working_days,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "extension_days": self.extension_days,
            "pending_extension": dict(self.pending_extension) if self.pending_extension else None,
            "overdue": self.overdue,
            "escalations": {
                d: {"level": lv, "at": at.isoformat()} for d, (lv, at) in self.escalations.items()
            },
            "round": self.round,
            "bounces": self.bounces,
            "bounce_ruling_needed": self.bounce_ruling_needed,
            "coordinations": [
                {
                    "request_id": c.request_id,
                    "department": c.department,
                    "round": c.round,
                    "status": c.status,
                    "attempts": c.attempts,
                    "outcome": c.outcome,
                    "message": c.message,
                    "legal_basis": c.legal_basis,
                    "rerouted_from": c.rerouted_from,
                    "deadline": c.deadline.isoformat(),
                }
                for c in self.coordinations.values()
            ],
            "resolution": dict(self.resolution) if self.resolution else None,
            "closing": dict(self.closing) if self.closing else None,
            "evaluation": dict(self.evaluation) if self.evaluation else None,
            "accountability": [dict(a) for a in self.accountability],
            "reviews": [dict(r) for r in self.reviews],
            "intake": dict(self.intake),
        }


# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Classification:
    """The shell's answer to "which category, which deadline, which departments" (plugins + calendar)."""

    category: Category
    reason: str
    working_days: int
    due_date: date
    departments: tuple[str, ...]
    duty_leader: str | None


@dataclass(frozen=True, slots=True)
class Open:
    intake: CaseIntake
    classification: Classification | None = None


@dataclass(frozen=True, slots=True)
class Classify:
    actor: str
    classification: Classification


@dataclass(frozen=True, slots=True)
class Handover:
    actor: str
    actor_rank: int
    owner: str
    reason: str


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    request_id: str
    attempt: int
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Stall:
    request_id: str
    attempts: int
    last_reason: str
    chain: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Reply:
    reply: CoordinationReply
    attempt: int
    today: date
    review_notify_by: date
    higher_department: str
    max_bounces: int
    known_departments: frozenset[str]
    recorded_by: str | None = None


@dataclass(frozen=True, slots=True)
class RuleBounce:
    actor: str
    actor_rank: int
    department: str


@dataclass(frozen=True, slots=True)
class Tick:
    """The deadline watcher's reading: today, working days left, and the escalation settings."""

    today: date
    at: datetime
    working_days_left: int
    warn_at: tuple[int, ...]
    escalation_period: timedelta
    chains: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class RequestExtension:
    actor: str
    working_days: int
    reason: str
    today: date
    proposed_due_date: date
    max_total: int = 10


@dataclass(frozen=True, slots=True)
class ApproveExtension:
    actor: str
    actor_rank: int
    due_date: date | None = None
    """The due date as it stands, moved by the pending extension; None: the date proposed with the request
    (the two differ when the case was reclassified in between)."""


@dataclass(frozen=True, slots=True)
class Escalate:
    actor: str
    department: str
    level: int
    note: str
    chain: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Guide:
    actor: str
    actor_rank: int
    window: str
    instructions: str
    today: date


@dataclass(frozen=True, slots=True)
class Close:
    actor: str
    actor_rank: int
    outcome: str
    explanation: str
    today: date


@dataclass(frozen=True, slots=True)
class Evaluate:
    actor: str
    rating: str
    comment: str
    department_at_fault: str | None
    working_days: int
    due_date: date


@dataclass(frozen=True, slots=True)
class Reopen:
    actor: str
    actor_rank: int
    reason: str
    working_days: int
    due_date: date


@dataclass(frozen=True, slots=True)
class RecordAccountability:
    actor: str
    data: ev.AccountabilityRecorded


COMMAND_NAMES: dict[type, str] = {
    Open: "open",
    Classify: "classify",
    Handover: "handover",
    AttemptFailed: "record",
    Stall: "record",
    Reply: "record",
    RuleBounce: "rule_bounce",
    Tick: "tick",
    RequestExtension: "extend",
    ApproveExtension: "approve_extension",
    Escalate: "escalate",
    Guide: "guide",
    Close: "close",
    Evaluate: "evaluate",
    Reopen: "reopen",
    RecordAccountability: "accountability",
}


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event decided but not yet stored: the shell adds id, seq, time and the hash chain."""

    type: str
    actor: str
    data: WireModel


# --- decide ---------------------------------------------------------------------------------------


def _check_allowed(state: CaseState, command: object) -> None:
    name = COMMAND_NAMES[type(command)]
    if name == "open":
        if state.exists:
            raise Refused(f"case {state.case_id} is already open (state {state.state})", code="conflict")
        return
    if not state.exists:
        raise Refused(f"case {state.case_id} does not exist", field="case_id", code="not_found")
    allowed = ALLOWED[state.state]
    if name not in allowed:
        raise Refused(
            f"case {state.case_id} is {state.state}: '{name}' is not allowed now; allowed: {', '.join(allowed)}"
        )


def _request_id(state: CaseState, extra: int = 0) -> str:
    return f"{state.case_id}-c{len(state.coordinations) + 1 + extra}"


def _requests_for(
    state: CaseState,
    departments: tuple[str, ...] | list[str],
    question: str,
    deadline: date,
    round_: int,
    rerouted_from: str | None = None,
    extra: int = 0,
) -> list[NewEvent]:
    out = []
    for i, dept in enumerate(departments):
        out.append(
            NewEvent(
                "coordination.requested",
                "system",
                ev.CoordinationRequested(
                    request_id=_request_id(state, extra + i),
                    department=dept,
                    question=question,
                    deadline=deadline,
                    rerouted_from=rerouted_from,
                    round=round_,
                ),
            )
        )
    return out


def _question(state_intake: Mapping[str, Any], category: str) -> str:
    return f"[{category}] {state_intake.get('matter_title', '')}: {state_intake.get('description', '')}"[
        :4000
    ]


def _classification_events(
    state: CaseState, actor: str, c: Classification, intake: Mapping[str, Any]
) -> list[NewEvent]:
    guided = c.category is Category.GUIDED
    if not guided and not c.departments:
        raise Refused(
            "a case that is not guided needs at least one department to coordinate with",
            field="departments",
            code="invalid_request",
        )
    out = [
        NewEvent(
            "case.classified",
            actor,
            ev.CaseClassified(
                category=c.category,
                reason=c.reason,
                mode="guide" if guided else "coordinate",
                working_days=c.working_days,
                due_date=c.due_date,
                duty_leader=None if guided else c.duty_leader,
                departments=[] if guided else list(c.departments),
            ),
        )
    ]
    if not guided:
        out += _requests_for(
            state, c.departments, _question(intake, c.category.value), c.due_date, state.round
        )
    return out


def decide(state: CaseState, command: object) -> list[NewEvent]:
    """What happens when ``command`` meets ``state``: the events to append, or :class:`Refused`."""
    _check_allowed(state, command)
    match command:
        case Open(intake=intake, classification=c):
            opened = ev.CaseOpened.from_intake(intake)
            out = [NewEvent("case.opened", intake.owner, opened)]
            if c is not None:
                out += _classification_events(state, intake.owner, c, intake.model_dump())
            return out
        case Classify(actor=actor, classification=c):
            if state.state == INTAKE:
                return _classification_events(state, actor, c, state.intake)
            if c.category.value == state.category:
                raise Refused(
                    f"case {state.case_id} is already classified {state.category}", field="category"
                )
            return _reclassify(state, actor, c)
        case Handover(actor=actor, actor_rank=rank, owner=owner, reason=reason):
            if actor != state.owner and rank < LEADER_RANK:
                raise Refused(
                    f"only the owner ({state.owner}) or a leader can hand case {state.case_id} over",
                    field="actor",
                )
            if owner == state.owner:
                raise Refused(f"{owner} already owns case {state.case_id}", field="owner")
            return [
                NewEvent(
                    "case.owner_assigned",
                    actor,
                    ev.OwnerAssigned(owner=owner, previous_owner=state.owner or "", reason=reason),
                )
            ]
        case AttemptFailed(request_id=rid, attempt=attempt, reason=reason, detail=detail):
            waiting = _awaiting(state, rid)
            return [
                NewEvent(
                    "coordination.retried",
                    "system",
                    ev.CoordinationRetried(
                        request_id=rid,
                        department=waiting.department,
                        attempt=attempt,
                        reason=reason,
                        detail=detail[:500],
                    ),
                )
            ]
        case Stall(request_id=rid, attempts=attempts, last_reason=last, chain=chain):
            waiting = _awaiting(state, rid)
            if waiting.status == "stalled":
                return []
            out = [
                NewEvent(
                    "coordination.stalled",
                    "system",
                    ev.CoordinationStalled(
                        request_id=rid, department=waiting.department, attempts=attempts, last_reason=last
                    ),
                )
            ]
            level = max(_level_of(state, waiting.department), 0) + 1
            out.append(_escalation(waiting.department, min(level, 3), chain, "stalled"))
            return out
        case Reply():
            return _reply(state, command)
        case RuleBounce(actor=actor, actor_rank=rank, department=dept):
            if not state.bounce_ruling_needed:
                raise Refused(f"case {state.case_id} has no bounce waiting for a ruling", field="case_id")
            if rank < LEADER_RANK and actor != state.duty_leader:
                raise Refused("only the window's duty leader rules on a bounced case", field="actor")
            return [
                NewEvent(
                    "case.bounce_ruled",
                    actor,
                    ev.BounceRuled(department=dept, ruled_by=actor, bounces=state.bounces),
                ),
                *_requests_for(
                    state,
                    [dept],
                    _question(state.intake, state.category or ""),
                    state.due_date or date.min,
                    state.round,
                ),
            ]
        case Tick():
            return _tick(state, command)
        case RequestExtension(
            actor=actor, working_days=days, reason=reason, today=today, proposed_due_date=due
        ):
            if state.due_date is None or today > state.due_date:
                raise Refused(
                    f"case {state.case_id} is past its deadline {state.due_date}: an extension must be "
                    "requested before expiry",
                    field="working_days",
                )
            if state.pending_extension:
                raise Refused(f"case {state.case_id} already has an extension waiting for approval")
            if state.extension_days + days > command.max_total:
                raise Refused(
                    f"extensions of case {state.case_id} would total {state.extension_days + days} working days; "
                    f"at most {command.max_total} (already {state.extension_days})",
                    field="working_days",
                )
            return [
                NewEvent(
                    "case.extension_requested",
                    actor,
                    ev.ExtensionRequested(working_days=days, reason=reason, proposed_due_date=due),
                )
            ]
        case ApproveExtension(actor=actor, actor_rank=rank):
            if not state.pending_extension:
                raise Refused(f"case {state.case_id} has no extension waiting for approval")
            if rank < LEADER_RANK:
                raise Refused("an extension must be approved by a leader (分管領導 or above)", field="actor")
            p = state.pending_extension
            return [
                NewEvent(
                    "case.extended",
                    actor,
                    ev.CaseExtended(
                        working_days=p["working_days"],
                        due_date=command.due_date or p["proposed_due_date"],
                        approved_by=actor,
                        total_extension_days=state.extension_days + p["working_days"],
                    ),
                )
            ]
        case Escalate(actor=actor, department=dept, level=level, note=note, chain=chain):
            return [_escalation(dept, level, chain, "direct", actor=actor, note=note)]
        case Guide(actor=actor, actor_rank=rank, window=window, instructions=text, today=today):
            _owner_or_leader(state, actor, rank, "guide and close")
            return [
                NewEvent("case.guided", actor, ev.CaseGuided(window=window, instructions=text)),
                NewEvent(
                    "case.closed",
                    actor,
                    ev.CaseClosed(
                        outcome="guided", explanation=text, closed_by=actor, on_time=_on_time(state, today)
                    ),
                ),
            ]
        case Close(actor=actor, actor_rank=rank, outcome=outcome, explanation=text, today=today):
            _owner_or_leader(state, actor, rank, "close")
            if state.state == COORDINATING and outcome != "withdrawn":
                owing = ", ".join(c.department for c in state.current() if c.open)
                raise Refused(
                    f"case {state.case_id} is coordinating and still waits for {owing}: close it after every "
                    "department answered, or with outcome withdrawn if the applicant withdrew",
                    field="outcome",
                )
            return [
                NewEvent(
                    "case.closed",
                    actor,
                    ev.CaseClosed(
                        outcome=outcome, explanation=text, closed_by=actor, on_time=_on_time(state, today)
                    ),
                )
            ]
        case Evaluate(actor=actor, rating=rating, comment=comment, department_at_fault=dept):
            if dept is not None and rating != "bad":
                raise Refused("department_at_fault goes only with a bad rating", field="department_at_fault")
            if dept is not None and dept not in state.departments:
                raise Refused(
                    f"department_at_fault {dept!r} was not asked in case {state.case_id}; "
                    f"asked: {', '.join(state.departments) or 'none'}",
                    field="department_at_fault",
                )
            out = [
                NewEvent(
                    "case.evaluated",
                    actor,
                    ev.CaseEvaluated(rating=rating, comment=comment, department_at_fault=dept),
                )
            ]
            if dept is not None:
                out += _reopen(
                    state,
                    actor,
                    f"差評歸責 {dept}: {comment}"[:200] or "bad rating",
                    [dept],
                    command.working_days,
                    command.due_date,
                )
            return out
        case Reopen(actor=actor, actor_rank=rank, reason=reason, working_days=days, due_date=due):
            if rank < LEADER_RANK:
                raise Refused("only a leader can order a case reopened (重辦)", field="actor")
            depts = state.departments
            if not depts:
                raise Refused(f"case {state.case_id} was guided, not coordinated: open a new case instead")
            return _reopen(state, actor, reason, depts, days, due)
        case RecordAccountability(actor=actor, data=data):
            if state.category != Category.REFUSED.value:
                raise Refused(
                    f"accountability is recorded for 不給辦 (refused) cases; case {state.case_id} is "
                    f"{state.category}",
                    field="case_id",
                )
            return [NewEvent("accountability.recorded", actor, data)]
    raise TypeError(f"unknown command {command!r}")


def _level_of(state: CaseState, department: str) -> int:
    entry = state.escalations.get(department)
    return entry[0] if entry else 0


def _owner_or_leader(state: CaseState, actor: str, rank: int, what: str) -> None:
    if actor != state.owner and rank < LEADER_RANK:
        raise Refused(
            f"only the owner ({state.owner}) or a leader above them can {what} case {state.case_id}",
            field="actor",
        )


def _on_time(state: CaseState, today: date) -> bool:
    return state.due_date is None or today <= state.due_date


def _awaiting(state: CaseState, request_id: str) -> Coordination:
    c = state.coordinations.get(request_id)
    if c is None:
        raise Refused(
            f"request_id {request_id!r} is not a coordination of case {state.case_id}",
            field="request_id",
            code="not_found",
        )
    if not c.awaiting_reply:
        raise Refused(
            f"request {request_id} to {c.department} is already {c.status}",
            field="request_id",
            code="conflict",
        )
    return c


def _escalation(
    dept: str, level: int, chain: Mapping[str, str], reason: str, actor: str = "system", note: str = ""
) -> NewEvent:
    role = LEVEL_NAMES[Level(level)]
    return NewEvent(
        "case.escalated",
        actor,
        ev.CaseEscalated(
            department=dept,
            level=level,
            role=role,
            target=chain.get(role, f"{dept} {role}"),
            reason=reason,
            audience=f"{dept}_{role}",
            note=note,
        ),
    )


def _reclassify(state: CaseState, actor: str, c: Classification) -> list[NewEvent]:
    out: list[NewEvent] = [
        NewEvent(
            "case.reclassified",
            actor,
            ev.CaseReclassified(
                previous=Category(state.category),
                category=c.category,
                reason=c.reason,
                working_days=c.working_days,
                due_date=c.due_date,
            ),
        )
    ]
    if state.category == Category.GUIDED.value and c.category is not Category.GUIDED:
        # from guidance into coordination: now the departments must be asked
        if not c.departments:
            raise Refused(
                "reclassifying out of guided needs departments to coordinate with", field="departments"
            )
        out += _requests_for(
            state, c.departments, _question(state.intake, c.category.value), c.due_date, state.round
        )
    elif c.category is Category.GUIDED and any(x.open for x in state.current()):
        raise Refused(
            f"case {state.case_id} still waits for departments; it cannot become guided now", field="category"
        )
    return out


def _reply(state: CaseState, cmd: Reply) -> list[NewEvent]:
    r = cmd.reply
    c = state.coordinations.get(r.request_id)
    if c is None:
        raise Refused(
            f"request_id {r.request_id!r} is not a coordination of case {state.case_id}",
            field="request_id",
            code="not_found",
        )
    if c.department != r.department:
        raise Refused(
            f"reply for {r.request_id} came from {r.department}, but the request went to {c.department}",
            field="department",
            code="invalid_request",
        )
    if not c.open:
        raise Refused(
            f"request {r.request_id} to {c.department} is already answered ({c.outcome})",
            field="request_id",
            code="conflict",
        )
    out: list[NewEvent] = [
        NewEvent(
            "coordination.replied",
            cmd.recorded_by or r.department,
            ev.CoordinationReplied(
                request_id=r.request_id,
                department=r.department,
                outcome=r.outcome,
                message=r.message,
                handler=r.handler,
                legal_basis=r.legal_basis,
                belongs_to=r.belongs_to,
                expected_date=r.expected_date,
                materials=list(r.materials),
                attempt=cmd.attempt,
                recorded_by=cmd.recorded_by,
            ),
        )
    ]
    after = evolve_many(state, out, _placeholder_meta(state))
    if r.outcome is Outcome.NOT_OURS:
        target = r.belongs_to or ""
        unknown = target not in cmd.known_departments
        if unknown or state.ruled_department == r.department or state.bounces + 1 >= cmd.max_bounces:
            why = (
                f"{r.department} says it belongs to unknown department {target}"
                if unknown
                else f"{state.bounces + 1} bounces"
            )
            out.append(
                NewEvent(
                    "case.escalated",
                    "system",
                    ev.CaseEscalated(
                        department=r.department,
                        level=2,
                        role="leader_in_charge",
                        target=state.duty_leader or "duty leader",
                        reason="bounced",
                        audience="duty_leader",
                        note=f"{why}; the duty leader rules which department handles it",
                    ),
                )
            )
        else:
            out += _requests_for(
                after,
                [target],
                _question(state.intake, state.category or ""),
                state.due_date or date.min,
                state.round,
                rerouted_from=r.department,
            )
    elif r.outcome is Outcome.CANNOT:
        out.append(
            NewEvent(
                "case.review_requested",
                "system",
                ev.ReviewRequested(
                    department=r.department,
                    legal_basis=r.legal_basis or "",
                    higher_department=cmd.higher_department,
                    notify_by=cmd.review_notify_by,
                ),
            )
        )
    after = evolve_many(state, out, _placeholder_meta(state))
    current = after.current()
    if (
        after.state == COORDINATING
        and not after.bounce_ruling_needed
        and not any(x.open for x in current)
        and any(x.status == "answered" for x in current)
    ):
        out.append(_resolution(after))
    return out


def _resolution(state: CaseState) -> NewEvent:
    answered = [c for c in state.current() if c.status == "answered"]
    outcomes = {c.outcome for c in answered}
    for candidate in ("resolved", "cannot", "need_materials"):
        if candidate in outcomes:
            outcome = Outcome(candidate)
            break
    else:
        outcome = Outcome.RESOLVED
    summary = "; ".join(f"{c.department}: {c.outcome}: {c.message}" for c in answered)[:4000] or "answered"
    return NewEvent(
        "case.resolved",
        "system",
        ev.CaseResolved(outcome=outcome, summary=summary, departments=[c.department for c in answered]),
    )


def _reopen(
    state: CaseState, actor: str, reason: str, depts: list[str], days: int, due: date
) -> list[NewEvent]:
    new_round = state.round + 1
    out: list[NewEvent] = [
        NewEvent(
            "case.reopened",
            actor,
            ev.CaseReopened(
                reason=reason, departments=depts, round=new_round, working_days=days, due_date=due
            ),
        )
    ]
    out += _requests_for(state, depts, _question(state.intake, state.category or ""), due, new_round)
    return out


def _tick(state: CaseState, t: Tick) -> list[NewEvent]:
    if state.due_date is None:
        return []
    out: list[NewEvent] = []
    if t.today <= state.due_date:
        for point in sorted(t.warn_at, reverse=True):
            if t.working_days_left <= point and point not in state.warned:
                out.append(
                    NewEvent(
                        "case.deadline_warned",
                        "system",
                        ev.DeadlineWarned(due_date=state.due_date, working_days_left=max(point, 0)),
                    )
                )
                break
    waiting = [c for c in state.current() if c.open]
    targets = sorted({c.department for c in waiting}) or ["window"]
    if t.today > state.due_date and not state.overdue:
        out.append(NewEvent("case.overdue", "system", ev.CaseOverdue(due_date=state.due_date)))
        for dept in targets:
            level = min(_level_of(state, dept) + 1, 3)
            out.append(_escalation(dept, level, t.chains.get(dept, {}), "overdue"))
        return out
    # climb one level per period while the case is overdue or a department is stalled
    stalled = {c.department for c in state.current() if c.status == "stalled"}
    climbing = set(targets) if state.overdue else stalled
    for dept in sorted(climbing):
        entry = state.escalations.get(dept)
        if entry is None:
            continue
        level, since = entry
        if level < 3 and t.at - since >= t.escalation_period:
            out.append(
                _escalation(
                    dept, level + 1, t.chains.get(dept, {}), "overdue" if state.overdue else "stalled"
                )
            )
    return out


# --- evolve ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventMeta:
    seq: int
    at: datetime
    hash: str


_STATE_FIELDS = tuple(f.name for f in fields(CaseState))
_STATE_FIELD_SET = frozenset(_STATE_FIELDS)


def _replace_state(old: CaseState, /, **changes: Any) -> CaseState:
    """``dataclasses.replace`` for a CaseState without its per-call introspection (twice per event)."""
    unknown = changes.keys() - _STATE_FIELD_SET
    if unknown:
        raise TypeError(f"CaseState has no field {sorted(unknown)[0]!r}")
    new = object.__new__(CaseState)
    for name in _STATE_FIELDS:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(old, name))
    return new


def _placeholder_meta(state: CaseState) -> EventMeta:
    return EventMeta(seq=state.seq, at=state.last_event_at or datetime.min, hash=state.head_hash)


def evolve_many(state: CaseState, events: list[NewEvent], meta: EventMeta) -> CaseState:
    """Fold decided events into a state (to look ahead inside ``decide``)."""
    for e in events:
        state = evolve(state, e.type, e.data, meta)
    return state


def evolve(state: CaseState, event_type: str, data: WireModel, meta: EventMeta) -> CaseState:
    """The state after one event. Pure; replay and the live broker both use it."""
    s = _replace_state(state, seq=meta.seq, head_hash=meta.hash, last_event_at=meta.at)
    match data:
        case ev.CaseOpened():
            intake = _shared_vocabulary(data.model_dump(mode="json"))
            return _replace_state(s, state=INTAKE, opened_at=meta.at, intake=intake, owner=intake["owner"])
        case ev.CaseClassified():
            return _replace_state(
                s,
                category=data.category.value,
                mode=sys.intern(data.mode),
                working_days=data.working_days,
                due_date=data.due_date,
                duty_leader=_intern(data.duty_leader),
                state=GUIDING if data.mode == "guide" else COORDINATING,
            )
        case ev.CaseReclassified():
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
                state=new_state,
                overdue=False,
                warned=frozenset(),
            )
        case ev.OwnerAssigned():
            return _replace_state(s, owner=data.owner)
        case ev.CoordinationRequested():
            coords = dict(s.coordinations)
            coords[data.request_id] = Coordination(
                request_id=data.request_id,
                department=sys.intern(data.department),
                round=data.round,
                question=data.question,
                deadline=data.deadline,
                rerouted_from=data.rerouted_from,
                requested_at=meta.at,
            )
            new_state = COORDINATING if s.state in (ANSWERED, CLOSED, EVALUATED, INTAKE, GUIDING) else s.state
            return _replace_state(s, coordinations=coords, state=new_state)
        case ev.CoordinationRetried():
            return _update(s, data.request_id, attempts=data.attempt, last_reason=sys.intern(data.reason))
        case ev.CoordinationStalled():
            return _update(
                s, data.request_id, status="stalled", attempts=data.attempts, last_reason=data.last_reason
            )
        case ev.CoordinationReplied():
            status = "bounced" if data.outcome is Outcome.NOT_OURS else "answered"
            s = _update(
                s,
                data.request_id,
                status=status,
                outcome=data.outcome.value,
                message=data.message,
                legal_basis=data.legal_basis,
                attempts=max(data.attempt, 1),
            )
            if data.outcome is Outcome.NOT_OURS:
                s = _replace_state(s, bounces=s.bounces + 1)
            return s
        case ev.CaseEscalated():
            escalations = dict(s.escalations)
            escalations[data.department] = (data.level, meta.at)
            ruling = s.bounce_ruling_needed or (data.reason == "bounced" and data.audience == "duty_leader")
            return _replace_state(s, escalations=escalations, bounce_ruling_needed=ruling)
        case ev.BounceRuled():
            return _replace_state(s, bounce_ruling_needed=False, ruled_department=data.department)
        case ev.DeadlineWarned():
            return _replace_state(s, warned=s.warned | {data.working_days_left})
        case ev.CaseOverdue():
            return _replace_state(s, overdue=True)
        case ev.ExtensionRequested():
            return _replace_state(s, pending_extension=data.model_dump(mode="python"))
        case ev.CaseExtended():
            overdue = s.overdue and data.due_date < (s.due_date or data.due_date)
            return _replace_state(
                s,
                due_date=data.due_date,
                extension_days=data.total_extension_days,
                pending_extension=None,
                overdue=overdue,
                warned=frozenset(),
            )
        case ev.CaseGuided():
            return _replace_state(s, resolution={"outcome": "guided", "window": data.window})
        case ev.ReviewRequested():
            return _replace_state(s, reviews=(*s.reviews, data.model_dump(mode="json")))
        case ev.CaseResolved():
            return _replace_state(s, state=ANSWERED, resolution=data.model_dump(mode="json"))
        case ev.CaseClosed():
            return _replace_state(
                s,
                state=CLOSED,
                closing={**data.model_dump(mode="json"), "at": meta.at.isoformat()},
                pending_extension=None,
            )
        case ev.CaseEvaluated():
            return _replace_state(s, state=EVALUATED, evaluation=data.model_dump(mode="json"))
        case ev.CaseReopened():
            return _replace_state(
                s,
                state=COORDINATING,
                round=data.round,
                working_days=data.working_days,
                due_date=data.due_date,
                overdue=False,
                warned=frozenset(),
                closing=None,
                resolution=None,
                escalations={},
                bounces=0,
                bounce_ruling_needed=False,
                ruled_department=None,
            )
        case ev.AccountabilityRecorded():
            return _replace_state(
                s,
                accountability=(
                    *s.accountability,
                    {**data.model_dump(mode="json"), "at": meta.at.isoformat()},
                ),
            )
    raise TypeError(f"evolve: no rule for {event_type}")


SHARED_INTAKE_FIELDS = ("channel", "matter", "matter_title", "window", "department", "category", "owner")
"""Intake fields from a small vocabulary (matters, windows, departments, staff): one copy for all cases."""


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


def _update(state: CaseState, request_id: str, **changes: Any) -> CaseState:
    coords = dict(state.coordinations)
    current = coords.get(request_id)
    if current is None:
        return state  # an event for an unknown request: verification flags it; the state ignores it
    coords[request_id] = replace(current, **changes)
    return _replace_state(state, coordinations=coords)

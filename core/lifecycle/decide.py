"""``decide(state, command) -> list[NewEvent]``: refuse a command (:class:`Refused`) or say what
happened, one function per command type. Pure: what it needs arrives inside the command."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from unstuck.schemas import events as ev
from unstuck.schemas.common import Category
from unstuck.schemas.coordination import Outcome
from unstuck.schemas.department import LEVEL_NAMES, Level

from . import commands as c
from .evolve import _placeholder_meta, evolve_many
from .state import (
    ALLOWED,
    COORDINATING,
    INTAKE,
    LEADER_RANK,
    CaseState,
    Coordination,
    CoordinationStatus,
    NewEvent,
)


class Refused(Exception):
    """A command not allowed now. The message names the state and what is allowed."""

    def __init__(self, message: str, field: str | None = None, code: str = "not_allowed") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def decide(state: CaseState, command: c.Command) -> list[NewEvent]:
    """What happens when ``command`` meets ``state``: the events to append, or :class:`Refused`."""
    _check_allowed(state, command)
    return _DECIDERS[type(command)](state, command)


def _check_allowed(state: CaseState, command: c.Command) -> None:
    name = command.verb
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


def _open(state: CaseState, cmd: c.Open) -> list[NewEvent]:
    out = [NewEvent(cmd.intake.owner, ev.CaseOpened.from_intake(cmd.intake))]
    if cmd.classification is not None:
        out += _classification_events(state, cmd.intake.owner, cmd.classification, cmd.intake.model_dump())
    return out


def _classify(state: CaseState, cmd: c.Classify) -> list[NewEvent]:
    if state.state == INTAKE:
        return _classification_events(state, cmd.actor, cmd.classification, state.intake)
    if cmd.classification.category.value == state.category:
        raise Refused(f"case {state.case_id} is already classified {state.category}", field="category")
    return _reclassify(state, cmd.actor, cmd.classification)


def _handover(state: CaseState, cmd: c.Handover) -> list[NewEvent]:
    if cmd.actor != state.owner and cmd.actor_rank < LEADER_RANK:
        raise Refused(
            f"only the owner ({state.owner}) or a leader can hand case {state.case_id} over", field="actor"
        )
    if cmd.owner == state.owner:
        raise Refused(f"{cmd.owner} already owns case {state.case_id}", field="owner")
    return [
        NewEvent(
            cmd.actor, ev.OwnerAssigned(owner=cmd.owner, previous_owner=state.owner or "", reason=cmd.reason)
        )
    ]


def _record_attempt_failure(state: CaseState, cmd: c.RecordAttemptFailure) -> list[NewEvent]:
    waiting = _awaiting(state, cmd.request_id)
    retried = ev.CoordinationRetried(
        request_id=cmd.request_id,
        department=waiting.department,
        attempt=cmd.attempt,
        reason=cmd.reason,
        detail=cmd.detail[:500],
    )
    return [NewEvent("system", retried)]


def _record_stall(state: CaseState, cmd: c.RecordStall) -> list[NewEvent]:
    waiting = _awaiting(state, cmd.request_id)
    if waiting.status == CoordinationStatus.STALLED:
        return []
    stalled = ev.CoordinationStalled(
        request_id=cmd.request_id,
        department=waiting.department,
        attempts=cmd.attempts,
        last_reason=cmd.last_reason,
    )
    level = max(_level_of(state, waiting.department), 0) + 1
    return [NewEvent("system", stalled), _escalation(waiting.department, min(level, 3), cmd.chain, "stalled")]


def _rule_bounce(state: CaseState, cmd: c.RuleBounce) -> list[NewEvent]:
    if not state.bounce_ruling_needed:
        raise Refused(f"case {state.case_id} has no bounce waiting for a ruling", field="case_id")
    if cmd.actor_rank < LEADER_RANK and cmd.actor != state.duty_leader:
        raise Refused("only the window's duty leader rules on a bounced case", field="actor")
    return [
        NewEvent(
            cmd.actor, ev.BounceRuled(department=cmd.department, ruled_by=cmd.actor, bounces=state.bounces)
        ),
        *_requests_for(
            state,
            [cmd.department],
            _question(state.intake, state.category or ""),
            state.due_date or date.min,
            state.round,
        ),
    ]


def _request_extension(state: CaseState, cmd: c.RequestExtension) -> list[NewEvent]:
    if state.due_date is None or cmd.today > state.due_date:
        raise Refused(
            f"case {state.case_id} is past its deadline {state.due_date}: an extension must be "
            "requested before expiry",
            field="working_days",
        )
    if state.pending_extension:
        raise Refused(f"case {state.case_id} already has an extension waiting for approval")
    if state.extension_days + cmd.working_days > cmd.max_total:
        raise Refused(
            f"extensions of case {state.case_id} would total {state.extension_days + cmd.working_days} "
            f"working days; at most {cmd.max_total} (already {state.extension_days})",
            field="working_days",
        )
    requested = ev.ExtensionRequested(
        working_days=cmd.working_days, reason=cmd.reason, proposed_due_date=cmd.proposed_due_date
    )
    return [NewEvent(cmd.actor, requested)]


def _approve_extension(state: CaseState, cmd: c.ApproveExtension) -> list[NewEvent]:
    if not state.pending_extension:
        raise Refused(f"case {state.case_id} has no extension waiting for approval")
    if cmd.actor_rank < LEADER_RANK:
        raise Refused("an extension must be approved by a leader (分管領導 or above)", field="actor")
    p = state.pending_extension
    extended = ev.CaseExtended(
        working_days=p["working_days"],
        due_date=cmd.due_date or p["proposed_due_date"],
        approved_by=cmd.actor,
        total_extension_days=state.extension_days + p["working_days"],
    )
    return [NewEvent(cmd.actor, extended)]


def _escalate(state: CaseState, cmd: c.Escalate) -> list[NewEvent]:
    return [_escalation(cmd.department, cmd.level, cmd.chain, "direct", actor=cmd.actor, note=cmd.note)]


def _guide(state: CaseState, cmd: c.Guide) -> list[NewEvent]:
    _owner_or_leader(state, cmd.actor, cmd.actor_rank, "guide and close")
    closed = ev.CaseClosed(
        outcome="guided",
        explanation=cmd.instructions,
        closed_by=cmd.actor,
        on_time=_on_time(state, cmd.today),
    )
    guided = ev.CaseGuided(window=cmd.window, instructions=cmd.instructions)
    return [NewEvent(cmd.actor, guided), NewEvent(cmd.actor, closed)]


def _close(state: CaseState, cmd: c.Close) -> list[NewEvent]:
    _owner_or_leader(state, cmd.actor, cmd.actor_rank, "close")
    if state.state == COORDINATING and cmd.outcome != "withdrawn":
        owing = ", ".join(x.department for x in state.current() if x.open)
        raise Refused(
            f"case {state.case_id} is coordinating and still waits for {owing}: close it after every "
            "department answered, or with outcome withdrawn if the applicant withdrew",
            field="outcome",
        )
    closed = ev.CaseClosed(
        outcome=cmd.outcome,
        explanation=cmd.explanation,
        closed_by=cmd.actor,
        on_time=_on_time(state, cmd.today),
    )
    return [NewEvent(cmd.actor, closed)]


def _evaluate(state: CaseState, cmd: c.Evaluate) -> list[NewEvent]:
    dept = cmd.department_at_fault
    if dept is not None and cmd.rating != "bad":
        raise Refused("department_at_fault goes only with a bad rating", field="department_at_fault")
    if dept is not None and dept not in state.departments:
        raise Refused(
            f"department_at_fault {dept!r} was not asked in case {state.case_id}; "
            f"asked: {', '.join(state.departments) or 'none'}",
            field="department_at_fault",
        )
    evaluated = ev.CaseEvaluated(rating=cmd.rating, comment=cmd.comment, department_at_fault=dept)
    out = [NewEvent(cmd.actor, evaluated)]
    if dept is not None:
        reason = f"差評歸責 {dept}: {cmd.comment}"[:200] or "bad rating"
        out += _reopen(state, cmd.actor, reason, [dept], cmd.working_days, cmd.due_date)
    return out


def _reopen_ordered(state: CaseState, cmd: c.Reopen) -> list[NewEvent]:
    if cmd.actor_rank < LEADER_RANK:
        raise Refused("only a leader can order a case reopened (重辦)", field="actor")
    depts = state.departments
    if not depts:
        raise Refused(f"case {state.case_id} was guided, not coordinated: open a new case instead")
    return _reopen(state, cmd.actor, cmd.reason, depts, cmd.working_days, cmd.due_date)


def _record_accountability(state: CaseState, cmd: c.RecordAccountability) -> list[NewEvent]:
    if state.category != Category.REFUSED.value:
        raise Refused(
            f"accountability is recorded for 不給辦 (refused) cases; case {state.case_id} is {state.category}",
            field="case_id",
        )
    return [NewEvent(cmd.actor, cmd.data)]


def _reply(state: CaseState, cmd: c.RecordReply) -> list[NewEvent]:
    r = cmd.reply
    x = state.coordinations.get(r.request_id)
    if x is None:
        raise Refused(
            f"request_id {r.request_id!r} is not a coordination of case {state.case_id}",
            field="request_id",
            code="not_found",
        )
    if x.department != r.department:
        raise Refused(
            f"reply for {r.request_id} came from {r.department}, but the request went to {x.department}",
            field="department",
            code="invalid_request",
        )
    if not x.open:
        raise Refused(
            f"request {r.request_id} to {x.department} is already answered ({x.outcome})",
            field="request_id",
            code="conflict",
        )
    replied = ev.CoordinationReplied(
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
    )
    out = [NewEvent(cmd.recorded_by or r.department, replied)]
    if r.outcome is Outcome.NOT_OURS:
        out += _bounce(state, cmd, evolve_many(state, out, _placeholder_meta(state)))
    elif r.outcome is Outcome.CANNOT:
        review = ev.ReviewRequested(
            department=r.department,
            legal_basis=r.legal_basis or "",
            higher_department=cmd.higher_department,
            notify_by=cmd.review_notify_by,
        )
        out.append(NewEvent("system", review))
    after = evolve_many(state, out, _placeholder_meta(state))
    current = after.current()
    if (
        after.state == COORDINATING
        and not after.bounce_ruling_needed
        and not any(x.open for x in current)
        and any(x.status == CoordinationStatus.ANSWERED for x in current)
    ):
        out.append(_resolution(after))
    return out


def _bounce(state: CaseState, cmd: c.RecordReply, after: CaseState) -> list[NewEvent]:
    """退單: re-route to the named department, or ask the duty leader to rule."""
    r = cmd.reply
    target = r.belongs_to or ""
    unknown = target not in cmd.known_departments
    if unknown or state.ruled_department == r.department or state.bounces + 1 >= cmd.max_bounces:
        why = (
            f"{r.department} says it belongs to unknown department {target}"
            if unknown
            else f"{state.bounces + 1} bounces"
        )
        escalated = ev.CaseEscalated(
            department=r.department,
            level=2,
            role="leader_in_charge",
            target=state.duty_leader or "duty leader",
            reason="bounced",
            audience="duty_leader",
            note=f"{why}; the duty leader rules which department handles it",
        )
        return [NewEvent("system", escalated)]
    return _requests_for(
        after,
        [target],
        _question(state.intake, state.category or ""),
        state.due_date or date.min,
        state.round,
        rerouted_from=r.department,
    )


def _resolution(state: CaseState) -> NewEvent:
    answered = [x for x in state.current() if x.status == CoordinationStatus.ANSWERED]
    outcomes = {x.outcome for x in answered}
    for candidate in ("resolved", "cannot", "need_materials"):
        if candidate in outcomes:
            outcome = Outcome(candidate)
            break
    else:
        outcome = Outcome.RESOLVED
    summary = "; ".join(f"{x.department}: {x.outcome}: {x.message}" for x in answered)[:4000] or "answered"
    departments = [x.department for x in answered]
    return NewEvent("system", ev.CaseResolved(outcome=outcome, summary=summary, departments=departments))


def _reopen(
    state: CaseState, actor: str, reason: str, depts: list[str], days: int, due: date
) -> list[NewEvent]:
    new_round = state.round + 1
    reopened = ev.CaseReopened(
        reason=reason, departments=depts, round=new_round, working_days=days, due_date=due
    )
    question = _question(state.intake, state.category or "")
    return [NewEvent(actor, reopened), *_requests_for(state, depts, question, due, new_round)]


def _check_deadlines(state: CaseState, t: c.CheckDeadlines) -> list[NewEvent]:
    if state.due_date is None:
        return []
    out: list[NewEvent] = []
    if t.today <= state.due_date:
        for point in sorted(t.warn_at, reverse=True):
            if t.working_days_left <= point and point not in state.warned:
                warned = ev.DeadlineWarned(due_date=state.due_date, working_days_left=max(point, 0))
                out.append(NewEvent("system", warned))
                break
    waiting = [x for x in state.current() if x.open]
    targets = sorted({x.department for x in waiting}) or ["window"]
    if t.today > state.due_date and not state.overdue:
        out.append(NewEvent("system", ev.CaseOverdue(due_date=state.due_date)))
        if t.working_day:  # else the first climb waits for the next working day
            for dept in targets:
                level = min(_level_of(state, dept) + 1, 3)
                out.append(_escalation(dept, level, t.chains.get(dept, {}), "overdue"))
        return out
    if not t.working_day:  # 督辦 never climbs on a holiday or a weekend off
        return out
    # climb one level per period (and working day) while the case is overdue or a department stalls
    stalled = {x.department for x in state.current() if x.status == CoordinationStatus.STALLED}
    climbing = set(targets) if state.overdue else stalled
    for dept in sorted(climbing):
        entry = state.escalations.get(dept)
        if entry is None:
            if state.overdue:  # overdue on a day off: the first level, now that it is a working day
                out.append(_escalation(dept, 1, t.chains.get(dept, {}), "overdue"))
            continue
        level, since = entry
        if level < 3 and t.at - since >= t.escalation_period:
            reason = "overdue" if state.overdue else "stalled"
            out.append(_escalation(dept, level + 1, t.chains.get(dept, {}), reason))
    return out


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
    x = state.coordinations.get(request_id)
    if x is None:
        raise Refused(
            f"request_id {request_id!r} is not a coordination of case {state.case_id}",
            field="request_id",
            code="not_found",
        )
    if not x.awaiting_reply:
        raise Refused(
            f"request {request_id} to {x.department} is already {x.status}",
            field="request_id",
            code="conflict",
        )
    return x


def _escalation(
    dept: str, level: int, chain: Mapping[str, str], reason: str, actor: str = "system", note: str = ""
) -> NewEvent:
    role = LEVEL_NAMES[Level(level)]
    escalated = ev.CaseEscalated(
        department=dept,
        level=level,
        role=role,
        target=chain.get(role, f"{dept} {role}"),
        reason=reason,
        audience=f"{dept}_{role}",
        note=note,
    )
    return NewEvent(actor, escalated)


def _reclassify(state: CaseState, actor: str, cl: c.Classification) -> list[NewEvent]:
    reclassified = ev.CaseReclassified(
        previous=Category(state.category),
        category=cl.category,
        reason=cl.reason,
        working_days=cl.working_days,
        due_date=cl.due_date,
    )
    out = [NewEvent(actor, reclassified)]
    if state.category == Category.GUIDED.value and cl.category is not Category.GUIDED:
        # from guidance into coordination: now the departments must be asked
        if not cl.departments:
            raise Refused(
                "reclassifying out of guided needs departments to coordinate with", field="departments"
            )
        question = _question(state.intake, cl.category.value)
        out += _requests_for(state, cl.departments, question, cl.due_date, state.round)
    elif cl.category is Category.GUIDED and any(x.open for x in state.current()):
        raise Refused(
            f"case {state.case_id} still waits for departments; it cannot become guided now", field="category"
        )
    return out


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
        requested = ev.CoordinationRequested(
            request_id=_request_id(state, extra + i),
            department=dept,
            question=question,
            deadline=deadline,
            rerouted_from=rerouted_from,
            round=round_,
        )
        out.append(NewEvent("system", requested))
    return out


def _question(state_intake: Mapping[str, Any], category: str) -> str:
    return f"[{category}] {state_intake.get('matter_title', '')}: {state_intake.get('description', '')}"[
        :4000
    ]


def _classification_events(
    state: CaseState, actor: str, cl: c.Classification, intake: Mapping[str, Any]
) -> list[NewEvent]:
    guided = cl.category is Category.GUIDED
    if not guided and not cl.departments:
        raise Refused(
            "a case that is not guided needs at least one department to coordinate with",
            field="departments",
            code="invalid_request",
        )
    classified = ev.CaseClassified(
        category=cl.category,
        reason=cl.reason,
        mode="guide" if guided else "coordinate",
        working_days=cl.working_days,
        due_date=cl.due_date,
        duty_leader=None if guided else cl.duty_leader,
        departments=[] if guided else list(cl.departments),
    )
    out = [NewEvent(actor, classified)]
    if not guided:
        question = _question(intake, cl.category.value)
        out += _requests_for(state, cl.departments, question, cl.due_date, state.round)
    return out


_DECIDERS: dict[type[c.Command], Callable[[CaseState, Any], list[NewEvent]]] = {
    c.Open: _open,
    c.Classify: _classify,
    c.Handover: _handover,
    c.RecordAttemptFailure: _record_attempt_failure,
    c.RecordStall: _record_stall,
    c.RecordReply: _reply,
    c.RuleBounce: _rule_bounce,
    c.CheckDeadlines: _check_deadlines,
    c.RequestExtension: _request_extension,
    c.ApproveExtension: _approve_extension,
    c.Escalate: _escalate,
    c.Guide: _guide,
    c.Close: _close,
    c.Evaluate: _evaluate,
    c.Reopen: _reopen_ordered,
    c.RecordAccountability: _record_accountability,
}
"""One function per command type (``typing.get_args(Command)``: a test checks none is missing)."""

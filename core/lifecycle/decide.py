"""``decide(state, command) -> list[NewEvent]``: refuse a command (:class:`Refused`) or say what
happened, one function per command type. Pure: what it needs arrives inside the command."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from unstuck.schemas import events as ev
from unstuck.schemas.common import Category
from unstuck.schemas.coordination import Outcome
from unstuck.schemas.department import LEVEL_NAMES, Level
from unstuck.schemas.labels import label

from . import commands as c
from .evolve import _placeholder_meta, evolve_many, review_reviewer
from .state import (
    ALLOWED,
    ANSWERED,
    CLOSED,
    COORDINATING,
    INTAKE,
    LEADER_RANK,
    OPEN_STATES,
    SYSTEM_VERBS,
    VERB_LABELS,
    CaseState,
    Coordination,
    CoordinationStatus,
    NewEvent,
)


class Refused(Exception):
    """A command not allowed now. The message names the state and what is allowed; ``zh`` says the same
    to window staff in Chinese, naming who may act."""

    def __init__(
        self, message: str, field: str | None = None, code: str = "not_allowed", zh: str | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.zh = zh


def decide(state: CaseState, command: c.Command) -> list[NewEvent]:
    """What happens when ``command`` meets ``state``: the events to append, or :class:`Refused`."""
    _check_allowed(state, command)
    return _DECIDERS[type(command)](state, command)


def _check_allowed(state: CaseState, command: c.Command) -> None:
    name = command.verb
    if name == "open":
        if state.exists:
            raise Refused(
                f"case {state.case_id} is already open (state {state.state})",
                code="conflict",
                zh=f"案件 {state.case_id} 已受理（{label('state', state.state)}）",
            )
        return
    if not state.exists:
        raise Refused(
            f"case {state.case_id} does not exist",
            field="case_id",
            code="not_found",
            zh=f"案件 {state.case_id} 不存在",
        )
    allowed = [verb for verb in ALLOWED[state.state] if verb not in SYSTEM_VERBS]
    if name not in ALLOWED[state.state]:
        raise Refused(
            f"case {state.case_id} is {state.state}: '{name}' is not allowed now; allowed: {', '.join(allowed)}",
            zh=f"案件 {state.case_id} 目前「{label('state', state.state)}」，不能{VERB_LABELS.get(name, name)}；"
            f"現在可以：{'、'.join(VERB_LABELS[v] for v in allowed)}",
        )


def _open(state: CaseState, cmd: c.Open) -> list[NewEvent]:
    out = [NewEvent(cmd.opened_by or cmd.intake.owner, ev.CaseOpened.from_intake(cmd.intake))]
    if cmd.receipt_digest is not None:
        out.append(NewEvent(cmd.opened_by or cmd.intake.owner, ev.ReceiptIssued(digest=cmd.receipt_digest)))
    if cmd.classification is not None:
        out += _classification_events(state, cmd.intake.owner, cmd.classification, cmd.intake.model_dump())
    elif cmd.intake_deadline is not None:  # unclassified: watched until it is classified
        limit = cmd.intake_deadline
        deadline = ev.IntakeDeadlineSet(
            working_days=limit.working_days,
            due_date=limit.due_date,
            due_date_provisional=limit.due_date_provisional,
        )
        out.append(NewEvent("system", deadline))
    return out


def _classify(state: CaseState, cmd: c.Classify) -> list[NewEvent]:
    if state.state == INTAKE:
        return _classification_events(state, cmd.actor, cmd.classification, state.intake)
    if cmd.classification.category.value == state.category:
        raise Refused(
            f"case {state.case_id} is already classified {state.category}",
            field="category",
            zh=f"案件 {state.case_id} 已經是「{label('category', state.category)}」",
        )
    if state.category == Category.REFUSED.value and state.accountability and cmd.actor_rank < LEADER_RANK:
        raise Refused(
            f"case {state.case_id} has an accountability record: only a leader reclassifies it away "
            "from refused (the record stays)",
            field="actor",
            zh=f"案件 {state.case_id} 已有問責記錄：只有領導（分管領導及以上）可以改為其他類別，問責記錄保留",
        )
    return _reclassify(state, cmd.actor, cmd.classification)


def _handover(state: CaseState, cmd: c.Handover) -> list[NewEvent]:
    if cmd.actor != state.owner and cmd.actor_rank < LEADER_RANK:
        raise Refused(
            f"only the owner ({state.owner}) or a leader can hand case {state.case_id} over",
            field="actor",
            zh=f"只有承辦人（{state.owner}）或領導可以移交案件 {state.case_id}",
        )
    if cmd.owner == state.owner:
        raise Refused(
            f"{cmd.owner} already owns case {state.case_id}",
            field="owner",
            zh=f"{cmd.owner} 已是案件 {state.case_id} 的承辦人",
        )
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
        raise Refused(
            f"case {state.case_id} has no bounce waiting for a ruling",
            field="case_id",
            zh=f"案件 {state.case_id} 沒有待裁定的退單",
        )
    if cmd.actor != state.duty_leader:
        raise Refused(
            "only the window's duty leader rules on a bounced case",
            field="actor",
            zh=f"退單由窗口值班領導（{state.duty_leader or '值班領導'}）裁定",
        )
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
            zh=f"案件 {state.case_id} 已過期限 {state.due_date}：延期須在期限屆滿前申請",
        )
    if state.pending_extension:
        raise Refused(
            f"case {state.case_id} already has an extension waiting for approval",
            zh=f"案件 {state.case_id} 已有一項延期申請待領導批准",
        )
    if state.extension_days + cmd.working_days > cmd.max_total:
        raise Refused(
            f"extensions of case {state.case_id} would total {state.extension_days + cmd.working_days} "
            f"working days; at most {cmd.max_total} (already {state.extension_days})",
            field="working_days",
            zh=f"案件 {state.case_id} 延期合計將達 {state.extension_days + cmd.working_days} 個工作日，"
            f"最多 {cmd.max_total} 個（已延 {state.extension_days} 個）",
        )
    requested = ev.ExtensionRequested(
        working_days=cmd.working_days,
        reason=cmd.reason,
        proposed_due_date=cmd.proposed_due_date,
        due_date_provisional=cmd.due_date_provisional,
    )
    return [NewEvent(cmd.actor, requested)]


def _approve_extension(state: CaseState, cmd: c.ApproveExtension) -> list[NewEvent]:
    if not state.pending_extension:
        raise Refused(
            f"case {state.case_id} has no extension waiting for approval",
            zh=f"案件 {state.case_id} 沒有待批准的延期申請",
        )
    if cmd.actor_rank < LEADER_RANK:
        raise Refused(
            "an extension must be approved by a leader (分管領導 or above)",
            field="actor",
            zh="延期須由領導（分管領導及以上）批准",
        )
    p = state.pending_extension
    if p.get("requested_by") and cmd.actor == p["requested_by"]:
        raise Refused(
            f"{cmd.actor} requested this extension and cannot approve it: another leader approves",
            field="actor",
            zh=f"延期由 {cmd.actor} 本人申請，不能自己批准：須由另一位領導（分管領導及以上）批准",
        )
    extended = ev.CaseExtended(
        working_days=p["working_days"],
        due_date=cmd.due_date or p["proposed_due_date"],
        due_date_provisional=cmd.due_date_provisional
        if cmd.due_date
        else p.get("due_date_provisional", False),
        approved_by=cmd.actor,
        total_extension_days=state.extension_days + p["working_days"],
    )
    return [NewEvent(cmd.actor, extended)]


def _escalate(state: CaseState, cmd: c.Escalate) -> list[NewEvent]:
    return [_escalation(cmd.department, cmd.level, cmd.chain, "direct", actor=cmd.actor, note=cmd.note)]


def _guide(state: CaseState, cmd: c.Guide) -> list[NewEvent]:
    _owner_or_leader(state, cmd.actor, cmd.actor_rank, "guide and close", "引導辦理並銷號")
    closed = ev.CaseClosed(
        outcome="guided",
        explanation=cmd.instructions,
        closed_by=cmd.actor,
        on_time=_on_time(state, cmd.today),
    )
    guided = ev.CaseGuided(window=cmd.window, instructions=cmd.instructions)
    return [NewEvent(cmd.actor, guided), NewEvent(cmd.actor, closed)]


def _close(state: CaseState, cmd: c.Close) -> list[NewEvent]:
    _owner_or_leader(state, cmd.actor, cmd.actor_rank, "close", "銷號")
    if state.state == COORDINATING and cmd.outcome != "withdrawn":
        owing = ", ".join(x.department for x in state.current() if x.open)
        raise Refused(
            f"case {state.case_id} is coordinating and still waits for {owing}: close it after every "
            "department answered, or with outcome withdrawn if the applicant withdrew",
            field="outcome",
            zh=f"案件 {state.case_id} 仍在等待 {owing} 答覆：各部門答覆後才能銷號；申請人撤回的，以「撤回」銷號",
        )
    if state.category == Category.REFUSED.value and not state.accountability:
        raise Refused(
            f"case {state.case_id} is refused (不給辦): record the accountability, or a leader's 容錯免責 "
            "exemption with its reason, before closing",
            field="case_id",
            zh=f"案件 {state.case_id} 屬不給辦：須先登記問責，或由領導登記容錯免責（附理由），才能銷號",
        )
    override = _override(state, cmd)
    closed = ev.CaseClosed(
        outcome=cmd.outcome,
        explanation=cmd.explanation,
        closed_by=cmd.actor,
        on_time=_on_time(state, cmd.today),
        override_reason=override,
        overridden_by=cmd.actor if override else None,
    )
    return [NewEvent(cmd.actor, closed)]


def _override(state: CaseState, cmd: c.Close) -> str | None:
    """The override reason when the outcome contradicts the answers (refused unless a leader gives one)."""
    answers = standing_answers(state)
    if cmd.outcome == "withdrawn" or state.state != ANSWERED or closing_agrees(cmd.outcome, answers):
        if cmd.override_reason:
            raise Refused(
                f"outcome {cmd.outcome} agrees with the departments' answers: no override is needed",
                field="override_reason",
                zh=f"銷號結果「{cmd.outcome}」與部門答覆一致，無須領導改定理由",
            )
        return None
    said = ", ".join(f"{dept}: {outcome}" for dept, outcome in answers.items())
    if cmd.actor_rank < LEADER_RANK or not cmd.override_reason:
        raise Refused(
            f"outcome {cmd.outcome} contradicts the departments' answers ({said}): only a leader "
            "closes so, with override_reason",
            field="override_reason" if cmd.actor_rank >= LEADER_RANK else "outcome",
            zh=f"銷號結果「{cmd.outcome}」與部門答覆（{said}）不一致：須由領導（分管領導及以上）"
            "改定並說明理由（override_reason）",
        )
    return cmd.override_reason


def standing_answers(state: CaseState) -> dict[str, str]:
    """The answers of this round that stand: a `cannot` overturned on review no longer does."""
    overturned = {r["department"] for r in state.reviews if r.get("conclusion") == "overturned"}
    return {
        x.department: str(x.outcome)
        for x in state.current()
        if x.status == CoordinationStatus.ANSWERED
        and not (x.outcome == Outcome.CANNOT and x.department in overturned)
    }


def closing_agrees(outcome: str, answers: Mapping[str, str]) -> bool:
    """銷號 agrees with the answers: resolved when every department resolved it; cannot or
    need_materials when one department said so; guided never, once departments were asked."""
    said = set(answers.values())
    if not said:  # no answer to contradict (a case answered before answers were kept per round)
        return True
    if outcome == "resolved":
        return said == {"resolved"}
    return outcome in said


def _review_pending(review: Mapping[str, Any]) -> bool:
    """A review with a due date (every one recorded since reviews are followed) and no conclusion."""
    return review.get("due_date") is not None and review.get("conclusion") is None


def _evaluate(state: CaseState, cmd: c.Evaluate) -> list[NewEvent]:
    dept = cmd.department_at_fault
    if dept is not None and cmd.level.rating != "bad":
        raise Refused(
            "department_at_fault goes only with a bad rating",
            field="department_at_fault",
            zh="只有差評才能歸責部門（department_at_fault）",
        )
    if dept is not None and dept not in state.departments:
        raise Refused(
            f"department_at_fault {dept!r} was not asked in case {state.case_id}; "
            f"asked: {', '.join(state.departments) or 'none'}",
            field="department_at_fault",
            zh=f"案件 {state.case_id} 未協調過 {dept}；協調過的部門：{'、'.join(state.departments) or '無'}",
        )
    evaluated = ev.CaseEvaluated(
        level=cmd.level, rating=cmd.level.rating, comment=cmd.comment, department_at_fault=dept
    )
    out = [NewEvent(cmd.actor, evaluated)]
    if cmd.level.rating == "bad" and cmd.follow_up_due is not None:  # 差評: 回訪 and 整改, watched
        follow_up = ev.FollowUpOpened(
            level=cmd.level,
            working_days=cmd.follow_up_days,
            due_date=cmd.follow_up_due,
            due_date_provisional=cmd.follow_up_provisional,
        )
        out.append(NewEvent("system", follow_up))
    if dept is not None:
        reason = f"差評歸責 {dept}: {cmd.comment}"[:200] or "bad rating"
        out += _reopen(
            state, cmd.actor, reason, [dept], cmd.working_days, cmd.due_date, cmd.due_date_provisional
        )
    return out


def _reopen_ordered(state: CaseState, cmd: c.Reopen) -> list[NewEvent]:
    if cmd.actor_rank < LEADER_RANK:
        raise Refused(
            "only a leader can order a case reopened (重辦)",
            field="actor",
            zh="重辦須由領導（分管領導及以上）決定",
        )
    depts = state.departments
    if not depts:
        raise Refused(
            f"case {state.case_id} was guided, not coordinated: open a new case instead",
            zh=f"案件 {state.case_id} 是引導辦理，未協調部門：請另行受理新案件",
        )
    return _reopen(
        state, cmd.actor, cmd.reason, depts, cmd.working_days, cmd.due_date, cmd.due_date_provisional
    )


def _record_accountability(state: CaseState, cmd: c.RecordAccountability) -> list[NewEvent]:
    if state.category != Category.REFUSED.value:
        raise Refused(
            f"accountability is recorded for 不給辦 (refused) cases; case {state.case_id} is {state.category}",
            field="case_id",
            zh=f"問責只登記於不給辦案件；案件 {state.case_id} 是「{label('category', state.category)}」",
        )
    exempted = any(a.get("fault_tolerance") for a in state.accountability)
    measured = any(not a.get("fault_tolerance") for a in state.accountability)
    if cmd.actor_rank < LEADER_RANK:
        what = (
            "容錯免責 (fault_tolerance) is a leader's exemption"
            if cmd.data.fault_tolerance
            else "accountability (問責)"
        )
        raise Refused(
            f"{what}: only a leader (分管領導 or above) records it",
            field="fault_tolerance" if cmd.data.fault_tolerance else "actor",
            zh="容錯免責由領導（分管領導及以上）決定並登記"
            if cmd.data.fault_tolerance
            else "問責由領導（分管領導及以上）登記",
        )
    if cmd.data.fault_tolerance:
        if set(cmd.data.measures) != {"none"}:
            raise Refused(
                "容錯免責 exempts the staff from measures: give measures none",
                field="measures",
                zh="容錯免責即不予處理：措施請填 none",
            )
        if measured:
            raise Refused(
                f"case {state.case_id} already has an accountability record; 容錯免責 and accountability "
                "exclude each other",
                field="fault_tolerance",
                zh=f"案件 {state.case_id} 已有問責記錄，不能再登記容錯免責（兩者只能擇一）",
            )
    elif exempted:
        raise Refused(
            f"case {state.case_id} has a leader's 容錯免責 exemption; accountability and the exemption "
            "exclude each other",
            field="measures",
            zh=f"案件 {state.case_id} 已由領導登記容錯免責，不能再登記問責（兩者只能擇一）",
        )
    return [NewEvent(cmd.actor, cmd.data)]


def _review_notice(state: CaseState, cmd: c.RecordReviewNotice) -> list[NewEvent]:
    if not any(r["department"] == cmd.department and not r.get("notified") for r in state.reviews):
        raise Refused(
            f"case {state.case_id} has no review of a `cannot` from {cmd.department} awaiting its notice",
            field="department",
            zh=f"案件 {state.case_id} 沒有待告知申請人的 {cmd.department} 不能辦複核",
        )
    notice = ev.ReviewNoticeGiven(department=cmd.department, how=cmd.how, note=cmd.note)
    return [NewEvent(cmd.actor, notice)]


def _follow_up(state: CaseState, cmd: c.FollowUp) -> list[NewEvent]:
    pending = state.follow_up
    if not pending or pending.get("done"):
        raise Refused(
            f"case {state.case_id} has no bad rating waiting for its follow-up (回訪 and 整改)",
            zh=f"案件 {state.case_id} 沒有待回訪整改的差評",
        )
    _owner_or_leader(state, cmd.actor, cmd.actor_rank, "record the follow-up of", "登記回訪整改")
    on_time = cmd.today <= date.fromisoformat(pending["due_date"])
    return [NewEvent(cmd.actor, ev.FollowUpDone(visit=cmd.visit, measures=cmd.measures, on_time=on_time))]


def _reveal(state: CaseState, cmd: c.RevealPersonalData) -> list[NewEvent]:
    return [NewEvent(cmd.actor, ev.PersonalDataRevealed(fields=list(cmd.fields), reason=cmd.reason))]


def _review_conclude(state: CaseState, cmd: c.ConcludeReview) -> list[NewEvent]:
    waiting = [r for r in state.reviews if r["department"] == cmd.department and _review_pending(r)]
    if not waiting:
        raise Refused(
            f"case {state.case_id} has no review of {cmd.department}'s `cannot` waiting for a conclusion",
            field="department",
            zh=f"案件 {state.case_id} 沒有待結論的 {cmd.department} 不能辦複核",
        )
    asked = state.coordinations.get(waiting[-1].get("request_id") or "")
    if asked is not None and asked.open:
        higher = waiting[-1]["higher_department"]
        raise Refused(
            f"the review went to {higher} over the bus and waits for its answer, which concludes it "
            f"(record an answer given outside the bus with `case record --department {higher}`)",
            field="department",
            zh=f"複核已經由系統送 {higher}，以其答覆為結論（線下答覆請以「登記部門答覆」記錄）",
        )
    concluded = ev.ReviewConcluded(department=cmd.department, outcome=cmd.outcome, note=cmd.note)
    return [NewEvent(cmd.actor, concluded)]


def _reply(state: CaseState, cmd: c.RecordReply) -> list[NewEvent]:
    r = cmd.reply
    x = state.coordinations.get(r.request_id)
    if x is None:
        raise Refused(
            f"request_id {r.request_id!r} is not a coordination of case {state.case_id}",
            field="request_id",
            code="not_found",
            zh=f"{r.request_id} 不是案件 {state.case_id} 的協調請求",
        )
    _open_or_reviewed(state, x)
    if x.department != r.department:
        raise Refused(
            f"reply for {r.request_id} came from {r.department}, but the request went to {x.department}",
            field="department",
            code="invalid_request",
            zh=f"{r.request_id} 是發給 {x.department} 的，答覆卻來自 {r.department}",
        )
    if not x.open:
        raise Refused(
            f"request {r.request_id} to {x.department} is already answered ({x.outcome})",
            field="request_id",
            code="conflict",
            zh=f"{x.department} 已答覆 {r.request_id}",
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
    if x.review_of is not None:  # the review's answer: recorded beside the case, nothing follows
        return out
    if r.outcome is Outcome.NOT_OURS:
        out += _bounce(state, cmd, evolve_many(state, out, _placeholder_meta(state)))
    elif r.outcome is Outcome.CANNOT:
        out += _review(state, cmd)
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


def _review(state: CaseState, cmd: c.RecordReply) -> list[NewEvent]:
    """A `cannot` goes up for review: over the bus to a higher department the bus knows, else as a
    manual step the window concludes; either with its own due date, and the applicant's notice."""
    r = cmd.reply
    higher = cmd.higher_department
    asked = higher in cmd.known_departments and higher != r.department
    requests = (
        _requests_for(
            state,
            [higher],
            f"[複核] {r.department} 答覆不能辦：{r.message}（依據：{r.legal_basis or '未載明'}）"[:4000],
            cmd.review_due_date,
            state.round,
            review_of=r.department,
        )
        if asked
        else []
    )
    review = ev.ReviewRequested(
        department=r.department,
        legal_basis=r.legal_basis or "",
        higher_department=higher,
        notify_by=cmd.review_notify_by,
        due_date=cmd.review_due_date,
        request_id=requests[0].data.request_id if requests else None,  # type: ignore[attr-defined]
    )
    return [NewEvent("system", review), *requests]


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
    # resolved only when every department resolved it: the outcome 銷號 agrees with (closing_agrees)
    outcomes = {x.outcome for x in answered}
    for candidate in ("cannot", "need_materials"):
        if candidate in outcomes:
            outcome = Outcome(candidate)
            break
    else:
        outcome = Outcome.RESOLVED
    summary = "; ".join(f"{x.department}: {x.outcome}: {x.message}" for x in answered)[:4000] or "answered"
    departments = [x.department for x in answered]
    return NewEvent("system", ev.CaseResolved(outcome=outcome, summary=summary, departments=departments))


def _reopen(
    state: CaseState,
    actor: str,
    reason: str,
    depts: list[str],
    days: int,
    due: date,
    provisional: bool = False,
) -> list[NewEvent]:
    new_round = state.round + 1
    reopened = ev.CaseReopened(
        reason=reason,
        departments=depts,
        round=new_round,
        working_days=days,
        due_date=due,
        due_date_provisional=provisional,
    )
    question = _question(state.intake, state.category or "")
    return [NewEvent(actor, reopened), *_requests_for(state, depts, question, due, new_round)]


def _check_deadlines(state: CaseState, t: c.CheckDeadlines) -> list[NewEvent]:
    if state.due_date is None:
        return []
    out: list[NewEvent] = []
    if state.state not in OPEN_STATES:  # closed: a `cannot` review, a 差評's follow-up, the 邀評
        late = _late_reviews(state, t, out) | _late_follow_up(state, t, out)
        out += _invitation(state, t)
        if t.working_day:
            out += _climbs(state, t, late)
        return out
    if t.today <= state.due_date:
        warned = _warning(t, state.due_date, t.working_days_left, state.warned)
        if warned is not None:
            out.append(NewEvent("system", warned))
    waiting = [x for x in state.current() if x.open]
    targets = sorted({x.department for x in waiting}) or ["window"]
    late = _late_reviews(state, t, out)  # who owes a review's notice or conclusion past its date
    late |= _late_follow_up(state, t, out)
    if t.today > state.due_date and not state.overdue:
        out.append(NewEvent("system", ev.CaseOverdue(due_date=state.due_date)))
        if t.working_day:  # else the first climb waits for the next working day
            climbed = {e.data.department for e in out if isinstance(e.data, ev.CaseEscalated)}
            for dept in (d for d in targets if d not in climbed):
                level = min(_level_of(state, dept) + 1, 3)
                out.append(_escalation(dept, level, t.chains.get(dept, {}), "overdue"))
        return out
    if not t.working_day:  # 督辦 never climbs on a holiday or a weekend off
        return out
    # climb one level per working day (escalation_hours of office time) while the case is overdue,
    # a department stalls, or a review's notice or conclusion is late
    stalled = {x.department for x in state.current() if x.status == CoordinationStatus.STALLED}
    reasons = dict.fromkeys(stalled, "stalled")
    reasons.update(late)
    if state.overdue:
        reasons.update(dict.fromkeys(targets, "overdue"))
    return out + _climbs(state, t, reasons)


def _climbs(state: CaseState, t: c.CheckDeadlines, reasons: Mapping[str, str]) -> list[NewEvent]:
    """One level up for each of ``reasons`` (who -> why) a working day (escalation_hours) after the last."""
    out = []
    for dept in sorted(reasons):
        entry = state.escalations.get(dept)
        if entry is None:
            if state.overdue and reasons[dept] == "overdue":  # overdue on a day off: the first level now
                out.append(_escalation(dept, 1, t.chains.get(dept, {}), "overdue"))
            continue
        level, _since = entry
        if level < 3 and t.working_hours_since.get(dept, 0.0) >= t.escalation_hours:
            out.append(_escalation(dept, level + 1, t.chains.get(dept, {}), reasons[dept]))
    return out


def _warning(
    t: c.CheckDeadlines, due: date, left: int, warned: Any, about: str | None = None, dept: str | None = None
) -> ev.DeadlineWarned | None:
    """催辦 at the nearest warning point reached and not yet warned, if any."""
    for point in sorted(t.warn_at, reverse=True):
        if left <= point and point not in warned:
            return ev.DeadlineWarned(
                due_date=due,
                working_days_left=max(point, 0),
                about=about,
                department=dept,  # type: ignore[arg-type]
            )
    return None


def _late_reviews(state: CaseState, t: c.CheckDeadlines, out: list[NewEvent]) -> dict[str, str]:
    """Watch each review like a deadline: the applicant's notice (the window owes it) and the
    conclusion (the higher department asked over the bus owes it, else the window). Appends the
    warnings and first escalations to ``out``; returns who is late already, to climb, and why."""
    late: dict[str, str] = {}
    for review in state.reviews:
        dept = review["department"]
        watched = [("review_notice", "notify_by", "notified", "notice_late", "window", "notice_overdue")]
        if _review_pending(review):
            watched.append(
                ("review", "due_date", "conclusion", "review_late", review_reviewer(review), "review_overdue")
            )
        for about, date_key, done, flagged, owner, reason in watched:
            if review.get(done) or not review.get(date_key):
                continue
            due = date.fromisoformat(review[date_key])
            if t.today <= due:
                left = t.days_left.get(due, 0)
                numbers = review.get(f"{'notice' if about == 'review_notice' else 'review'}_warned") or ()
                warned = _warning(t, due, left, numbers, about, dept)
                if warned is not None:
                    out.append(NewEvent("system", warned))
                continue
            if review.get(flagged):
                late.setdefault(owner, reason)
            else:
                _first_climb(state, t, out, owner, reason)
    return late


def _first_climb(state: CaseState, t: c.CheckDeadlines, out: list[NewEvent], owner: str, reason: str) -> None:
    """The first level for a date ``owner`` missed, on a working day, unless this tick climbed it already."""
    climbed = {e.data.department for e in out if isinstance(e.data, ev.CaseEscalated)}
    if t.working_day and owner not in climbed:
        level = min(_level_of(state, owner) + 1, 3)
        out.append(_escalation(owner, level, t.chains.get(owner, {}), reason))


def _late_follow_up(state: CaseState, t: c.CheckDeadlines, out: list[NewEvent]) -> dict[str, str]:
    """Watch a bad rating's follow-up like a deadline the window owes: 催辦 before its date, the
    window's first level the working day after, then a level a working day (``_climbs``)."""
    pending = state.follow_up
    if not pending or pending.get("done"):
        return {}
    due = date.fromisoformat(pending["due_date"])
    if t.today <= due:
        warned = _warning(t, due, t.days_left.get(due, 0), pending.get("warned") or (), "follow_up")
        if warned is not None:
            out.append(NewEvent("system", warned))
        return {}
    if pending.get("late"):
        return {"window": "follow_up_overdue"}
    _first_climb(state, t, out, "window", "follow_up_overdue")
    return {}


def _invitation(state: CaseState, t: c.CheckDeadlines) -> list[NewEvent]:
    """邀評: once, ``invite_after_days`` days after 銷號 while the applicant has not rated."""
    if state.state != CLOSED or state.rating_invited or not t.invite_after_days or not state.closing:
        return []
    closed_on = datetime.fromisoformat(state.closing["at"]).astimezone(t.at.tzinfo).date()
    if (t.today - closed_on).days < t.invite_after_days:
        return []
    return [NewEvent("system", ev.RatingInvited(closed_on=closed_on, days=t.invite_after_days))]


def _level_of(state: CaseState, department: str) -> int:
    entry = state.escalations.get(department)
    return entry[0] if entry else 0


def _owner_or_leader(state: CaseState, actor: str, rank: int, what: str, what_zh: str) -> None:
    if actor != state.owner and rank < LEADER_RANK:
        raise Refused(
            f"only the owner ({state.owner}) or a leader above them can {what} case {state.case_id}",
            field="actor",
            zh=f"只有承辦人（{state.owner}）或其上級領導可以{what_zh}案件 {state.case_id}",
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
    _open_or_reviewed(state, x)
    if not x.awaiting_reply:
        raise Refused(
            f"request {request_id} to {x.department} is already {x.status}",
            field="request_id",
            code="conflict",
        )
    return x


def _open_or_reviewed(state: CaseState, x: Coordination) -> None:
    """A closed case records only the answers of its reviews; any other comes too late."""
    if state.state not in OPEN_STATES and x.review_of is None:
        raise Refused(
            f"case {state.case_id} is {state.state}: the answer of {x.department} to {x.request_id} is no "
            "longer recorded",
            field="request_id",
            zh=f"案件 {state.case_id} 目前「{label('state', state.state)}」：不再登記 {x.department} 對 {x.request_id} 的答覆",
        )


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
        due_date_provisional=cl.due_date_provisional,
    )
    out = [NewEvent(actor, reclassified)]
    if state.category == Category.GUIDED.value and cl.category is not Category.GUIDED:
        # from guidance into coordination: now the departments must be asked
        if not cl.departments:
            raise Refused(
                "reclassifying out of guided needs departments to coordinate with",
                field="departments",
                zh="由引導辦改為其他類別，須指定要協調的部門",
            )
        question = _question(state.intake, cl.category.value)
        out += _requests_for(state, cl.departments, question, cl.due_date, state.round)
    elif cl.category is Category.GUIDED and any(x.open for x in state.current()):
        raise Refused(
            f"case {state.case_id} still waits for departments; it cannot become guided now",
            field="category",
            zh=f"案件 {state.case_id} 仍在等待部門答覆，現在不能改為引導辦",
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
    review_of: str | None = None,
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
            review_of=review_of,
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
            zh="非引導辦的案件至少要指定一個協調部門",
        )
    classified = ev.CaseClassified(
        category=cl.category,
        reason=cl.reason,
        mode="guide" if guided else "coordinate",
        working_days=cl.working_days,
        due_date=cl.due_date,
        due_date_provisional=cl.due_date_provisional,
        duty_leader=None if guided else cl.duty_leader,
        departments=[] if guided else list(cl.departments),
    )
    out = [NewEvent(actor, classified)]
    if not guided:
        question = _question(intake, cl.category.value)
        out += _requests_for(state, cl.departments, question, cl.due_date, state.round)
    return out


def _revise_due_date(state: CaseState, cmd: c.ReviseDueDate) -> list[NewEvent]:
    """Nothing when the due date and its mark stand as recounted (another replica recorded it first)."""
    if state.due_date is None or (
        state.due_date == cmd.due_date and state.due_date_provisional == cmd.due_date_provisional
    ):
        return []
    revised = ev.DueDateRevised(
        previous_due_date=state.due_date,
        due_date=cmd.due_date,
        due_date_provisional=cmd.due_date_provisional,
        reason=cmd.reason[:200],
    )
    return [NewEvent("system", revised)]


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
    c.FollowUp: _follow_up,
    c.Reopen: _reopen_ordered,
    c.RecordAccountability: _record_accountability,
    c.RecordReviewNotice: _review_notice,
    c.ConcludeReview: _review_conclude,
    c.RevealPersonalData: _reveal,
    c.ReviseDueDate: _revise_due_date,
}
"""One function per command type (``typing.get_args(Command)``: a test checks none is missing)."""

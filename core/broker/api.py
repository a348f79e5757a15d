"""The API: one table of the verbs of ``unstuck.api.<verb>``, what each does, and how staff call it.

A case command builds a lifecycle command from its request (the model is ``API_REQUESTS[verb]``)
and the case; the runner decides and appends it. A query reads. ``cli`` and ``help`` word a case
command for ``unstuck case <name>``, which the CLI generates from this table. Replies mask id and
phone numbers unless the request asks to reveal them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from unstuck import lifecycle as lc
from unstuck.clock import local_date
from unstuck.eventstore import StoredEvent
from unstuck.schemas import Category, CoordinationReply, Level, api, mask_personal
from unstuck.schemas.events import AccountabilityRecorded

from .casebook import CaseBook
from .commands import CommandRunner, constant
from .errors import ApiFailure, no_such_case, parse, validation_failure
from .identity import CALLER, DEPARTMENT_VERBS, ONLINE, department_only, with_actor
from .ledgerview import LedgerView
from .online import case_by_receipt, status_for_applicant
from .rules import Rules

Build = Callable[[Any, Rules, lc.CaseState], lc.Command]
"""(request, rules, the case) -> the lifecycle command; raises ApiFailure to refuse."""


@dataclass(frozen=True)
class Verb:
    command: Build | None = None
    query: Callable[[Api, Any], Awaitable[dict[str, Any]]] | None = None
    cli: str = ""  # a case command's one-line summary for `unstuck case <name> --help`
    help: Mapping[str, str] = field(default_factory=dict)  # request field -> what to give


def classify(req: api.Classify, rules: Rules, state: lc.CaseState) -> lc.Command:
    start = state.opened_at or rules.clock.now()
    intake = api.OpenCase.model_validate(state.intake)
    c = rules.classification(intake, req.category, req.reason, req.departments, start)
    assert c is not None
    if state.state != lc.INTAKE:  # reclassification keeps the extensions already granted
        days, _ = rules.deadline(req.category, start)
        due = rules.calendar.add_working_days(local_date(start), days + state.extension_days)
        c = lc.Classification(
            category=c.category,
            reason=req.reason,
            working_days=days,
            due_date=due,
            due_date_provisional=rules.provisional(local_date(start), due),
            departments=c.departments,
            duty_leader=c.duty_leader,
        )
    return lc.Classify(actor=req.actor, actor_rank=rules.rank(req.actor), classification=c)


def extend(req: api.RequestExtension, rules: Rules, state: lc.CaseState) -> lc.Command:
    today = rules.today()
    due = rules.calendar.add_working_days(state.due_date or today, req.working_days)
    limit = rules.config.deadlines.max_extension_days
    return lc.RequestExtension(
        actor=req.actor,
        working_days=req.working_days,
        reason=req.reason,
        today=today,
        proposed_due_date=due,
        max_total=limit,
        due_date_provisional=rules.moved_provisional(state, due),
    )


def record(req: api.RecordReply, rules: Rules, state: lc.CaseState) -> lc.Command:
    reviews = [c for c in state.coordinations.values() if c.review_of is not None]
    asked = [c for c in [*state.current(), *reviews] if c.department == req.department and c.open]
    if not asked:
        raise ApiFailure(
            "not_allowed",
            f"case {req.case_id} has no open coordination with {req.department}",
            field="department",
            fix="see `unstuck case show` for the departments asked",
        )
    try:
        reply = CoordinationReply(
            request_id=asked[0].request_id, **req.model_dump(exclude={"case_id", "actor"})
        )
    except ValidationError as exc:
        raise validation_failure(exc, api.RecordReply) from exc
    return rules.reply(reply, asked[0].attempts or 1, req.actor)


def evaluate(req: api.Evaluate, rules: Rules, state: lc.CaseState) -> lc.Command:
    days, due = rules.deadline(Category(state.category or "hard"), rules.clock.now())
    follow_days = rules.config.deadlines.follow_up_working_days
    follow_due = rules.calendar.add_working_days(rules.today(), follow_days)
    return lc.Evaluate(
        actor=req.actor,
        level=req.satisfaction,
        follow_up_days=follow_days,
        follow_up_due=follow_due,
        follow_up_provisional=rules.provisional(rules.today(), follow_due),
        comment=req.comment,
        department_at_fault=req.department_at_fault,
        working_days=days,
        due_date=due,
        due_date_provisional=rules.provisional(rules.today(), due),
    )


def reopen(req: api.Reopen, rules: Rules, state: lc.CaseState) -> lc.Command:
    days, due = rules.deadline(Category(state.category or "hard"), rules.clock.now())
    return lc.Reopen(
        actor=req.actor,
        actor_rank=rules.rank(req.actor),
        reason=req.reason,
        working_days=days,
        due_date=due,
        due_date_provisional=rules.provisional(rules.today(), due),
    )


def approve_extension(req: api.ApproveExtension, rules: Rules, state: lc.CaseState) -> lc.Command:
    due = rules.extended_due_date(state)
    return lc.ApproveExtension(
        actor=req.actor,
        actor_rank=rules.rank(req.actor),
        due_date=due,
        due_date_provisional=due is not None and rules.moved_provisional(state, due),
    )


def escalate(req: api.Escalate, rules: Rules, state: lc.CaseState) -> lc.Command:
    if req.department != "window":
        rules.known_department(req.department, "department")
    level = int(Level[req.level.upper()])
    return lc.Escalate(
        actor=req.actor,
        department=req.department,
        level=level,
        note=req.note,
        chain=rules.chain(req.department),
    )


def rule_bounce(req: api.RuleBounce, rules: Rules, state: lc.CaseState) -> lc.Command:
    rules.known_department(req.department, "department")
    return lc.RuleBounce(actor=req.actor, actor_rank=rules.rank(req.actor), department=req.department)


def reveal(req: api.GetCase, state: lc.CaseState) -> lc.Command:
    """The command that records a reveal; refused without a known actor and a reason."""
    if not req.actor:
        raise ApiFailure(
            "not_allowed",
            "reveal: personal data is shown only to someone the record can name",
            field="actor",
            fix="connect with your own credentials, or give actor",
            message_zh="查看未遮蔽的個人信息須表明身份：請以本人憑證登錄",
        )
    if not req.reveal_reason:
        raise ApiFailure(
            "invalid_request",
            "reveal_reason: say why the unmasked id number and phone must be seen (it is recorded)",
            field="reveal_reason",
            fix="give reveal_reason, e.g. 核對申請人身份",
            message_zh="reveal_reason：請說明查看未遮蔽個人信息的理由（將記入案件記錄），例如：核對申請人身份",
        )
    applicant = (state.intake or {}).get("applicant") or {}
    fields = tuple(f for f in ("id_number", "phone") if applicant.get(f)) or ("id_number",)
    return lc.RevealPersonalData(actor=req.actor, fields=fields, reason=req.reveal_reason)


def departments_named(req: Any) -> list[str]:
    """The department codes a request names (``department``, ``departments``), "window" aside."""
    one = getattr(req, "department", None)
    many = getattr(req, "departments", None) or []
    return [c for c in [one, *many] if isinstance(c, str) and c != "window"]


def mask(record: dict[str, Any], key: str, reveal: bool) -> dict[str, Any]:
    """``record`` with the applicant in ``record[key]`` masked (a state's intake, an event's data)."""
    inner = record.get(key, {})
    if reveal or "applicant" not in inner:
        return record
    return {**record, key: {**inner, "applicant": mask_personal(inner["applicant"])}}


async def get_case(a: Api, req: api.GetCase) -> dict[str, Any]:
    await a.book.ensure(req.case_id)
    if req.reveal:  # shown unmasked only with a trace in the record: who, when, why
        await a.runner.execute(req.case_id, constant(reveal(req, a.case(req.case_id))))
    out: dict[str, Any] = {"state": mask(a.case(req.case_id).to_dict(), "intake", req.reveal)}
    out["today"] = a.rules.today().isoformat()  # the case clock's local date: is an open case past due?
    if req.events:
        out["events"] = [mask(e.fields, "data", req.reveal) for e in await a.read_case(req.case_id)]
    return out


async def list_cases(a: Api, req: api.ListCases) -> dict[str, Any]:
    if req.state is not None and req.state not in lc.STATES:  # a typo would list nothing, silently
        raise ApiFailure(
            "invalid_request",
            f"state: unknown state {req.state!r}",
            field="state",
            fix=f"use one of {', '.join(lc.STATES)}",
        )
    return await a.ledger.list_cases(req)


async def list_accountability(a: Api, req: api.ListAccountability) -> dict[str, Any]:
    return await a.ledger.list_accountability(req)


def online() -> bool:
    caller = CALLER.get()
    return caller is not None and caller.auth == ONLINE


async def open_case(a: Api, req: api.OpenCase) -> dict[str, Any]:
    if online() and req.applicant.phone is None:
        raise ApiFailure(
            "invalid_request",
            "applicant.phone: a case reported online needs the applicant's phone (its last 4 digits "
            "open the case with the receipt code)",
            field="applicant.phone",
            fix="give applicant.phone",
            message_zh="網上反映須留聯繫電話：查詢和評價時要用電話後 4 位",
        )
    return await a.open_case(req, online())


async def lookup_case(a: Api, req: api.LookupCase) -> dict[str, Any]:
    state = await case_by_receipt(a.book, req.receipt, req.phone_last4)
    return status_for_applicant(state, a.rules.today())


async def list_departments(a: Api, req: None) -> dict[str, Any]:
    names = a.rules.departments
    return {"departments": [{"code": code, "name": names[code]} for code in sorted(names)]}


async def status(a: Api, req: None) -> dict[str, Any]:
    return a.status()


async def tick(a: Api, req: None) -> dict[str, Any]:
    return {"events": await a.tick()}


VERBS: dict[str, Verb] = {
    "case.open": Verb(query=open_case),
    "case.get": Verb(query=get_case),
    "case.list": Verb(query=list_cases),
    "case.classify": Verb(
        classify,
        cli="classify, or reclassify with a reason",
        help={
            "category": "cannot | hard | refused | guided",
            "reason": "why this category",
            "departments": "department to ask (repeat)",
        },
    ),
    "case.handover": Verb(
        lambda req, rules, state: lc.Handover(
            actor=req.actor, actor_rank=rules.rank(req.actor), owner=req.owner, reason=req.reason
        ),
        cli="hand the case to a new owner",
        help={"owner": "the new owner's staff id", "reason": "why"},
    ),
    "case.extend": Verb(
        extend,
        cli="request an extension (延期)",
        help={"working_days": "extra working days", "reason": "why (延期理由)"},
    ),
    "case.approve_extension": Verb(
        approve_extension,
        cli="approve the pending extension (leaders)",
    ),
    "case.record": Verb(
        record,
        cli="record a department's answer given outside the bus",
        help={
            "department": "department code",
            "outcome": "resolved | accepted | cannot | not_ours | need_materials",
            "message": "the department's answer",
            "handler": "who answered",
            "legal_basis": "with cannot",
            "belongs_to": "with not_ours",
            "expected_date": "with accepted",
            "materials": "with need_materials (repeat)",
        },
    ),
    "case.guide": Verb(
        lambda req, rules, state: lc.Guide(
            actor=req.actor,
            actor_rank=rules.rank(req.actor),
            window=req.window,
            instructions=req.instructions,
            today=rules.today(),
        ),
        cli="guide the applicant to a regular window and close",
        help={"window": "the regular window to go to", "instructions": "what to bring, what to say"},
    ),
    "case.close": Verb(
        lambda req, rules, state: lc.Close(
            actor=req.actor,
            actor_rank=rules.rank(req.actor),
            outcome=req.outcome,
            explanation=req.explanation,
            today=rules.today(),
            override_reason=req.override_reason,
        ),
        cli="close the case (銷號)",
        help={
            "outcome": "resolved | cannot | guided | need_materials | withdrawn",
            "explanation": "what the applicant was told",
            "override_reason": "leaders: why the outcome differs from the departments' answers",
        },
    ),
    "case.evaluate": Verb(
        evaluate,
        cli="record the applicant's evaluation (好差評)",
        help={
            "level": "very_satisfied | satisfied | basically_satisfied | dissatisfied | very_dissatisfied",
            "rating": "good | bad (read as satisfied | dissatisfied)",
            "receipt": "online: the receipt code, instead of the case id",
            "phone_last4": "online: with the receipt code, the phone's last 4 digits",
            "comment": "the applicant's words",
            "department_at_fault": "a bad rating caused by this department reopens the case",
        },
    ),
    "case.lookup": Verb(query=lookup_case),
    "case.follow_up": Verb(
        lambda req, rules, state: lc.FollowUp(
            actor=req.actor,
            visit=req.visit,
            measures=req.measures,
            today=rules.today(),
            actor_rank=rules.rank(req.actor),
        ),
        cli="record the 回訪 and 整改 of a bad rating (owner or leader)",
        help={"visit": "回訪: what the applicant said", "measures": "整改: what was changed"},
    ),
    "departments.list": Verb(query=list_departments),
    "case.reopen": Verb(reopen, cli="reopen (leaders)", help={"reason": "why (重辦)"}),
    "case.escalate": Verb(
        escalate,
        cli="address any level of a department directly",
        help={
            "department": "department code or window",
            "level": "clerk | section_head | leader_in_charge | director",
            "note": "what you ask of them",
        },
    ),
    "case.rule_bounce": Verb(
        rule_bounce,
        cli="duty leader: decide which department handles a bounced case",
        help={"department": "who must handle it"},
    ),
    "case.review_notice": Verb(
        lambda req, rules, state: lc.RecordReviewNotice(
            actor=req.actor, department=req.department, how=req.how, note=req.note
        ),
        cli="record that the applicant was told of a `cannot` and its review (within 3 working days)",
        help={
            "department": "the department that answered cannot",
            "how": "by phone, SMS, letter, at the window",
            "note": "what was said",
        },
    ),
    "case.review_conclude": Verb(
        lambda req, rules, state: lc.ConcludeReview(
            actor=req.actor, department=req.department, outcome=req.outcome, note=req.note
        ),
        cli="record the higher department's conclusion on a `cannot` reviewed by hand",
        help={
            "department": "the department that answered cannot",
            "outcome": "upheld | overturned",
            "note": "the higher department's conclusion",
        },
    ),
    "accountability.record": Verb(
        lambda req, rules, state: lc.RecordAccountability(
            actor=req.actor,
            actor_rank=rules.rank(req.actor),
            data=AccountabilityRecorded(**req.model_dump(exclude={"case_id", "actor"})),
        ),
        cli="record accountability, or a leader's 容錯免責, in a refused (不給辦) case",
        help={
            "staff": "who refused",
            "section": "their section",
            "leader_in_charge": "分管領導",
            "finding": "what happened",
            "measures": "interview | performance_review | criticism | none (repeat)",
            "fault_tolerance": "容錯免責 (leaders, with measures none): acted in good faith",
        },
    ),
    "accountability.list": Verb(query=list_accountability),
    "status": Verb(query=status),
    "admin.tick": Verb(query=tick),
}
assert list(VERBS) == list(api.API_REQUESTS), "the verbs of the wire contract, in its order, and no other"


@dataclass(eq=False)
class Api:
    """Serves the verbs of the table with the broker's parts; ``handlers`` is what the transport calls."""

    book: CaseBook
    runner: CommandRunner
    rules: Rules
    read_case: Callable[[str], Awaitable[list[StoredEvent]]]
    ledger: LedgerView  # case.list and accountability.list
    open_case: Callable[[api.OpenCase, bool], Awaitable[dict[str, Any]]]  # (intake, reported online)
    status: Callable[[], dict[str, Any]]
    tick: Callable[[], Awaitable[int]]
    learn_departments: Callable[[list[str]], Awaitable[None]]  # asks the bus for ones not known yet
    require_identity: bool = False  # anonymous requests that act are refused (identity.py)
    online_owner: str | None = None  # who answers for cases reported online ([broker] online_owner)

    def __post_init__(self) -> None:
        self.handlers = {
            verb: self._handler(verb, api.API_REQUESTS[verb], spec) for verb, spec in VERBS.items()
        }

    def case(self, case_id: str) -> lc.CaseState:
        """The case in memory (``book.ensure`` reads a closed one back first)."""
        state = self.book.state_of(case_id)
        if not state.exists:
            raise no_such_case(case_id)
        return state

    def _handler(
        self, verb: str, model: type[Any] | None, spec: Verb
    ) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        fields = model.model_fields if model is not None else {}

        async def handle(body: dict[str, Any]) -> dict[str, Any]:
            body, caller = with_actor(verb, body, fields, CALLER.get(), self.require_identity)
            CALLER.set(caller)  # the events this request decides carry how their actor was proven
            if verb == "case.open" and online():
                body = self._online_intake(body)
            req: Any = parse(model, body) if model is not None else None
            if verb in DEPARTMENT_VERBS and req.actor != req.department:
                raise department_only(verb, req.department)
            if named := departments_named(req):
                await self.learn_departments(named)
            if spec.query is not None:
                return await spec.query(self, req)
            assert spec.command is not None
            if getattr(req, "receipt", None) is not None:  # online: the receipt code names the case
                found = await case_by_receipt(self.book, req.receipt, req.phone_last4)
                req = req.model_copy(update={"case_id": found.case_id})
            await self.book.ensure(req.case_id)
            command = spec.command(req, self.rules, self.case(req.case_id))
            return self.runner.reply(await self.runner.execute(req.case_id, constant(command)))

        return handle

    def _online_intake(self, body: dict[str, Any]) -> dict[str, Any]:
        """A report from the portal: channel online, owned by the staff member who answers for those."""
        if self.online_owner is None:
            raise ApiFailure(
                "unavailable",
                "nobody answers for cases reported online: the centre has not named one",
                field="owner",
                fix="set [broker] online_owner to the staff id who answers for online reports",
                message_zh="網上反映暫不可用：中心尚未指定網上反映的首問負責人",
            )
        return {**body, "owner": self.online_owner, "channel": "online"}

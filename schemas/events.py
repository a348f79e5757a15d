"""Events: the envelope every case event shares and one payload model per event type.

Event types are stable strings (never class paths) so a renamed class still replays.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError, model_validator

from .case import Applicant, CaseIntake, Channel, FactValue, MatterCode
from .common import (
    LEVEL_OF_RATING,
    CaseId,
    Category,
    DepartmentCode,
    LongText,
    Satisfaction,
    ShortText,
    StaffId,
    WireModel,
)
from .coordination import Outcome, RequestId

ENVELOPE_VERSION = 1
HashHex = Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{64})?$")]


class Envelope(WireModel):
    """One event of one case, exactly as stored in ``unstuck.case.<case_id>``."""

    event_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_-]{16,64}$")]
    case_id: CaseId
    seq: int = Field(ge=1, description="1, 2, 3 ... within the case")
    type: Annotated[str, StringConstraints(pattern=r"^[a-z_]+\.[a-z_]+$")]
    at: datetime = Field(description="UTC timestamp from the broker's clock")
    actor: StaffId
    data: dict[str, Any]
    prev_hash: HashHex = Field(description='hash of the previous event of this case, "" for the first')
    hash: HashHex = Field(description="sha256 over the canonical JSON of every other field")
    v: int = Field(default=ENVELOPE_VERSION, ge=1, description="schema version of this event")
    auth: Literal["nats", "web", "online", "claimed"] | None = Field(
        default=None,
        description="how the actor was proven: nats (their own NATS credentials), web (the console's "
        "signed-in session), claimed (named in an anonymous request, unproven); absent for the broker's own "
        "events and a department's answers on the bus",
    )


# --- payloads -------------------------------------------------------------------------------------


def _provisional() -> Any:
    """``due_date_provisional``: stored only when true, so the records of every other case read as before."""
    return Field(
        default=False,
        exclude_if=lambda provisional: not provisional,
        description="the due date was counted through a year whose holiday schedule (調休) was not "
        "published yet; case.due_date_revised records it again once the schedule is known",
    )


class CaseOpened(WireModel):
    """case.opened: the window accepted the case; its owner is whoever accepted it (首問負責制)."""

    channel: Channel
    applicant: Applicant
    matter: MatterCode
    matter_title: ShortText
    facts: dict[str, FactValue] = Field(default_factory=dict)
    window: ShortText
    department: DepartmentCode
    description: LongText
    category: Category | None = None
    owner: StaffId
    client_ref: str | None = None

    @classmethod
    def from_intake(cls, intake: CaseIntake) -> CaseOpened:
        return cls(**dict(intake))


class CaseClassified(WireModel):
    """case.classified: the category, the handling mode and the working-day deadline (1-3-5)."""

    category: Category
    reason: ShortText
    mode: Literal["guide", "coordinate"]
    working_days: int = Field(ge=1, le=60)
    due_date: date
    due_date_provisional: bool = _provisional()
    duty_leader: StaffId | None = None
    departments: list[DepartmentCode] = Field(default_factory=list)


class CaseReclassified(WireModel):
    """case.reclassified: a new category with its reason; the deadline follows the new category."""

    previous: Category
    category: Category
    reason: ShortText
    working_days: int = Field(ge=1, le=60)
    due_date: date
    due_date_provisional: bool = _provisional()


class OwnerAssigned(WireModel):
    """case.owner_assigned: an explicit handover to a new owner, on the record."""

    owner: StaffId
    previous_owner: StaffId
    reason: ShortText


class CoordinationRequested(WireModel):
    """coordination.requested: the broker asks a department; request_id stays the same on retries."""

    request_id: RequestId
    department: DepartmentCode
    question: LongText
    deadline: date
    rerouted_from: DepartmentCode | None = None
    round: int = Field(default=1, ge=1, description="coordination round; a reopened case starts a new one")
    review_of: DepartmentCode | None = Field(
        default=None,
        description="set when the higher department is asked to review this department's `cannot`",
    )


class CoordinationRetried(WireModel):
    """coordination.retried: an attempt failed and the next one follows."""

    request_id: RequestId
    department: DepartmentCode
    attempt: int = Field(ge=1, description="the attempt that failed")
    reason: Literal["timeout", "no_responders", "invalid_reply", "error"]
    detail: str = ""


class CoordinationReplied(WireModel):
    """coordination.replied: a valid answer from the department (or recorded by the window)."""

    request_id: RequestId
    department: DepartmentCode
    outcome: Outcome
    message: LongText
    handler: ShortText
    legal_basis: str | None = None
    belongs_to: DepartmentCode | None = None
    expected_date: date | None = None
    materials: list[str] = Field(default_factory=list)
    attempt: int = Field(default=1, ge=1)
    recorded_by: StaffId | None = Field(default=None, description="set when window staff recorded the answer")


class CoordinationStalled(WireModel):
    """coordination.stalled: the department exhausted its attempts; escalation takes over."""

    request_id: RequestId
    department: DepartmentCode
    attempts: int = Field(ge=1)
    last_reason: str


class CaseEscalated(WireModel):
    """case.escalated: the case climbs the chain (督辦), or the window addresses a level directly."""

    department: DepartmentCode
    level: int = Field(ge=0, le=3)
    role: Literal["clerk", "section_head", "leader_in_charge", "director"]
    target: str = Field(description="person or post at that level")
    reason: Literal[
        "overdue", "stalled", "bounced", "direct", "review_overdue", "notice_overdue", "follow_up_overdue"
    ]
    audience: str = Field(description="the notify subject's last token")
    note: str = ""


class DeadlineWarned(WireModel):
    """case.deadline_warned: 催辦 before the deadline."""

    due_date: date
    working_days_left: int = Field(ge=0)
    about: Literal["review_notice", "review", "follow_up"] | None = Field(
        default=None,
        description="none: the case's deadline; else a `cannot` review's notice or conclusion, or a bad "
        "rating's follow-up (回訪 and 整改)",
    )
    department: DepartmentCode | None = Field(default=None, description="whose `cannot` is under review")


class CaseOverdue(WireModel):
    """case.overdue: the deadline passed without a closing (督辦)."""

    due_date: date


class ExtensionRequested(WireModel):
    """case.extension_requested: 延期 asked before expiry, with a reason."""

    working_days: int = Field(ge=1, le=10)
    reason: ShortText
    proposed_due_date: date
    due_date_provisional: bool = _provisional()


class CaseExtended(WireModel):
    """case.extended: a leader approved the extension; the applicant is told the new date."""

    working_days: int = Field(ge=1, le=10)
    due_date: date
    due_date_provisional: bool = _provisional()
    approved_by: StaffId
    total_extension_days: int = Field(ge=1, le=10)


class CaseGuided(WireModel):
    """case.guided: no barrier; the applicant is directed to the named regular window."""

    window: ShortText
    instructions: LongText


class ReviewRequested(WireModel):
    """case.review_requested: a `cannot` answer goes up to the higher department for review."""

    department: DepartmentCode
    legal_basis: ShortText
    higher_department: ShortText
    notify_by: date = Field(description="the applicant is told within 3 working days")
    due_date: date | None = Field(default=None, description="the higher department's review is due")
    request_id: RequestId | None = Field(
        default=None, description="the coordination sent to the higher department; none: a manual step"
    )


class CaseResolved(WireModel):
    """case.resolved: every department has answered; the case can be closed."""

    outcome: Outcome
    summary: LongText
    departments: list[DepartmentCode]


class BounceRuled(WireModel):
    """case.bounce_ruled: after too many 退單 the duty leader decides who must handle it."""

    department: DepartmentCode
    ruled_by: StaffId
    bounces: int = Field(ge=1)


class CaseClosed(WireModel):
    """case.closed: 銷號, with the outcome and the explanation given to the applicant."""

    outcome: Literal["resolved", "cannot", "guided", "need_materials", "withdrawn"]
    explanation: LongText
    closed_by: StaffId
    on_time: bool
    override_reason: ShortText | None = Field(
        default=None, description="why a leader closed against the departments' answers"
    )
    overridden_by: StaffId | None = Field(default=None, description="the leader who overrode the answers")


class CaseEvaluated(WireModel):
    """case.evaluated: the applicant's 好差評, in the five levels of the national system; ``rating``
    is its good/bad reading (差評: 不滿意 or 非常不滿意), kept so that a reader of either finds it."""

    level: Satisfaction = Field(description="非常滿意 … 非常不滿意, best first")
    rating: Literal["good", "bad"] = Field(description="`bad` for the last two levels, else `good`")
    comment: str = Field(default="", max_length=2000)
    department_at_fault: DepartmentCode | None = Field(
        default=None, description="set when the window attributes a bad rating to a department's own fault"
    )

    @model_validator(mode="after")
    def _rating_agrees(self) -> CaseEvaluated:
        if self.rating != self.level.rating:
            raise ValueError(f"rating {self.rating!r} disagrees with level {self.level.value!r}")
        return self


class CaseReopened(WireModel):
    """case.reopened: 重辦 after a bad rating attributed to a department, or on a leader's order."""

    reason: ShortText
    departments: list[DepartmentCode]
    round: int = Field(ge=2)
    working_days: int = Field(ge=1, le=60)
    due_date: date
    due_date_provisional: bool = _provisional()


class AccountabilityRecorded(WireModel):
    """accountability.recorded: who refused in a 不給辦 case, the finding, and 容錯免責."""

    staff: StaffId
    section: ShortText
    leader_in_charge: ShortText
    finding: LongText
    measures: list[Literal["interview", "performance_review", "criticism", "none"]] = Field(min_length=1)
    fault_tolerance: bool = Field(description="容錯免責: the staff acted in good faith")


class IntakeDeadlineSet(WireModel):
    """case.intake_deadline_set: an unclassified case must be classified by this day (watched like any)."""

    working_days: int = Field(ge=0, le=10, description="0: the working day the case was opened")
    due_date: date
    due_date_provisional: bool = _provisional()


class ReviewNoticeGiven(WireModel):
    """case.review_notice_given: the applicant was told of the `cannot` answer and its review."""

    department: DepartmentCode = Field(description="the department whose `cannot` is under review")
    how: ShortText = Field(description="by phone, SMS, letter, at the window ...")
    note: str = Field(default="", max_length=2000)


class ReviewConcluded(WireModel):
    """case.review_concluded: the higher department's conclusion on a `cannot`, recorded by the window."""

    department: DepartmentCode
    outcome: Literal["upheld", "overturned"]
    note: LongText


class DueDateRevised(WireModel):
    """case.due_date_revised: the due date counted again on the working calendar, after a year it was
    counted through got its published schedule (or the schedule changed)."""

    previous_due_date: date
    due_date: date
    due_date_provisional: bool = Field(description="still counted through a year not published")
    reason: ShortText


class PersonalDataRevealed(WireModel):
    """case.personal_data_revealed: someone was shown the applicant's unmasked identifiers, and why."""

    fields: list[Literal["id_number", "phone"]] = Field(min_length=1, description="what was shown unmasked")
    reason: ShortText = Field(description="why it had to be seen (the actor is the envelope's)")


class FollowUpOpened(WireModel):
    """case.follow_up_opened: a 差評 (不滿意 or 非常不滿意) is followed up: the window visits the
    applicant again (回訪) and puts right what caused it (整改) by ``due_date``, watched like a deadline."""

    level: Satisfaction = Field(description="the rating that opened it")
    working_days: int = Field(ge=1, le=60)
    due_date: date
    due_date_provisional: bool = False


class FollowUpDone(WireModel):
    """case.follow_up_done: the 回訪 and 整改 of a bad rating, recorded by the owner or a leader."""

    visit: LongText = Field(description="回訪: what the applicant was told and said when visited again")
    measures: LongText = Field(description="整改: what was changed so that it does not happen again")
    on_time: bool = Field(description="recorded by the follow-up's due date")


class RatingInvited(WireModel):
    """case.rating_invited: 邀評, once: the applicant had not rated the case ``days`` days after 銷號."""

    closed_on: date = Field(description="the local date of the closing")
    days: int = Field(ge=1, le=30, description="days after the closing the invitation went out")


class ReceiptIssued(WireModel):
    """case.receipt_issued: an applicant who reported online was given a receipt code (回執碼) to look
    the case up and rate it; the record keeps only its digest."""

    digest: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="SHA-256 of the code's secret part, hex"
    )


EVENT_TYPES: dict[str, type[WireModel]] = {
    "case.opened": CaseOpened,
    "case.classified": CaseClassified,
    "case.reclassified": CaseReclassified,
    "case.owner_assigned": OwnerAssigned,
    "coordination.requested": CoordinationRequested,
    "coordination.retried": CoordinationRetried,
    "coordination.replied": CoordinationReplied,
    "coordination.stalled": CoordinationStalled,
    "case.escalated": CaseEscalated,
    "case.deadline_warned": DeadlineWarned,
    "case.overdue": CaseOverdue,
    "case.extension_requested": ExtensionRequested,
    "case.extended": CaseExtended,
    "case.guided": CaseGuided,
    "case.review_requested": ReviewRequested,
    "case.resolved": CaseResolved,
    "case.bounce_ruled": BounceRuled,
    "case.closed": CaseClosed,
    "case.evaluated": CaseEvaluated,
    "case.reopened": CaseReopened,
    "accountability.recorded": AccountabilityRecorded,
    "case.intake_deadline_set": IntakeDeadlineSet,
    "case.review_notice_given": ReviewNoticeGiven,
    "case.review_concluded": ReviewConcluded,
    "case.due_date_revised": DueDateRevised,
    "case.personal_data_revealed": PersonalDataRevealed,
    "case.receipt_issued": ReceiptIssued,
    "case.follow_up_opened": FollowUpOpened,
    "case.follow_up_done": FollowUpDone,
    "case.rating_invited": RatingInvited,
}

_TYPE_OF_MODEL: dict[type[WireModel], str] = {model: name for name, model in EVENT_TYPES.items()}


def event_type_of(payload: WireModel) -> str:
    """The event type string of a payload, from ``EVENT_TYPES`` (the one table binding the two)."""
    try:
        return _TYPE_OF_MODEL[type(payload)]
    except KeyError:
        raise EventSchemaError(f"{type(payload).__name__} is not an event payload model") from None


EVENT_LABELS: dict[str, tuple[str, str]] = {
    "case.opened": ("受理", "opened"),
    "case.classified": ("分類", "classified"),
    "case.reclassified": ("重新分類", "reclassified"),
    "case.owner_assigned": ("移交", "handed over"),
    "coordination.requested": ("發起協調", "coordination requested"),
    "coordination.retried": ("重試", "attempt retried"),
    "coordination.replied": ("部門答覆", "department replied"),
    "coordination.stalled": ("部門未答覆", "department stalled"),
    "case.escalated": ("督辦升級", "escalated"),
    "case.deadline_warned": ("催辦", "deadline warning"),
    "case.overdue": ("逾期", "overdue"),
    "case.extension_requested": ("申請延期", "extension requested"),
    "case.extended": ("批准延期", "extension approved"),
    "case.guided": ("引導辦理", "guided to a regular window"),
    "case.review_requested": ("提請上級複核", "review requested"),
    "case.resolved": ("辦結待銷號", "resolved"),
    "case.bounce_ruled": ("退單裁定", "bounce ruled"),
    "case.closed": ("銷號", "closed"),
    "case.evaluated": ("好差評", "evaluated"),
    "case.reopened": ("重辦", "reopened"),
    "accountability.recorded": ("問責記錄", "accountability recorded"),
    "case.intake_deadline_set": ("分類時限", "intake deadline set"),
    "case.review_notice_given": ("複核告知", "applicant told of the review"),
    "case.review_concluded": ("複核結論", "review concluded"),
    "case.due_date_revised": ("期限重算", "due date revised"),
    "case.personal_data_revealed": ("查看個人信息", "personal data revealed"),
    "case.receipt_issued": ("發放回執碼", "receipt issued"),
    "case.follow_up_opened": ("差評回訪整改", "bad rating followed up"),
    "case.follow_up_done": ("回訪整改完成", "follow-up done"),
    "case.rating_invited": ("邀評", "invited to rate"),
}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(event type, version) → function lifting that version's data to the next version."""

CURRENT_VERSIONS: dict[str, int] = dict.fromkeys(EVENT_TYPES, ENVELOPE_VERSION)


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function that lifts ``event_type`` data from ``from_version`` to the next version."""

    def register(fn: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = fn
        CURRENT_VERSIONS[event_type] = max(CURRENT_VERSIONS.get(event_type, 1), from_version + 1)
        return fn

    return register


class EventSchemaError(ValueError):
    """An event whose type is unknown or whose data does not match its type."""


def parse_payload(event_type: str, data: dict[str, Any], version: int = ENVELOPE_VERSION) -> WireModel:
    """Validate an event's data against its type, upcasting older versions first."""
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise EventSchemaError(f"type {event_type!r} is not a known event type")
    current = CURRENT_VERSIONS[event_type]
    if version > current:
        raise EventSchemaError(
            f"{event_type} v{version} is newer than this code knows (v{current}): upgrade unstuck"
        )
    while version < current:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise EventSchemaError(f"no upcaster for {event_type} v{version}")
        data = step(data)
        version += 1
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "data"
        raise EventSchemaError(f"{event_type} v{version} data.{where}: {err['msg']}") from exc


@upcaster("case.evaluated", 1)
def _evaluated_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 rated good or bad only; v2 has the five levels: good reads as 滿意, bad as 不滿意."""
    return {"level": LEVEL_OF_RATING[data["rating"]].value, **data}


@upcaster("case.closed", 1)
def _closed_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 recorded no ``on_time`` flag (introduced in v2); a v1 closing is taken as on time unless stated."""
    return {"on_time": True, **data}

"""Requests and replies of the broker's API subjects ``unstuck.api.<verb>``."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from .case import CaseIntake, CheckedApplicant, MaskedStr
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
from .coordination import Outcome


class ApiError(WireModel):
    """A refused request: what is wrong, where, and how to fix it."""

    code: Literal[
        "invalid_json",
        "invalid_request",
        "payload_too_large",
        "not_found",
        "not_allowed",
        "conflict",
        "unavailable",
        "rate_limited",
        "unauthenticated",  # the request acts, and came without a proven identity
        "actor_mismatch",  # the body names someone other than the one signed in
        "internal",
    ]
    message: str
    message_zh: str | None = Field(default=None, description="the same for window staff, in Chinese")
    field: str | None = None
    fix: str | None = None


class ApiReply(WireModel):
    ok: bool
    result: Any = None
    error: ApiError | None = None


class OpenCase(CaseIntake):
    """``case.open``: the intake record; the applicant's identifiers are normalised and checked."""

    applicant: CheckedApplicant = Field(
        description="the applicant (申請人): the citizen or enterprise whose matter failed; the id number "
        "must pass its check digit (GB 11643 or GB 32100) once normalised"
    )


class GetCase(WireModel):
    """``case.get``."""

    case_id: CaseId
    events: bool = True
    reveal: bool = Field(
        default=False,
        description="include unmasked personal identifiers: recorded in the case (who, when, why)",
    )
    reveal_reason: ShortText | None = Field(
        default=None, description="why they must be seen; required with reveal"
    )
    actor: StaffId | None = Field(
        default=None, description="who looks; taken from the credentials when proven"
    )


class ListCases(WireModel):
    """``case.list``: filters of the case ledger (台賬); every filter given must hold."""

    state: str | None = None
    category: Category | None = None
    department: DepartmentCode | None = Field(
        default=None, description="the intake department or any department asked"
    )
    overdue: bool | None = None
    applicant_id_number: MaskedStr | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the applicant's id number or credit code, matched through its keyed hash; never echoed",
    )
    matter: ShortText | None = Field(
        default=None, description="part of the matter's title, or its code (e.g. shop_sign)"
    )
    client_ref: str | None = Field(
        default=None, min_length=1, max_length=80, description="the client_ref the case was opened with"
    )
    opened_from: date | None = Field(default=None, description="opened on this local date or later")
    opened_to: date | None = Field(default=None, description="opened on this local date or earlier")
    limit: int = Field(default=200, ge=1, le=10000)

    @field_validator("opened_to")
    @classmethod
    def _range(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("opened_from")
        if value is not None and start is not None and value < start:
            raise ValueError(f"opened_to {value} is before opened_from {start}: give a range in order")
        return value


class Classify(WireModel):
    """``case.classify``: first classification, or a reclassification with its reason."""

    case_id: CaseId
    actor: StaffId
    category: Category
    reason: ShortText
    departments: list[DepartmentCode] | None = None


class Handover(WireModel):
    """``case.handover``: explicit change of owner."""

    case_id: CaseId
    actor: StaffId
    owner: StaffId
    reason: ShortText


class RequestExtension(WireModel):
    """``case.extend``: ask for 延期 before the deadline."""

    case_id: CaseId
    actor: StaffId
    working_days: int = Field(ge=1, le=10)
    reason: ShortText


class ApproveExtension(WireModel):
    """``case.approve_extension``: a leader approves the pending extension."""

    case_id: CaseId
    actor: StaffId


class RecordReply(WireModel):
    """``case.record``: window staff record a department's answer given outside the bus."""

    case_id: CaseId
    actor: StaffId
    department: DepartmentCode
    outcome: Outcome
    message: LongText
    handler: ShortText
    legal_basis: ShortText | None = None
    belongs_to: DepartmentCode | None = None
    expected_date: date | None = None
    materials: list[ShortText] = Field(default_factory=list)


class Guide(WireModel):
    """``case.guide``: direct the applicant to the named regular window and close the case."""

    case_id: CaseId
    actor: StaffId
    window: ShortText
    instructions: LongText


class Close(WireModel):
    """``case.close``: 銷號 with the outcome and the explanation given to the applicant."""

    case_id: CaseId
    actor: StaffId
    outcome: Literal["resolved", "cannot", "guided", "need_materials", "withdrawn"]
    explanation: LongText
    override_reason: ShortText | None = Field(
        default=None, description="a leader closing against the departments' answers says why"
    )


class FollowUp(WireModel):
    """``case.follow_up``: the 回訪 and 整改 of a bad rating, by the case's owner or a leader."""

    case_id: CaseId
    actor: StaffId
    visit: LongText = Field(description="回訪: what the applicant was told and said")
    measures: LongText = Field(description="整改: what was changed")


ReceiptCode = Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
PhoneLast4 = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]


class Evaluate(WireModel):
    """``case.evaluate``: the applicant's 好差評, from the applicant's own channel only: the window's
    evaluation screen names the case; the online portal gives the receipt code and the last four
    digits of the phone instead."""

    case_id: CaseId | None = Field(default=None, description="the case (the evaluation screen)")
    receipt: ReceiptCode | None = Field(default=None, description="the receipt code (online)")
    phone_last4: PhoneLast4 | None = Field(
        default=None, description="with receipt: the phone's last 4 digits"
    )
    actor: StaffId = Field(
        default="applicant",
        description="the applicant's channel (`applicant`), taken from who sends it; staff cannot rate",
    )
    level: Satisfaction | None = Field(default=None, description="非常滿意 … 非常不滿意 (the five levels)")
    rating: Literal["good", "bad"] | None = Field(
        default=None, description="good or bad, for a client that knows no levels: read as 滿意 or 不滿意"
    )
    comment: str = Field(default="", max_length=2000)
    department_at_fault: DepartmentCode | None = None

    @model_validator(mode="after")
    def _one_case_one_rating(self) -> Evaluate:
        if (self.case_id is None) == (self.receipt is None):
            raise ValueError("give case_id (the evaluation screen) or receipt with phone_last4 (online)")
        if self.receipt is not None and self.phone_last4 is None:
            raise ValueError("phone_last4: give the last 4 digits of the phone with the receipt")
        if self.level is None and self.rating is None:
            raise ValueError("level: give one of the five levels (very_satisfied … very_dissatisfied)")
        if self.level is not None and self.rating is not None and self.rating != self.level.rating:
            raise ValueError(
                f"rating {self.rating!r} disagrees with level {self.level.value!r}; give level only"
            )
        return self

    @property
    def satisfaction(self) -> Satisfaction:
        return self.level if self.level is not None else LEVEL_OF_RATING[self.rating or "good"]


class LookupCase(WireModel):
    """``case.lookup``: the online applicant's status page, by receipt code and the phone's last 4 digits."""

    receipt: ReceiptCode
    phone_last4: PhoneLast4


class Reopen(WireModel):
    """``case.reopen``: 重辦 on a leader's order."""

    case_id: CaseId
    actor: StaffId
    reason: ShortText


class Escalate(WireModel):
    """``case.escalate``: the window's special authority to address any level directly."""

    case_id: CaseId
    actor: StaffId
    department: DepartmentCode
    level: Literal["clerk", "section_head", "leader_in_charge", "director"]
    note: ShortText


class RecordAccountability(WireModel):
    """``accountability.record``: the finding in a 不給辦 case."""

    case_id: CaseId
    actor: StaffId
    staff: StaffId
    section: ShortText
    leader_in_charge: ShortText
    finding: LongText
    measures: list[Literal["interview", "performance_review", "criticism", "none"]] = Field(min_length=1)
    fault_tolerance: bool = False


class ReviewNotice(WireModel):
    """``case.review_notice``: the applicant was told of a `cannot` and its review (within 3 working days)."""

    case_id: CaseId
    actor: StaffId
    department: DepartmentCode = Field(description="the department whose `cannot` is under review")
    how: ShortText
    note: str = Field(default="", max_length=2000)


class ReviewConclude(WireModel):
    """``case.review_conclude``: the higher department's conclusion on a `cannot` reviewed by hand."""

    case_id: CaseId
    actor: StaffId
    department: DepartmentCode = Field(description="the department whose `cannot` was reviewed")
    outcome: Literal["upheld", "overturned"]
    note: LongText


class RuleBounce(WireModel):
    """``case.rule_bounce``: the duty leader decides which department must handle a bounced matter."""

    case_id: CaseId
    actor: StaffId
    department: DepartmentCode


class ListAccountability(WireModel):
    """``accountability.list``."""

    staff: StaffId | None = None
    department: DepartmentCode | None = None


API_REQUESTS: dict[str, type[WireModel] | None] = {
    "case.open": OpenCase,
    "case.get": GetCase,
    "case.list": ListCases,
    "case.classify": Classify,
    "case.handover": Handover,
    "case.extend": RequestExtension,
    "case.approve_extension": ApproveExtension,
    "case.record": RecordReply,
    "case.guide": Guide,
    "case.close": Close,
    "case.evaluate": Evaluate,
    "case.lookup": LookupCase,
    "case.follow_up": FollowUp,
    "departments.list": None,
    "case.reopen": Reopen,
    "case.escalate": Escalate,
    "case.rule_bounce": RuleBounce,
    "case.review_notice": ReviewNotice,
    "case.review_conclude": ReviewConclude,
    "accountability.record": RecordAccountability,
    "accountability.list": ListAccountability,
    "status": None,
    "admin.tick": None,
}
"""Every API verb (``unstuck.api.<verb>``) and the model of its request body; None takes an empty object."""

API_ERROR_CODES: tuple[str, ...] = get_args(ApiError.model_fields["code"].annotation)
"""The codes an API error can carry (also the ``reason`` label of ``unstuck_api_errors_total``)."""

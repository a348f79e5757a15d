"""Coordination request and reply: the contract between the broker and a department adapter."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from .case import FactValue, MatterCode
from .common import CaseId, Category, DepartmentCode, LongText, ShortText, WireModel

RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{4,80}$")]


class Outcome(StrEnum):
    """What a department answers."""

    RESOLVED = "resolved"  # done
    ACCEPTED = "accepted"  # working on it; expected_date says when
    CANNOT = "cannot"  # the law forbids it; legal_basis says which rule
    NOT_OURS = "not_ours"  # 退單: belongs_to names the right department
    NEED_MATERIALS = "need_materials"  # the applicant must bring more; materials lists them


OUTCOME_LABELS: dict[str, tuple[str, str]] = {
    Outcome.RESOLVED: ("已解決", "resolved"),
    Outcome.ACCEPTED: ("已受理辦理中", "accepted"),
    Outcome.CANNOT: ("不能辦理", "cannot"),
    Outcome.NOT_OURS: ("非本部門", "not ours"),
    Outcome.NEED_MATERIALS: ("需補材料", "materials needed"),
    # the outcomes a closing (銷號, events.CaseClosed) records besides the ones above
    "guided": ("已引導辦理", "guided"),
    "withdrawn": ("申請人撤回", "withdrawn"),
}
"""What staff read for a department's answer and for the outcome of a closing: (Chinese, English)."""

FINAL_OUTCOMES = frozenset({Outcome.RESOLVED, Outcome.CANNOT, Outcome.NEED_MATERIALS, Outcome.ACCEPTED})


class CoordinationRequest(WireModel):
    """Sent to ``unstuck.dept.<department>.coordinate``; ``request_id`` is stable across retries."""

    request_id: RequestId
    case_id: CaseId
    department: DepartmentCode
    category: Category
    matter: MatterCode
    matter_title: ShortText
    facts: dict[str, FactValue] = Field(default_factory=dict)
    question: LongText
    deadline: date = Field(description="the working day by which the department must answer")
    reply_by: datetime = Field(description="drop the request unanswered after this instant (UTC)")
    attempt: int = Field(ge=1)


class CoordinationReply(WireModel):
    """A department's answer; validated by the broker, a reply that does not validate is the department's fault."""

    request_id: RequestId
    department: DepartmentCode
    outcome: Outcome
    message: LongText
    handler: ShortText = Field(description="who in the department answered")
    legal_basis: ShortText | None = Field(default=None, description="required with outcome cannot")
    belongs_to: DepartmentCode | None = Field(default=None, description="required with outcome not_ours")
    expected_date: date | None = Field(default=None, description="required with outcome accepted")
    materials: list[ShortText] = Field(default_factory=list, description="required with need_materials")

    @model_validator(mode="after")
    def _outcome_needs_its_field(self) -> Self:
        needs = {
            Outcome.CANNOT: ("legal_basis", "name the law or rule that forbids it"),
            Outcome.NOT_OURS: ("belongs_to", "name the department code the matter belongs to"),
            Outcome.ACCEPTED: ("expected_date", "give the date the department expects to finish"),
            Outcome.NEED_MATERIALS: ("materials", "list the materials the applicant must bring"),
        }
        if self.outcome in needs:
            field, fix = needs[self.outcome]
            if not getattr(self, field):
                raise ValueError(f"{field} is required when outcome is {self.outcome.value}: {fix}")
        if self.outcome is Outcome.NOT_OURS and self.belongs_to == self.department:
            raise ValueError(
                "belongs_to names the replying department itself: name the department it belongs to"
            )
        return self


OVERRAN_CODE = "504"
"""The service error code of an answer the adapter host gives for a hook still running near ``reply_by``:
the broker counts it as a timeout, with the host's explanation (blocked loop, or a slow hook)."""


class AdapterError(WireModel):
    """What an adapter answers to a request it cannot parse (and the broker to a reply it refuses)."""

    error: ShortText
    field: str | None = None
    fix: str | None = None
    detail: LongText | None = Field(
        default=None,
        description="the whole story when ``error`` must be short: every validation error, the exception",
    )

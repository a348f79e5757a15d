"""The case as the window accepts it: applicant, matter, where it failed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, field_serializer

from .common import CaseId, Category, DepartmentCode, LongText, ShortText, StaffId, WireModel
from .privacy import mask_identifier


class MaskedStr(SecretStr):
    """A personal identifier: masked in ``repr``/``str`` and logs, the full value only in the JSON record."""

    def _display(self) -> str:
        return mask_identifier(self.get_secret_value())

    def masked(self) -> str:
        return self._display()


IdNumber = Annotated[
    MaskedStr,
    Field(description="citizen id (18 characters) or unified social credit code; masked in repr and logs"),
]


class Channel(StrEnum):
    """How the matter reached the window."""

    WINDOW = "window"  # in person at the 辦不成事 window
    PHONE = "phone"  # 12345 hotline or the window's own number
    ONLINE = "online"  # the online service portal
    ENTERPRISE = "enterprise"  # 民企直通車, the enterprise direct channel


class Applicant(WireModel):
    """A citizen or an enterprise whose matter failed at a regular window."""

    kind: Literal["citizen", "enterprise"]
    name: ShortText
    id_number: IdNumber
    phone: MaskedStr | None = None
    contact: ShortText | None = Field(default=None, description="contact person of an enterprise")

    @field_serializer("id_number", "phone", when_used="json")
    def _reveal(self, value: MaskedStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    def masked(self) -> dict[str, str | None]:
        """The applicant as logs, tables and metrics may show it."""
        return {
            "kind": self.kind,
            "name": self.name,
            "id_number": self.id_number.masked(),
            "phone": self.phone.masked() if self.phone else None,
        }


SAFE_INTEGER = 2**53 - 1
"""The largest integer a JSON number holds exactly everywhere (I-JSON, RFC 7493): the hash chain's
canonical form (RFC 8785) writes no integer beyond ±SAFE_INTEGER."""
FactValue = str | Annotated[int, Field(ge=-SAFE_INTEGER, le=SAFE_INTEGER)] | bool
MatterCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class CaseIntake(WireModel):
    """What the window records when it accepts a case (the body of ``case.open``)."""

    channel: Channel = Channel.WINDOW
    applicant: Applicant
    matter: MatterCode = Field(description="the matter as a code the departments know, e.g. shop_sign")
    matter_title: ShortText = Field(description="the matter in words, e.g. 門頭招牌設置")
    facts: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")], FactValue] = Field(
        default_factory=dict, max_length=50, description="structured facts the departments decide on"
    )
    window: ShortText = Field(description="the regular window where the matter failed")
    department: DepartmentCode = Field(description="the department of that window")
    description: LongText
    category: Category | None = Field(default=None, description="set at intake, or left for classification")
    owner: StaffId = Field(description="the staff member who accepts the case (首問負責制)")
    client_ref: Annotated[str, StringConstraints(min_length=1, max_length=80)] | None = Field(
        default=None, description="the caller's idempotency key: a repeated open returns the same case"
    )


class CaseSummary(WireModel):
    """One line of the case ledger (台賬)."""

    case_id: CaseId
    opened_at: datetime
    state: str
    category: Category | None
    department: DepartmentCode
    departments: list[DepartmentCode]
    owner: StaffId
    matter_title: str
    applicant: str = Field(description="masked applicant name and id")
    due_date: str | None
    overdue: bool
    escalation_level: int

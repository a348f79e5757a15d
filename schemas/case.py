"""The case as the window accepts it: applicant, matter, where it failed."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, ValidationInfo, field_serializer, field_validator
from pydantic_core import PydanticCustomError

from .common import CaseId, Category, DepartmentCode, LongText, ShortText, StaffId, WireModel
from .identifiers import Problem, identifier_problem, normalised_identifier, phone_problem
from .privacy import mask_email, mask_identifier


class MaskedStr(SecretStr):
    """A personal identifier: masked in ``repr``/``str`` and logs, the full value only in the JSON record."""

    def _display(self) -> str:
        return mask_identifier(self.get_secret_value())

    def masked(self) -> str:
        return self._display()


class MaskedEmail(MaskedStr):
    """An email address: masked like a phone number, its first character and domain kept."""

    def _display(self) -> str:
        return mask_email(self.get_secret_value())


EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


IdNumber = Annotated[
    MaskedStr,
    Field(
        description="a citizen's resident id number (居民身份證號碼, 18 characters) or an enterprise's "
        "unified social credit code (統一社會信用代碼); kept in full in the record, masked wherever shown "
        "and in logs"
    ),
]


class Channel(StrEnum):
    """How the matter reached the window (受理渠道): `window` in person at the 辦不成事 window, `phone`
    the 12345 hotline or the window's own number, `online` the online service portal, `enterprise`
    民企直通車, the enterprise direct channel."""

    WINDOW = "window"  # in person at the 辦不成事 window
    PHONE = "phone"  # 12345 hotline or the window's own number
    ONLINE = "online"  # the online service portal
    ENTERPRISE = "enterprise"  # 民企直通車, the enterprise direct channel


class Applicant(WireModel):
    """A citizen or an enterprise whose matter failed at a regular window."""

    kind: Literal["citizen", "enterprise"] = Field(description="`citizen` (個人) or `enterprise` (企業)")
    name: ShortText = Field(description="the citizen's name, or the enterprise's registered name (名稱)")
    id_number: IdNumber
    phone: MaskedStr | None = Field(
        default=None,
        description="the applicant's phone number (聯繫電話); kept in full in the record, masked wherever "
        "shown and in logs",
    )
    contact: ShortText | None = Field(
        default=None, description="an enterprise's contact person (聯繫人), e.g. 王麗"
    )
    email: MaskedEmail | None = Field(
        default=None,
        description="the applicant's email address (電子郵箱), where notifications are mailed; kept in full "
        "in the record, masked wherever shown and in logs",
    )

    @field_serializer("id_number", "phone", "email", when_used="json")
    def _reveal(self, value: MaskedStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    def masked(self) -> dict[str, str | None]:
        """The applicant as logs, tables and metrics may show it."""
        return {
            "kind": self.kind,
            "name": self.name,
            "id_number": self.id_number.masked(),
            "phone": self.phone.masked() if self.phone else None,
            "email": self.email.masked() if self.email else None,
        }


def _refused(problem: Problem) -> PydanticCustomError:
    fix = "check it against the applicant's document (身份證, 營業執照) and send it again"
    return PydanticCustomError("identifier", "{en}", {"en": problem.en, "zh": problem.zh, "fix": fix})


class CheckedApplicant(Applicant):
    """The applicant as a new case gives it: the id number normalised (full-width folded, spaces and
    zero-width characters removed, upper case) and valid by its check digit (GB 11643 for a
    citizen, GB 32100 for an enterprise), the phone number normalised and made of digits. Stored
    events keep the plain ``Applicant``: what was accepted once is read as it was written."""

    @field_validator("id_number")
    @classmethod
    def _valid_id_number(cls, value: MaskedStr, info: ValidationInfo) -> MaskedStr:
        normalised = normalised_identifier(value.get_secret_value())
        if (problem := identifier_problem(info.data.get("kind", "citizen"), normalised)) is not None:
            raise _refused(problem)
        return MaskedStr(normalised)

    @field_validator("phone")
    @classmethod
    def _valid_phone(cls, value: MaskedStr | None) -> MaskedStr | None:
        if value is None:
            return None
        normalised = normalised_identifier(value.get_secret_value())
        if (problem := phone_problem(normalised)) is not None:
            raise _refused(problem)
        return MaskedStr(normalised)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: MaskedEmail | None) -> MaskedEmail | None:
        if value is None:
            return None
        address = value.get_secret_value().strip()
        if len(address) > 254 or not EMAIL.fullmatch(address):
            raise PydanticCustomError(
                "email",
                "{en}",
                {
                    "en": "not an email address like name@example.com",
                    "zh": "電子郵箱格式不正確，例如 name@example.com",
                    "fix": "check the address with the applicant, or leave it out",
                },
            )
        return MaskedEmail(address)


SAFE_INTEGER = 2**53 - 1
"""The largest integer a JSON number holds exactly everywhere (I-JSON, RFC 7493): the hash chain's
canonical form (RFC 8785) writes no integer beyond ±SAFE_INTEGER."""
FactValue = str | Annotated[int, Field(ge=-SAFE_INTEGER, le=SAFE_INTEGER)] | bool
MatterCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class CaseIntake(WireModel):
    """What the window records when it accepts a case (the body of ``case.open``)."""

    channel: Channel = Field(
        default=Channel.WINDOW, description="how the matter reached the window (受理渠道)"
    )
    applicant: Applicant = Field(
        description="the applicant (申請人): the citizen or enterprise whose matter failed"
    )
    matter: MatterCode = Field(
        description="the matter (事項) as a code the departments know, e.g. shop_sign; a department's "
        "adapter decides on it"
    )
    matter_title: ShortText = Field(description="the matter in words (事項名稱), e.g. 門頭招牌設置")
    facts: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")], FactValue] = Field(
        default_factory=dict,
        max_length=50,
        description='structured facts the departments decide on (案情要素), e.g. {"floor": 2}: a name in '
        "lowercase ASCII, a value that is text, a whole number or true/false",
    )
    window: ShortText = Field(
        description="the regular window where the matter failed (原辦理窗口), e.g. 城管局戶外廣告審批窗口"
    )
    department: DepartmentCode = Field(
        description="the code of that window's department (原窗口所屬部門), e.g. chengguan; a department the "
        "broker knows"
    )
    description: LongText = Field(
        description="what happened (情況說明): what the applicant asked for and what the regular window said"
    )
    category: Category | None = Field(
        default=None,
        description="the classification (分類), if the window knows it at intake; left out, a "
        "classification rule suggests one from the description, or staff classify the case later",
    )
    owner: StaffId = Field(
        description="the staff id of who accepts the case and answers for it to the end (首問負責制), "
        "e.g. w-zhang"
    )
    client_ref: Annotated[str, StringConstraints(min_length=1, max_length=80)] | None = Field(
        default=None,
        description="the caller's idempotency key (e.g. its own record number): opening again with the same "
        "client_ref returns the case opened first instead of a new one",
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

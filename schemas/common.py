"""Shared field types of the wire contract: subject-safe tokens, categories, masked identifiers."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

CASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DEPARTMENT_CODE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"

CaseId = Annotated[str, StringConstraints(pattern=CASE_ID_PATTERN)]
"""A subject-safe case id such as ``DD-20261127-0001``: no dots, spaces or wildcards."""

DepartmentCode = Annotated[str, StringConstraints(pattern=DEPARTMENT_CODE_PATTERN)]
"""A lowercase ASCII department token such as ``renshe``; it becomes one subject token."""

StaffId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\s.*>]+$")]
"""Who did something: a staff id, a department code or ``system``."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=4000, strip_whitespace=True)]


class WireModel(BaseModel):
    """Base of every contract model: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Satisfaction(StrEnum):
    """The applicant's rating in the five levels of the national 好差評 system, best first."""

    VERY_SATISFIED = "very_satisfied"  # 非常滿意
    SATISFIED = "satisfied"  # 滿意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本滿意
    DISSATISFIED = "dissatisfied"  # 不滿意
    VERY_DISSATISFIED = "very_dissatisfied"  # 非常不滿意

    @property
    def rating(self) -> str:
        """``bad`` (差評) for 不滿意 and 非常不滿意, else ``good`` (好評)."""
        return "bad" if self in (Satisfaction.DISSATISFIED, Satisfaction.VERY_DISSATISFIED) else "good"


LEVEL_OF_RATING = {"good": Satisfaction.SATISFIED, "bad": Satisfaction.DISSATISFIED}
"""A good/bad rating as a level: how ratings recorded before the five levels are read."""


class Category(StrEnum):
    """The classification of a 辦不成事 case: `cannot` 不能辦 (law or policy forbids it), `hard` 很難辦 (a
    policy gap blocks it), `refused` 不給辦 (staff would not do it), `guided` 引導辦 (no barrier: the
    applicant is guided back to a regular window)."""

    CANNOT = "cannot"  # 不能辦: law or policy forbids it
    HARD = "hard"  # 很難辦: a policy gap blocks it
    REFUSED = "refused"  # 不給辦: staff would not do it
    GUIDED = "guided"  # no barrier: guide back to a regular window


CATEGORY_LABELS: dict[str, tuple[str, str]] = {
    Category.CANNOT: ("不能辦", "cannot"),
    Category.HARD: ("很難辦", "hard"),
    Category.REFUSED: ("不給辦", "refused"),
    Category.GUIDED: ("引導辦", "guided"),
}
"""What staff read for each category: (Chinese, English); ``unstuck.schemas.labels.label`` looks it up."""


_SUBJECT_UNSAFE = re.compile(r"[\s.*>]")


def check_subject_token(value: str, field: str) -> str:
    """Refuse a value that would break a NATS subject (dots, spaces, wildcards)."""
    if not value or _SUBJECT_UNSAFE.search(value):
        raise ValueError(f"{field} {value!r} must be one subject token: no dots, spaces, '*' or '>'")
    return value


SubjectToken = Annotated[str, AfterValidator(lambda v: check_subject_token(v, "value"))]

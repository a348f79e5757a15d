"""Departments: who answers coordination requests and who sits on their escalation chain."""

from __future__ import annotations

from enum import IntEnum

from pydantic import Field

from .common import DepartmentCode, ShortText, WireModel


class Level(IntEnum):
    """The escalation chain: clerk → section head (科長) → leader in charge (分管領導) → director (局長)."""

    CLERK = 0
    SECTION_HEAD = 1
    LEADER_IN_CHARGE = 2
    DIRECTOR = 3


LEVEL_NAMES = {
    Level.CLERK: "clerk",
    Level.SECTION_HEAD: "section_head",
    Level.LEADER_IN_CHARGE: "leader_in_charge",
    Level.DIRECTOR: "director",
}
LEVEL_LABELS: dict[Level, tuple[str, str]] = {
    Level.CLERK: ("經辦人", "clerk"),
    Level.SECTION_HEAD: ("科長", "section head"),
    Level.LEADER_IN_CHARGE: ("分管領導", "leader in charge"),
    Level.DIRECTOR: ("局長", "director"),
}
"""What staff read for each level: (Chinese, English); by role name through ``labels.label("role", ...)``."""


class Department(WireModel):
    """A department of the service centre and its people on the escalation chain."""

    code: DepartmentCode
    name: ShortText
    matters: list[str] = Field(default_factory=list, description="matter codes it usually answers")
    chain: dict[str, str] = Field(
        default_factory=dict,
        description="escalation chain: clerk, section_head, leader_in_charge, director → person or post",
    )

"""The built-in rules of the window, each a plugin registered like an outside one."""

from __future__ import annotations

from collections.abc import Mapping

from unstuck.schemas import CaseIntake, Category

from .hookspecs import hookimpl

ONE_THREE_FIVE: dict[Category, int] = {
    Category.GUIDED: 1,
    Category.REFUSED: 1,
    Category.CANNOT: 3,
    Category.HARD: 5,
}


class DeadlineRule:
    """The 1-3-5 mechanism: guided and refused 1, cannot 3, hard 5 working days (configurable)."""

    def __init__(self, working_days: Mapping[str, int] | None = None) -> None:
        self.working_days = {**ONE_THREE_FIVE, **{Category(k): v for k, v in (working_days or {}).items()}}

    @hookimpl
    def unstuck_deadline_working_days(self, category: Category) -> int | None:
        return self.working_days.get(category)


# Phrases window staff write when they describe a failed matter; the first match decides.
CLASSIFY_PHRASES: tuple[tuple[Category, tuple[str, ...]], ...] = (
    (Category.REFUSED, ("不給辦", "態度", "推諉", "拒絕受理", "不予受理", "刁難", "不熟悉業務")),
    (Category.CANNOT, ("不能辦", "禁止", "不允許", "不符合規定", "法規不允許", "政策不允許")),
    (Category.HARD, ("很難辦", "新業態", "三新", "沒有先例", "歷史遺留", "系統限制", "政策空白")),
    (Category.GUIDED, ("材料不全", "缺少材料", "走錯窗口", "不清楚", "不知道去哪")),
)


class PhraseClassifier:
    """Suggests a category from the description when the window left it open; staff confirm or change it."""

    @hookimpl
    def unstuck_classify(self, intake: CaseIntake) -> tuple[Category, str] | None:
        if intake.category is not None:
            return intake.category, "classified at intake"
        text = f"{intake.matter_title} {intake.description}"
        for category, phrases in CLASSIFY_PHRASES:
            for phrase in phrases:
                if phrase in text:
                    return category, f"description mentions 「{phrase}」"
        return None


class FailedWindowRouting:
    """Coordinate with the department of the regular window where the matter failed."""

    @hookimpl
    def unstuck_route(self, intake: CaseIntake, category: Category) -> list[str]:
        return [intake.department]


class ConfiguredEscalation:
    """Escalation chains from configuration: clerk → section head → leader in charge → director."""

    def __init__(self, chains: Mapping[str, Mapping[str, str]]) -> None:
        self.chains = {k: dict(v) for k, v in chains.items()}

    @hookimpl
    def unstuck_escalation_chain(self, department: str) -> dict[str, str] | None:
        return self.chains.get(department)

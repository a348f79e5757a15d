"""What window staff read for each code: one (Chinese, English) table per list, and ``label`` to look one up.

The tables of the contract's enums sit beside them (``CATEGORY_LABELS`` in common, ``OUTCOME_LABELS``
in coordination, ``LEVEL_LABELS`` in department, ``EVENT_LABELS`` in events); this module holds the
tables of the lists that have no enum of their own in the contract: the case states (the lifecycle's
``CaseStatus``, which the contract cannot import) and the values of the event fields below.
Messages, the JSON output and the stored events keep the codes; only what people read is labelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .common import CATEGORY_LABELS
from .coordination import OUTCOME_LABELS
from .department import LEVEL_LABELS, LEVEL_NAMES
from .events import EVENT_LABELS

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

STATE_LABELS: dict[str, tuple[str, str]] = {
    "intake": ("受理待分類", "intake"),
    "guiding": ("引導中", "guiding"),
    "coordinating": ("協調中", "coordinating"),
    "answered": ("已答覆待銷號", "answered"),
    "closed": ("已銷號待評價", "closed"),
    "evaluated": ("已評價", "evaluated"),
}
"""A case's state (``unstuck.lifecycle.CaseStatus``; a test keeps the two lists equal)."""

ESCALATION_REASON_LABELS: dict[str, tuple[str, str]] = {
    "overdue": ("逾期", "overdue"),
    "stalled": ("未答覆", "no answer"),
    "bounced": ("退單", "bounced"),
    "direct": ("直接督辦", "addressed directly"),
    "notice_overdue": ("未按期告知申請人", "applicant not told in time"),
    "review_overdue": ("複核逾期", "review overdue"),
    "follow_up_overdue": ("差評整改逾期", "bad rating's follow-up overdue"),
}
"""Why a case climbed the chain (``case.escalated`` ``reason``)."""

MEASURE_LABELS: dict[str, tuple[str, str]] = {
    "interview": ("約談", "interview"),
    "performance_review": ("績效考核", "performance review"),
    "criticism": ("批評教育", "criticism"),
    "none": ("不予處理", "none"),
}
"""The measures of an accountability record (``accountability.recorded`` ``measures``)."""

RATING_LABELS: dict[str, tuple[str, str]] = {"good": ("好評", "good"), "bad": ("差評", "bad")}
"""The applicant's 好差評 as good or bad (``case.evaluated`` ``rating``, from its ``level``)."""

SATISFACTION_LABELS: dict[str, tuple[str, str]] = {
    "very_satisfied": ("非常滿意", "very satisfied"),
    "satisfied": ("滿意", "satisfied"),
    "basically_satisfied": ("基本滿意", "basically satisfied"),
    "dissatisfied": ("不滿意", "dissatisfied"),
    "very_dissatisfied": ("非常不滿意", "very dissatisfied"),
}
"""The five levels of the national 好差評 system, best first (``case.evaluated`` ``level``); the
last two are a 差評 (a bad rating), the first three a 好評."""

APPLICANT_LABELS: dict[str, tuple[str, str]] = {
    "citizen": ("個人", "citizen"),
    "enterprise": ("企業", "enterprise"),
}
"""Who the applicant is (``Applicant.kind``)."""

ON_TIME_LABELS: dict[str, tuple[str, str]] = {
    "on_time": ("按期", "on time"),
    "late": ("逾期", "late"),
    "overdue": ("已逾期", "overdue"),
}
"""A closed case closed by its due date or after it (``case.closed`` ``on_time``); an open case past it."""

LABELS: dict[str, Mapping[Any, tuple[str, str]]] = {
    "state": STATE_LABELS,
    "category": CATEGORY_LABELS,
    "outcome": OUTCOME_LABELS,
    "level": LEVEL_LABELS,
    "role": {LEVEL_NAMES[level]: text for level, text in LEVEL_LABELS.items()},
    "reason": ESCALATION_REASON_LABELS,
    "measure": MEASURE_LABELS,
    "rating": RATING_LABELS,
    "satisfaction": SATISFACTION_LABELS,
    "applicant": APPLICANT_LABELS,
    "on_time": ON_TIME_LABELS,
    "event": EVENT_LABELS,
}
"""Every table by the kind of code it labels (``level`` by number, ``role`` by the level's name)."""


def label(kind: str, code: object, lang: str = "zh") -> str:
    """The label of ``code`` from the ``kind`` table in ``lang`` (zh or en); an unknown code reads as
    itself (a newer broker may send a code this one has no label for), no code as "-"."""
    if code is None:
        return "-"
    text = LABELS[kind].get(code)
    if text is None:
        return str(code)
    return text[1] if lang == "en" else text[0]

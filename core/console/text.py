"""What the console shows staff: simplified Chinese, Beijing time, masked personal data.

Labels and the broker's messages are converted to simplified characters (``unstuck.web.text``). What a
person typed (an applicant's name, a description, a department's answer) is shown as it was entered.
"""

from __future__ import annotations

from datetime import date, tzinfo
from typing import Any

from unstuck import audit
from unstuck.schemas.labels import label
from unstuck.schemas.privacy import mask_personal
from unstuck.web.text import simplified

__all__ = ["days_left_text", "describe", "iso_date", "local_time", "simplified", "zh_label"]


def zh_label(kind: str, code: Any) -> str:
    """The catalogue's label of ``code``, in simplified characters ("-" for none)."""
    return simplified(label(kind, code, "zh"))


def local_time(value: Any, zone: tzinfo) -> str:
    """A stored instant (ISO 8601, UTC) as the time in ``zone``, to the second; "-" for none."""
    if not value:
        return "-"
    return audit.local_time(value, zone)


def describe(event_type: str, data: dict[str, Any]) -> str:
    """One line of the timeline: what an event says, labelled, personal data masked, simplified."""
    return simplified(audit.describe(event_type, mask_personal(data), "zh"))


def days_left_text(days: int | None) -> str:
    if days is None:
        return "-"
    if days < 0:
        return f"已超期 {-days} 个工作日"
    if days == 0:
        return "今日到期"
    return f"剩 {days} 个工作日"


def iso_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None

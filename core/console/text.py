"""What the console shows staff: simplified Chinese, Beijing time, masked personal data.

The label catalogue (``unstuck.schemas.labels``) and the broker's ``message_zh`` are written in
traditional characters; mainland staff read simplified ones, so the console converts them when it
shows them, with OpenCC's ``t2s`` table (the converter mainland systems use). What a person typed (an
applicant's name, a description, a department's answer) is shown as it was entered.
"""

from __future__ import annotations

import functools
from datetime import date, tzinfo
from typing import Any

from unstuck import audit
from unstuck.schemas.labels import label
from unstuck.schemas.privacy import mask_personal


@functools.cache
def _converter() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


@functools.lru_cache(maxsize=4096)
def simplified(text: str) -> str:
    """``text`` in simplified characters (traditional ones converted, everything else unchanged)."""
    return str(_converter().convert(text)) if text else text


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

"""How the command line speaks to window staff: the language of what it prints and the zone of its times.

Chinese by default (``--lang en`` or ``UNSTUCK_LANG=en`` for English); times in Beijing time
(``Asia/Shanghai``) by default (``--tz ZONE``, or ``[display] timezone`` in the configuration).
Codes are labelled from the contract's tables (``unstuck.schemas.labels``); ``--json`` prints the
codes, exactly as the broker answers.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from unstuck import audit
from unstuck.clock import CHINA
from unstuck.config import display_zone
from unstuck.schemas.labels import LANGS, label
from unstuck.texttable import clean, clip

from .common import CliError, config_from

LANG_ENV = "UNSTUCK_LANG"

WORDS: dict[str, tuple[str, str]] = {
    "case": ("案件編號", "case"),
    "state": ("狀態", "state"),
    "category": ("類別", "category"),
    "departments": ("協調部門", "departments"),
    "department": ("部門", "department"),
    "owner": ("承辦人", "owner"),
    "due": ("辦結期限", "due"),
    "timeliness": ("時效", "on time"),
    "matter": ("事項", "matter"),
    "applicant": ("申請人", "applicant"),
    "failed_at": ("未辦成窗口", "failed at"),
    "actor": ("操作人", "actor"),
    "event": ("事件", "event"),
    "detail": ("詳情", "detail"),
    "staff": ("被問責人", "staff"),
    "section": ("科室", "section"),
    "measures": ("處理措施", "measures"),
    "fault_tolerance": ("容錯免責", "容錯免責"),
    "finding": ("認定事實", "finding"),
    "yes": ("是", "yes"),
    "count": ("共 {n} 件", "{n} case(s)"),
    "opened": ("已受理 {case_id}，狀態：{state}", "opened {case_id}; state {state}"),
    "again": ("（同一 client_ref 已受理過，未重複立案）", " (already open: same client_ref)"),
    "moved": ("{case_id}：{events}；狀態：{state}", "{case_id}: {events}; state {state}"),
    "nothing": ("無需記錄", "nothing to record"),
    "tell_due": ("辦結期限：{due}（請告知申請人）", "due {due}: tell the applicant"),
    "tell_provisional": (
        "暫定辦結期限：{due}（分類後確定，請告知申請人）",
        "provisional due date {due} (final once classified): tell the applicant",
    ),
    "no_due": ("尚未分類：分類後確定辦結期限", "not classified yet: the due date follows classification"),
    "classify_by": (
        "尚未分類：須於 {due} 前完成分類，分類後確定辦結期限",
        "not classified yet: classify by {due}; the due date follows classification",
    ),
    "provisional": ("（暫定）", " (provisional)"),
}
"""The command line's own words (headings, sentences): (Chinese, English)."""

DUE_EVENTS = frozenset({"case.classified", "case.reclassified", "case.extended", "case.reopened"})
"""Events that give a case a new due date, which the window tells the applicant."""


@dataclass(frozen=True)
class Display:
    lang: str = "zh"
    zone: tzinfo = CHINA

    def label(self, kind: str, code: Any) -> str:
        return label(kind, code, self.lang)

    def labels(self, kind: str, codes: Iterable[Any]) -> str:
        return ("、" if self.lang == "zh" else ", ").join(self.label(kind, c) for c in codes)

    def word(self, key: str, **values: Any) -> str:
        zh, en = WORDS[key]
        return (en if self.lang == "en" else zh).format(**values)

    def time(self, value: Any) -> str:
        """A stored instant (ISO 8601, UTC) in the display zone, to the second."""
        return audit.local_time(value, self.zone)

    def time_heading(self) -> str:
        """The heading of a time column, naming the zone."""
        name = str(self.zone)
        if self.lang == "zh":
            return "時間（北京時間）" if name == "Asia/Shanghai" else f"時間（{name}）"
        return f"at ({name})"

    def timeliness(self, on_time: bool | None, overdue: bool) -> str:
        """按期 or 逾期 for a closed case (``on_time``); for an open one (``on_time`` None), 已逾期
        when it is past its due date, else nothing."""
        if on_time is not None:
            return self.label("on_time", "on_time" if on_time else "late")
        return self.label("on_time", "overdue") if overdue else ""


def add_display_args(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``--lang`` and ``--tz``, before the command (``top``) or after it (then without a default, so a
    value given before the command stands)."""
    default: dict[str, Any] = {"default": None} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--lang",
        choices=LANGS,
        help=f"language of labels and messages: zh (default) or en (${LANG_ENV})",
        **default,
    )
    parser.add_argument(
        "--tz",
        metavar="ZONE",
        help="time zone of the times printed (default [display] timezone, Asia/Shanghai)",
        **default,
    )


def language(args: Any) -> str:
    """``--lang``, else $UNSTUCK_LANG, else zh."""
    lang = getattr(args, "lang", None) or os.environ.get(LANG_ENV) or "zh"
    if lang not in LANGS:
        raise CliError(f"{LANG_ENV}={lang!r}: use zh or en")
    return str(lang)


def display(args: Any) -> Display:
    """The language and the zone for this command: the options, else $UNSTUCK_LANG and the
    configuration's ``[display] timezone``."""
    cached = getattr(args, "_display", None)
    if cached is not None:
        return cached
    lang = language(args)
    zone_name = getattr(args, "tz", None)
    if zone_name is None:
        zone_name = config_from(args).display.timezone
    try:
        zone = display_zone(zone_name)
    except ValueError as exc:
        raise CliError(f"--tz: {exc}") from exc
    shown = Display(lang, zone)
    args._display = shown
    return shown


DETAIL_WIDTH = 80
"""Columns of an event's detail in a table (a Chinese character takes two)."""


def describe(event_type: str, data: dict[str, Any], d: Display) -> str:
    """What an event says, in one line of the staff's language, cut to ``DETAIL_WIDTH``."""
    return clip(clean(audit.describe(event_type, data, d.lang)), DETAIL_WIDTH)

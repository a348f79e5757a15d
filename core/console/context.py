"""What every screen shares: the configuration, the console's own files, the bus, the working calendar,
and which actions a member of staff may take on a case."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from itsdangerous import URLSafeTimedSerializer
from prometheus_client import CollectorRegistry

from unstuck import lifecycle as lc
from unstuck.clock import CHINA
from unstuck.config import Config, display_zone
from unstuck.plugins.manager import make_plugin_manager
from unstuck.schemas.common import Category
from unstuck.web.busclient import BusClient, BusError
from unstuck.workcalendar import WorkingCalendar

from .auth import Authenticator, load_provider
from .store import LoginLog, PasswordStore, TicketQueue, session_secret
from .text import iso_date, simplified, zh_label

STAFF_VERBS = {  # the actions of the case page and the API verb each calls
    "classify": "case.classify",
    "handover": "case.handover",
    "extend": "case.extend",
    "approve_extension": "case.approve_extension",
    "guide": "case.guide",
    "close": "case.close",
    "reopen": "case.reopen",
    "escalate": "case.escalate",
    "rule_bounce": "case.rule_bounce",
    "accountability": "accountability.record",
    "review_notice": "case.review_notice",
    "review_conclude": "case.review_conclude",
}
OWNER_OR_LEADER = frozenset({"handover", "close", "guide"})
LEADERS_ONLY = frozenset({"reopen", "accountability"})


def simplified_verb(verb: str) -> str:
    return simplified(lc.VERB_LABELS.get(verb, verb))


def _may(verb: str, state: Mapping[str, Any], staff_id: str, leader: bool) -> bool:
    pending = state.get("pending_extension") or None
    if verb in OWNER_OR_LEADER:
        return staff_id == state.get("owner") or leader
    if verb in LEADERS_ONLY:
        return leader
    if verb == "approve_extension":  # a leader, and not the one who asked
        return bool(leader and pending and pending.get("requested_by") != staff_id)
    if verb == "extend":
        return not pending and bool(state.get("due_date"))
    if verb == "rule_bounce":
        return bool(state.get("bounce_ruling_needed")) and staff_id == state.get("duty_leader")
    if verb in ("review_notice", "review_conclude"):
        return bool(state.get("reviews"))
    return True


def actions_for(state: Mapping[str, Any], staff_id: str, rank: int) -> list[str]:
    """What ``staff_id`` may do to the case now: the state's verbs (``lifecycle.ALLOWED``) that the
    broker would let this member of staff give (their role, the owner, the duty leader, the requester).
    ``record`` is the department's own and ``evaluate`` the applicant's: never offered to staff."""
    leader = rank >= lc.LEADER_RANK
    allowed = lc.ALLOWED.get(state.get("state") or "", ())
    return [verb for verb in allowed if verb in STAFF_VERBS and _may(verb, state, staff_id, leader)]


@dataclass
class Console:
    """Everything the screens share: the configuration, the console's files, the bus."""

    config: Config
    data_dir: Path
    bus: BusClient | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        c = self.config.console
        self.zone = display_zone(self.config.display.timezone)
        self.passwords = PasswordStore(self.data_dir)
        self.tickets = TicketQueue(self.data_dir)
        self.secret = session_secret(self.data_dir)
        self.auth = Authenticator(
            dict(self.config.staff),
            self.passwords,
            LoginLog(self.data_dir),
            self.registry,
            provider=load_provider(c.identity_provider),
            per_account=c.login_attempts_per_account,
            per_address=c.login_attempts_per_address,
            window_seconds=c.login_window_minutes * 60,
        )
        self.calendar = WorkingCalendar(self.config.deadlines.calendar_override)
        self.pm = make_plugin_manager(self.config.deadlines.working_days, self.config.escalation_chains())
        self.rating_links = URLSafeTimedSerializer(self.secret, salt="unstuck-console-rating")
        self.signed_out: set[str] = set()  # sessions ended by signing out, refused until they expire
        self._today: tuple[float, date] | None = None

    def department_choices(self) -> list[tuple[str, str]]:
        return [(c, self.department_name(c)) for c in self.departments()]

    # --- what the screens need ---------------------------------------------------------------------

    def departments(self) -> list[str]:
        return self.config.department_codes()

    def department_name(self, code: str) -> str:
        name = self.config.department(code).name
        return simplified(name) if name else code

    def role(self, staff_id: str) -> str:
        return zh_label("role", self.config.staff.get(staff_id, "clerk"))

    def working_days(self, category: str) -> int | None:
        days = self.pm.hook.unstuck_deadline_working_days(category=Category(category))
        return int(days) if days is not None else None

    def due_for(self, category: str, today: date) -> tuple[int, date] | None:
        """As the broker counts it (core/broker/rules.py ``deadline``): the category's working days
        (1-3-5, or the configuration's and plugins' own) after ``today`` on the working calendar."""
        days = self.working_days(category)
        if days is None:
            return None
        return days, self.calendar.add_working_days(today, days)

    def days_left(self, due: Any, today: date) -> int | None:
        day = iso_date(due)
        return None if day is None else self.calendar.working_days_between(today, day)

    async def today(self, staff_id: str) -> date:
        """The local date on the broker's case clock (``status`` answers its ``at``), asked at most
        every few seconds; the wall clock's date when the broker cannot say."""
        now = time.monotonic()
        if self._today and now - self._today[0] < 5:
            return self._today[1]
        try:
            at = (await self.call("status", staff_id)).get("at")
            day = datetime.fromisoformat(at).astimezone(CHINA).date()
        except (BusError, TypeError, ValueError, AttributeError):
            day = datetime.now(CHINA).date()
        self._today = (now, day)
        return day

    async def call(self, verb: str, principal: str, body: dict[str, Any] | None = None) -> Any:
        if self.bus is None:
            raise BusError("控制台尚未连接总线：请稍后重试", "unavailable")
        return await self.bus.call(verb, principal, body)

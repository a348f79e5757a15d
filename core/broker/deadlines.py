"""The deadline watcher: over every open case, warnings (催辦), overdue (督辦) and escalation.

It counts for the pure lifecycle what needs the calendar: the working days left to each date the case
waits for, and the working hours (office hours on working days) since each level of 督辦 was reached.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from unstuck import lifecycle as lc
from unstuck.clock import CHINA, local_date
from unstuck.eventstore import StoreUnavailable
from unstuck.workcalendar import WorkingCalendar

from .background import Background
from .commands import CommandRunner, constant
from .rules import Rules

log = logging.getLogger(__name__)


def working_hours_between(
    calendar: WorkingCalendar, start: datetime, end: datetime, office: tuple[time, time]
) -> float:
    """Hours of ``office`` time (local time, on working days) from ``start`` to ``end``."""
    if end <= start:
        return 0.0
    opens, closes = office
    first, last = start.astimezone(CHINA), end.astimezone(CHINA)
    seconds = 0.0
    day = first.date()
    while day <= last.date():
        if calendar.is_working_day(day):
            begin = max(first, datetime.combine(day, opens, CHINA))
            finish = min(last, datetime.combine(day, closes, CHINA))
            seconds += max((finish - begin).total_seconds(), 0.0)
        day += timedelta(days=1)
    return seconds / 3600


@dataclass(eq=False)
class DeadlineTicker:
    states: Mapping[str, lc.CaseState]
    rules: Rules
    runner: CommandRunner
    background: Background

    async def tick(self) -> int:
        """Run the watcher now; the number of events it recorded."""
        rules = self.rules
        settings = rules.config.deadlines
        now = rules.clock.now()
        today = local_date(now)
        count = 0
        chains = {code: rules.chain(code) for code in [*rules.departments, "window"]}
        warn_at = tuple(settings.warn_at)
        working_day = rules.calendar.is_working_day(today)
        office = settings.office()
        for case_id, state in list(self.states.items()):
            if not state.watched or state.due_date is None:
                continue
            dates = {state.due_date} | {
                date.fromisoformat(r[key])
                for r in state.reviews
                for key in ("notify_by", "due_date")
                if r.get(key)
            }
            tick = lc.CheckDeadlines(
                today=today,
                at=now,
                working_days_left=rules.calendar.working_days_between(today, state.due_date),
                warn_at=warn_at,
                escalation_hours=settings.escalation_working_hours,
                chains=chains,
                working_day=working_day,
                working_hours_since={
                    dept: working_hours_between(rules.calendar, since, now, office)
                    for dept, (level, since) in state.escalations.items()
                    if level < 3
                },
                days_left={d: rules.calendar.working_days_between(today, d) for d in dates if d >= today},
            )
            if not lc.decide(state, tick):
                continue
            try:
                count += len(await self.runner.execute(case_id, constant(tick)))
            except (lc.Refused, StoreUnavailable) as exc:
                log.warning("deadline watcher skipped %s: %s", case_id, exc)
        return count

    async def run(self, interval: float) -> None:
        """Every ``interval`` seconds (wall time) until the broker stops."""
        while not self.background.stopping.is_set():
            await self.background.pause(interval)
            if self.background.stopping.is_set():
                return
            try:
                await self.tick()
            except Exception:
                log.exception("deadline watcher failed")

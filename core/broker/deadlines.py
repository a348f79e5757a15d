"""The deadline watcher: over every open case, warnings (催辦), overdue (督辦) and escalation.

It counts for the pure lifecycle what needs the calendar: the working days left to each date the case
waits for, and the working hours (office hours on working days) since each level of 督辦 was reached.

It also recounts due dates when the calendar learns a year's schedule (``revise_due_dates``): at
start-up, and on a tick after the override file changed, every open case whose due date is
provisional (or counted through a year still unpublished, as a case recorded before due dates were
marked may be) is counted again from what it was counted from; where the date or its mark changed,
``case.due_date_revised`` is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    calendar_seen: int | None = field(default=None)  # the calendar generation last recounted on

    async def revise_due_dates(self) -> int:
        """Recount the provisional due dates of the open cases; the number of events recorded."""
        rules = self.rules
        generation = rules.calendar.generation
        count, failed = 0, False
        for case_id, state in list(self.states.items()):
            if state.state not in lc.OPEN_STATES or state.due_date is None:
                continue
            start = rules.counted_from(state)
            if not state.due_date_provisional and not (start and rules.provisional(start, state.due_date)):
                continue
            try:
                count += len(await self.runner.execute(case_id, self._revision))
            except (lc.Refused, StoreUnavailable) as exc:
                failed = True  # the next tick tries again
                log.warning("due date of %s not recounted: %s", case_id, exc)
        if not failed:
            self.calendar_seen = generation
        if count:
            log.info("calendar: recounted the due dates of %d case(s)", count)
        return count

    def _revision(self, state: lc.CaseState) -> lc.Command:
        """The case's due date counted again (the same date and mark when nothing changed: no event)."""
        recount = self.rules.recount(state)
        due, provisional = recount or (state.due_date or date.min, state.due_date_provisional)
        return lc.ReviseDueDate(
            due_date=due,
            due_date_provisional=provisional,
            reason=self.rules.revision_reason(state, due, provisional),
        )

    async def tick(self) -> int:
        """Run the watcher now; the number of events it recorded."""
        rules = self.rules
        settings = rules.config.deadlines
        now = rules.clock.now()
        today = local_date(now)
        count = 0
        if rules.calendar.refresh() or rules.calendar.generation != self.calendar_seen:
            count += await self.revise_due_dates()
        chains = {code: rules.chain(code) for code in [*rules.departments, "window"]}
        warn_at = tuple(settings.warn_at)
        working_day = rules.calendar.is_working_day(today)
        office = settings.office()
        for case_id, state in list(self.states.items()):
            if not state.followed(settings.invite_rating_days > 0) or state.due_date is None:
                continue
            dates = {state.due_date} | {
                date.fromisoformat(r[key])
                for r in state.reviews
                for key in ("notify_by", "due_date")
                if r.get(key)
            }
            if state.follow_up and not state.follow_up.get("done"):  # a bad rating's 回訪 and 整改
                dates.add(date.fromisoformat(state.follow_up["due_date"]))
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
                invite_after_days=settings.invite_rating_days,
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

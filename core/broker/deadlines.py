"""The deadline watcher: over every open case, warnings (催辦), overdue (督辦) and escalation."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from unstuck import lifecycle as lc
from unstuck.clock import local_date
from unstuck.eventstore import StoreUnavailable

from .background import Background
from .commands import CommandRunner, constant
from .rules import Rules

log = logging.getLogger(__name__)


@dataclass(eq=False)
class DeadlineTicker:
    states: Mapping[str, lc.CaseState]
    rules: Rules
    runner: CommandRunner
    background: Background

    async def tick(self) -> int:
        """Run the watcher now; the number of events it recorded."""
        rules = self.rules
        now = rules.clock.now()
        today = local_date(now)
        count = 0
        chains = {code: rules.chain(code) for code in [*rules.departments, "window"]}
        period = timedelta(hours=rules.config.deadlines.escalation_period_hours)
        warn_at = tuple(rules.config.deadlines.warn_at)
        working_day = rules.calendar.is_working_day(today)
        for case_id, state in list(self.states.items()):
            if state.state not in lc.OPEN_STATES or state.state == lc.INTAKE or state.due_date is None:
                continue
            left = rules.calendar.working_days_between(today, state.due_date)
            tick = lc.CheckDeadlines(
                today=today,
                at=now,
                working_days_left=left,
                warn_at=warn_at,
                escalation_period=period,
                chains=chains,
                working_day=working_day,
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

"""What follows a stored event: ask the departments, count, notify, tell the plugins."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pluggy

from unstuck import lifecycle as lc
from unstuck.clock import Clock, local_date
from unstuck.eventstore import StoredEvent
from unstuck.metrics import Metrics
from unstuck.schemas import Envelope
from unstuck.workcalendar import WorkingCalendar

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Reactions:
    state_of: Callable[[str], lc.CaseState]
    ask: Callable[[lc.CaseState, lc.Coordination], None]  # start asking a department
    notify: Callable[[StoredEvent], None]
    metrics: Metrics
    calendar: WorkingCalendar
    clock: Clock
    pm: pluggy.PluginManager

    def after(self, stored: list[StoredEvent]) -> None:
        for event in stored:
            f = event.fields
            state = self.state_of(event.case_id)
            data = f["data"]
            match event.type:
                case "coordination.requested":
                    coordination = state.coordinations.get(data["request_id"])
                    if coordination is not None:
                        self.ask(state, coordination)
                case "case.opened":
                    self.metrics.opened.labels(data.get("category") or "unclassified").inc()
                case "case.closed":
                    opened = local_date(state.opened_at or self.clock.now())
                    days = self.calendar.working_days_between(opened, local_date(self.clock.now()))
                    cat = state.category or "unclassified"
                    self.metrics.closed.labels(cat, str(bool(data.get("on_time"))).lower()).inc()
                    self.metrics.days_to_close.labels(cat).observe(max(days, 0))
                case "case.escalated":
                    self.metrics.escalations.labels(data["department"], data["role"]).inc()
                case "coordination.replied" if data.get("outcome") == "not_ours":
                    self.metrics.bounces.labels(data["department"]).inc()
            self.notify(event)
            if not self.pm.hook.unstuck_on_event.get_hookimpls():
                continue  # no plugin listens: no envelope to build
            try:
                self.pm.hook.unstuck_on_event(envelope=Envelope.model_validate(f))
            except Exception as exc:
                log.error("plugin failed in unstuck_on_event for %s: %s", event.type, exc)

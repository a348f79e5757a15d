"""What the pure lifecycle needs worked out first: deadlines on the working calendar, classification
and routing from the plugins, escalation chains, staff ranks, the departments the bus knows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pluggy

from unstuck import lifecycle as lc
from unstuck.clock import Clock, local_date
from unstuck.config import Config
from unstuck.schemas import Category, CoordinationReply
from unstuck.schemas.department import LEVEL_NAMES
from unstuck.schemas.labels import label
from unstuck.workcalendar import WorkingCalendar

from .errors import ApiFailure


@dataclass(eq=False)
class Rules:
    pm: pluggy.PluginManager
    calendar: WorkingCalendar
    config: Config
    clock: Clock  # the case clock
    departments: Mapping[str, str]
    declared_chains: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # by the adapters

    def today(self) -> date:
        return local_date(self.clock.now())

    def rank(self, actor: str) -> int:
        return self.config.rank(actor)

    def chain(self, department: str) -> dict[str, str]:
        """Who sits at each level of ``department``'s chain: the configuration's ``[departments.<code>.chain]``
        (through the ``unstuck_escalation_chain`` hook) first, then the chain the department's adapter
        declares; a level named by neither is named by its post in that department (市場監督管理局分管領導),
        so every escalation names whom it reached."""
        name = self.departments.get(department, department)
        chain = {role: f"{name}{label('role', role)}" for role in LEVEL_NAMES.values()}
        chain.update(self.declared_chains.get(department, {}))
        chain.update(self.pm.hook.unstuck_escalation_chain(department=department) or {})
        return chain

    def provisional(self, start: date, due: date) -> bool:
        """Whether a due date counted from ``start`` passes through a year whose schedule is not published."""
        return bool(self.calendar.unpublished_between(start, due))

    def moved_provisional(self, state: lc.CaseState, due: date) -> bool:
        """Whether the case's due date moved to ``due`` (an extension) is provisional."""
        return state.due_date_provisional or self.provisional(state.due_date or due, due)

    def extended_due_date(self, state: lc.CaseState) -> date | None:
        """The due date moved by the pending extension, from the due date as it is now: a case reclassified
        since the request has a new deadline, and the extension is added to that one."""
        pending = state.pending_extension
        if not pending or state.due_date is None:
            return None
        return self.calendar.add_working_days(state.due_date, int(pending["working_days"]))

    def deadline(self, category: Category, start: datetime) -> tuple[int, Any]:
        days = self.pm.hook.unstuck_deadline_working_days(category=category)
        if days is None:
            raise ApiFailure("internal", f"no plugin gives a deadline for category {category.value}")
        return days, self.calendar.add_working_days(local_date(start), days)

    def intake_deadline(self, start: datetime) -> lc.IntakeDeadline:
        """When an unclassified case must be classified: the working day it opened (or the next working
        day when it opened on a day off), then ``[deadlines] intake_working_days`` more."""
        days = self.config.deadlines.intake_working_days
        due, provisional = self.intake_due(start, days)
        return lc.IntakeDeadline(working_days=days, due_date=due, due_date_provisional=provisional)

    def intake_due(self, start: datetime, days: int) -> tuple[date, bool]:
        opened = local_date(start)
        first = opened if self.calendar.is_working_day(opened) else self.calendar.add_working_days(opened, 1)
        due = self.calendar.add_working_days(first, days)
        return due, self.provisional(opened, due)

    def recount(self, state: lc.CaseState) -> tuple[date, bool] | None:
        """The case's due date and its provisional mark counted again on the calendar as it is now,
        from what it was counted from (``due_basis``, or the opening for the intake deadline)."""
        if state.state == lc.INTAKE:
            return self.intake_due(state.opened_at, state.working_days) if state.opened_at else None
        if state.due_basis is None:
            return None
        start, days = state.due_basis
        return self.calendar.due_date(local_date(start), days)

    def counted_from(self, state: lc.CaseState) -> date | None:
        basis = state.due_basis[0] if state.due_basis else state.opened_at
        return local_date(basis) if basis else None

    def revision_reason(self, state: lc.CaseState, due: date, provisional: bool) -> str:
        """Why a recount moved the due date or its mark: the years counted through, with their sources."""
        first = self.counted_from(state) or due
        years = range(first.year, max(due, state.due_date or due).year + 1)
        if state.due_date_provisional and not provisional:
            named = [y for y in years if y > first.year] or [first.year]
            sources = ", ".join(sorted({self.calendar.source(y) for y in named}))
            return f"calendar schedule for {', '.join(map(str, named))} published ({sources})"[:200]
        counted = ", ".join(f"{y} {self.calendar.source(y)}" for y in years)
        return f"due date recounted on the working calendar ({counted})"[:200]

    def classification(
        self,
        intake: Any,
        category: Category | None,
        reason: str | None,
        departments: list[str] | None,
        start: datetime,
    ) -> lc.Classification | None:
        if category is None:
            suggestion = self.pm.hook.unstuck_classify(intake=intake)
            if suggestion is None:
                return None
            category, reason = suggestion
        if departments is None:
            routed: list[str] = []
            for result in reversed(self.pm.hook.unstuck_route(intake=intake, category=category)):
                for code in result or []:
                    if code not in routed:
                        routed.append(code)
            departments = routed
        for code in departments:
            self.known_department(code, "departments")
        days, due = self.deadline(category, start)
        return lc.Classification(
            category=category,
            reason=reason or "classified",
            working_days=days,
            due_date=due,
            due_date_provisional=self.provisional(local_date(start), due),
            departments=tuple(departments),
            duty_leader=self.config.window.duty_leader,
        )

    def known_department(self, code: str, field: str) -> None:
        if code not in self.departments:
            raise ApiFailure(
                "invalid_request",
                f"{field}: unknown department {code!r}",
                field=field,
                fix=f"use one of {', '.join(sorted(self.departments))}, or configure [departments.{code}]",
            )

    def reply(self, reply: CoordinationReply, attempt: int, recorded_by: str | None) -> lc.RecordReply:
        """The command that records a department's answer (from the bus, or recorded by staff)."""
        today = self.today()
        return lc.RecordReply(
            reply=reply,
            attempt=attempt,
            today=today,
            review_notify_by=self.calendar.add_working_days(today, self.config.deadlines.review_notify_days),
            review_due_date=self.calendar.add_working_days(today, self.config.deadlines.review_working_days),
            higher_department=self.config.department(reply.department).higher
            or f"{reply.department}的上級主管部門",
            max_bounces=self.config.deadlines.max_bounces,
            known_departments=frozenset(self.departments),
            recorded_by=recorded_by,
        )

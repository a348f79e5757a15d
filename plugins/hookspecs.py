"""Hook specifications of the broker (project name ``unstuck``).

One hook per extension point. Built-in rules implement them exactly as an outside plugin would;
a plugin registered later is called first, so a city's plugin overrides a built-in rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from unstuck.schemas import CaseIntake, Category, Envelope

hookspec = pluggy.HookspecMarker("unstuck")
hookimpl = pluggy.HookimplMarker("unstuck")


class BrokerSpec:
    @hookspec(firstresult=True)
    def unstuck_classify(self, intake: CaseIntake) -> tuple[Category, str] | None:
        """Suggest a category and the reason for a case the window accepted without one (None: leave it)."""

    @hookspec
    def unstuck_route(self, intake: CaseIntake, category: Category) -> list[str]:
        """Name the departments to coordinate with; the lists of all plugins are merged in order."""
        return []

    @hookspec(firstresult=True)
    def unstuck_deadline_working_days(self, category: Category) -> int | None:
        """Working days a case of this category has (the 1-3-5 rule by default)."""

    @hookspec(firstresult=True)
    def unstuck_escalation_chain(self, department: str) -> dict[str, str] | None:
        """Who sits at clerk, section_head, leader_in_charge and director for a department."""

    @hookspec
    def unstuck_on_event(self, envelope: Envelope) -> None:
        """React to an event the broker has just stored (notifications, statistics)."""

    @hookspec
    def unstuck_on_stall(self, department: str, case_id: str, attempts: int) -> None:
        """React to a department that exhausted its attempts on a case."""

    @hookspec(firstresult=True)
    def unstuck_send_sms(self, phone: str, text: str) -> bool | None:
        """Send one notification text to a phone (``unstuck notify``, docs/notifications.md): True once
        the provider accepted it; None to leave it to another plugin; raise to have it retried later."""

"""The applicant quota: at most [limits] cases_per_applicant_per_day cases per id number and local day."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from unstuck import lifecycle as lc
from unstuck.clock import Clock, local_date
from unstuck.config import LimitsConfig
from unstuck.schemas import api

from .errors import ApiFailure


@dataclass(eq=False)
class ApplicantQuota:
    limits: LimitsConfig
    clock: Clock
    states: Mapping[str, lc.CaseState]
    _day: date | None = None  # the local day _opened indexes
    _opened: dict[str, list[str]] = field(
        default_factory=dict
    )  # applicant id number -> cases opened that day

    def check(self, intake: api.OpenCase) -> None:
        limit = self.limits.cases_per_applicant_per_day
        if not limit:
            return
        id_number = intake.applicant.id_number.get_secret_value()
        today = local_date(self.clock.now())
        if self._day != today:  # one scan a day; then each opened case is indexed as it is applied
            self._day = today
            self._opened = {}
            for state in self.states.values():
                self._index(state)
        opened = sorted(self._opened.get(id_number, ()))
        if len(opened) >= limit:
            shown = ", ".join(opened[:3]) + (" ..." if len(opened) > 3 else "")
            raise ApiFailure(
                "rate_limited",
                f"applicant {intake.applicant.id_number.masked()} already has {len(opened)} cases opened "
                f"today ({shown}); the limit is {limit} per applicant per day",
                field="applicant.id_number",
                fix="add to one of those cases instead (unstuck case show ID), open it tomorrow, "
                "or raise [limits] cases_per_applicant_per_day",
            )

    def observe(self, old: lc.CaseState, new: lc.CaseState, event_type: str) -> None:
        if not old.exists and new.exists and self._day is not None:
            self._index(new)

    def _index(self, state: lc.CaseState) -> None:
        if state.opened_at is None or local_date(state.opened_at) != self._day:
            return
        id_number = (state.intake.get("applicant") or {}).get("id_number")
        if isinstance(id_number, str):
            self._opened.setdefault(id_number, []).append(state.case_id)

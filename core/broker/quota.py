"""The applicant quota: at most [limits] cases_per_applicant_per_day cases per id number and local day."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from unstuck import lifecycle as lc
from unstuck.clock import Clock, local_date
from unstuck.config import LimitsConfig
from unstuck.schemas import api
from unstuck.schemas.identifiers import normalised_identifier

from .errors import ApiFailure


def applicant_key(id_number: str) -> str:
    """The index key of an applicant: a digest of the normalised id number, so the index (and the
    snapshots that keep it) hold no id number."""
    return hashlib.sha256(normalised_identifier(id_number).encode()).hexdigest()[:32]


@dataclass(eq=False)
class ApplicantQuota:
    """Counts the cases opened per applicant on the current local day, as they are folded in (so a
    case closed since still counts); a snapshot keeps the day's index across a restart."""

    limits: LimitsConfig
    clock: Clock
    _day: date | None = None  # the local day _opened indexes
    _opened: dict[str, list[str]] = field(default_factory=dict)  # applicant key -> cases opened that day

    def check(self, intake: api.OpenCase) -> None:
        limit = self.limits.cases_per_applicant_per_day
        if not limit:
            return
        self._roll(local_date(self.clock.now()))
        opened = sorted(self._opened.get(applicant_key(intake.applicant.id_number.get_secret_value()), ()))
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
        if old.exists or not new.exists or new.opened_at is None:
            return
        today = local_date(self.clock.now())
        self._roll(today)
        if local_date(new.opened_at) != today:
            return
        id_number = (new.intake.get("applicant") or {}).get("id_number")
        if isinstance(id_number, str):
            self._opened.setdefault(applicant_key(id_number), []).append(new.case_id)

    def _roll(self, today: date) -> None:
        if self._day != today:
            self._day, self._opened = today, {}

    def export(self) -> dict[str, Any]:
        """The day's index, for a snapshot."""
        return {"day": self._day.isoformat() if self._day else None, "opened": self._opened}

    def restore(self, saved: dict[str, Any]) -> None:
        day = saved.get("day")
        self._day = date.fromisoformat(day) if day else None
        self._opened = {key: list(cases) for key, cases in (saved.get("opened") or {}).items()}

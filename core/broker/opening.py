"""Opening a case (``case.open``): once per client_ref across replicas and retries, within the quota."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from unstuck import lifecycle as lc
from unstuck.schemas import api
from unstuck.tasks import KeyedLocks

from .casebook import CaseBook
from .commands import CommandRunner, constant, due_dates
from .ids import CaseIds, ClientRefs
from .quota import ApplicantQuota
from .rules import Rules


@dataclass(eq=False)
class CaseOpener:
    book: CaseBook
    runner: CommandRunner
    ids: CaseIds
    refs: ClientRefs
    quota: ApplicantQuota
    rules: Rules
    _locks: KeyedLocks = field(default_factory=KeyedLocks)  # one per client_ref being opened

    async def open(self, intake: api.OpenCase) -> dict[str, Any]:
        self.rules.known_department(intake.department, "department")
        ref = intake.client_ref
        async with self._locks.hold(ref) if ref else contextlib.nullcontext():
            if ref and ref in self.refs.cases:
                return self._opened_before(self.refs.cases[ref])
            self.quota.check(intake)
            case_id = await self.ids.ref_holder(ref, None) if ref else None
            fresh = None
            if case_id is None:
                fresh = await self.ids.allocate()
                case_id = (await self.ids.ref_holder(ref, fresh) or fresh) if ref else fresh
            if ref:  # stored by another replica or by an unconfirmed earlier try, perhaps closed since
                await self.book.ensure(case_id)
            if self.book.state_of(case_id).exists:
                return self._opened_before(case_id)
            now = self.rules.clock.now()
            classification = self.rules.classification(
                intake, intake.category, "classified at intake", None, now
            )
            intake_deadline = self.rules.intake_deadline(now) if classification is None else None
            opening = lc.Open(intake=intake, classification=classification, intake_deadline=intake_deadline)
            try:
                stored = await self.runner.execute(
                    case_id,
                    constant(opening),
                    stored_before=case_id != fresh or bool(ref),
                )
            except lc.Refused:
                if ref and self.book.state_of(case_id).exists:  # another replica finished the same open
                    return self._opened_before(case_id)
                raise
        return {**self.runner.reply(stored), "duplicate": False}

    def _opened_before(self, case_id: str) -> dict[str, Any]:
        existing = self.book.state_of(case_id)
        return {
            "case_id": case_id,
            "state": existing.state,
            "duplicate": True,
            "events": [],
            **due_dates(existing),
        }

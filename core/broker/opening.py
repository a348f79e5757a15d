"""Opening a case (``case.open``): once per client_ref across replicas and retries, within the quota."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from unstuck import lifecycle as lc
from unstuck.schemas import api
from unstuck.schemas.subjects import APPLICANT
from unstuck.tasks import KeyedLocks

from .casebook import CaseBook
from .commands import CommandRunner, constant, due_dates
from .ids import CaseIds, ClientRefs
from .online import digest_of, new_secret, receipt_of
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

    async def open(self, intake: api.OpenCase, online: bool = False) -> dict[str, Any]:
        """Open ``intake``; ``online``: reported by the applicant through the portal, who is given
        a receipt code (the reply's ``receipt``, never stored)."""
        self.rules.known_department(intake.department, "department")
        secret = new_secret() if online else None
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
            opening = lc.Open(
                intake=intake,
                classification=classification,
                intake_deadline=intake_deadline,
                opened_by=APPLICANT if online else None,
                receipt_digest=digest_of(secret) if secret else None,
            )
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
        receipt = {"receipt": receipt_of(case_id, secret)} if secret else {}
        return {**self.runner.reply(stored), "duplicate": False, **receipt}

    def _opened_before(self, case_id: str) -> dict[str, Any]:
        existing = self.book.state_of(case_id)
        return {
            "case_id": case_id,
            "state": existing.state,
            "duplicate": True,
            "events": [],
            **due_dates(existing),
        }

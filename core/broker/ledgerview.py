"""The ledger (台賬) as the API reads it: ``case.list`` and ``accountability.list`` answer from the
ledger database, which the projector keeps up to date from the stream (docs/ledger.md).

Reads see this broker's own writes: each waits (at most ``wait_seconds``) until the projector holds
every message the broker has appended or applied, and says in ``as_of`` the stream sequence the
answer holds, so a caller can tell an answer that had to go without the newest messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from unstuck.clock import Clock
from unstuck.ledger import InvalidFilter, Ledger, Projector
from unstuck.schemas import api

from .casebook import CaseBook
from .errors import ApiFailure


@dataclass(eq=False)
class LedgerView:
    book: CaseBook
    clock: Clock
    ledger: Ledger | None = None  # set when the broker starts
    projector: Projector | None = None
    wait_seconds: float = 2.0

    async def list_cases(self, req: api.ListCases) -> dict[str, Any]:
        ledger = await self._caught_up()
        try:
            out = await ledger.list_cases(req, now=self.clock.now())
        except InvalidFilter as exc:
            raise ApiFailure("invalid_request", str(exc), field=exc.field, fix=exc.fix) from exc
        return {**out, "as_of": self._as_of()}

    async def list_accountability(self, req: api.ListAccountability) -> dict[str, Any]:
        ledger = await self._caught_up()
        return {**await ledger.list_accountability(req), "as_of": self._as_of()}

    async def _caught_up(self) -> Ledger:
        if self.ledger is None or self.projector is None:
            raise ApiFailure("unavailable", "the ledger is not open yet; try again in a moment")
        await self.projector.wait_for(max(self.book.applied_seq, self.book.written_seq), self.wait_seconds)
        return self.ledger

    def _as_of(self) -> int:
        return self.projector.position if self.projector is not None else 0

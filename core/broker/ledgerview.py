"""The ledger (台賬) as the API reads it: ``case.list`` and ``accountability.list`` answer from the
ledger database, which the projector keeps up to date from the stream (docs/ledger.md).

Reads see this broker's own writes: each waits (at most ``wait_seconds``) until the ledger holds
every message the broker has appended or applied, and says in ``as_of`` the stream sequence the
answer holds, so a caller can tell an answer that had to go without the newest messages. A ledger
far behind (catching up after a rebuild, more than ``CATCHING_UP`` messages) is answered from at
once: waiting would only slow every list down. The projector runs in the broker (its position is
in memory) or beside it (``[ledger] in_broker = false``: the position is read from the database).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from unstuck.clock import Clock
from unstuck.ledger import InvalidFilter, Ledger, Projector
from unstuck.schemas import api
from unstuck.schemas.subjects import LEDGER_CONSUMER

from .casebook import CaseBook
from .errors import ApiFailure

CATCHING_UP = 10_000
"""Messages behind from which a read does not wait for the ledger (it is catching up)."""
POLL_SECONDS = 0.05  # how often the position of a projector beside the broker is read


@dataclass(eq=False)
class LedgerView:
    book: CaseBook
    clock: Clock
    ledger: Ledger | None = None  # set when the broker starts
    projector: Projector | None = None
    wait_seconds: float = 2.0

    async def list_cases(self, req: api.ListCases) -> dict[str, Any]:
        ledger, as_of = await self._caught_up()
        try:
            out = await ledger.list_cases(req, now=self.clock.now())
        except InvalidFilter as exc:
            raise ApiFailure("invalid_request", str(exc), field=exc.field, fix=exc.fix) from exc
        return {**out, "as_of": as_of}

    async def list_accountability(self, req: api.ListAccountability) -> dict[str, Any]:
        ledger, as_of = await self._caught_up()
        return {**await ledger.list_accountability(req), "as_of": as_of}

    async def _caught_up(self) -> tuple[Ledger, int]:
        """The ledger, once it holds this broker's writes (or the wait is over), and its position."""
        if self.ledger is None:
            raise ApiFailure("unavailable", "the ledger is not open yet; try again in a moment")
        target = max(self.book.applied_seq, self.book.written_seq)
        if self.projector is not None:
            if 0 < target - self.projector.position <= CATCHING_UP:
                await self.projector.wait_for(target, self.wait_seconds)
            return self.ledger, self.projector.position
        position = await self.ledger.position(LEDGER_CONSUMER)
        deadline = time.monotonic() + self.wait_seconds
        while 0 < target - position <= CATCHING_UP and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            position = await self.ledger.position(LEDGER_CONSUMER)
        return self.ledger, position

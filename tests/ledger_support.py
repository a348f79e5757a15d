"""Helpers of the ledger's tests: cases written straight into the stream as the broker writes them
(one decision per append, each event sealed and chained by the event store), and the key they hash
applicant id numbers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from unstuck.eventstore import EventStore, ExpectedHead
from unstuck.lifecycle import NewEvent
from unstuck.schemas import events as ev
from unstuck.schemas.common import LEVEL_OF_RATING

KEY = bytes(range(32))
"""The applicant key of the tests' ledgers."""


def intake(**changes: Any) -> ev.CaseOpened:
    """A citizen's case at the 人社 window unless ``changes`` say otherwise."""
    body: dict[str, Any] = {
        "channel": "window",
        "applicant": {"kind": "citizen", "name": "李建國", "id_number": "210602198805123456"},
        "matter": "pension_transfer",
        "matter_title": "養老保險關係轉移",
        "window": "社保窗口",
        "department": "renshe",
        "description": "申請人在社保窗口辦理養老保險關係轉移未果。",
        "owner": "w-zhang",
    }
    body.update(changes)
    return ev.CaseOpened.model_validate(body)


@dataclass
class CaseWriter:
    """Appends decisions to cases of one stream, keeping each case's head."""

    store: EventStore
    heads: dict[str, ExpectedHead] = field(default_factory=dict)

    async def decide(self, case_id: str, at: datetime, *events: NewEvent) -> int:
        """One decision; its stream sequence."""
        stored = await self.store.append(case_id, self.heads.get(case_id, ExpectedHead()), list(events), at)
        last = stored[-1]
        self.heads[case_id] = ExpectedHead(last.seq, last.hash, last.stream_seq)
        return last.stream_seq

    async def open(
        self,
        case_id: str,
        at: datetime,
        opened: ev.CaseOpened,
        category: str,
        due: date,
        departments: list[str],
    ) -> int:
        """The opening decision: opened, classified, and one request per department."""
        classified = ev.CaseClassified(
            category=category,
            reason="classified at intake",
            mode="coordinate",
            working_days=5,
            due_date=due,
            departments=departments,
        )
        requests = [
            NewEvent(
                "system",
                ev.CoordinationRequested(
                    request_id=f"{case_id}-c{i}", department=d, question="請答覆此事項。", deadline=due
                ),
            )
            for i, d in enumerate(departments, start=1)
        ]
        return await self.decide(
            case_id, at, NewEvent(opened.owner, opened), NewEvent("system", classified), *requests
        )

    async def answer(self, case_id: str, at: datetime, department: str, n: int = 1) -> int:
        """The department's answer (resolved) and, with it, the case resolved."""
        replied = ev.CoordinationReplied(
            request_id=f"{case_id}-c{n}",
            department=department,
            outcome="resolved",
            message="已辦結",
            handler="經辦人",
        )
        resolved = ev.CaseResolved(outcome="resolved", summary="已辦結", departments=[department])
        return await self.decide(case_id, at, NewEvent(department, replied), NewEvent("system", resolved))

    async def close(self, case_id: str, at: datetime) -> int:
        closed = ev.CaseClosed(outcome="resolved", explanation="已告知", closed_by="w-zhang", on_time=True)
        return await self.decide(case_id, at, NewEvent("w-zhang", closed))

    async def evaluate(self, case_id: str, at: datetime, rating: str = "good") -> int:
        return await self.decide(
            case_id, at, NewEvent("applicant", ev.CaseEvaluated(level=LEVEL_OF_RATING[rating], rating=rating))
        )

    async def overdue(self, case_id: str, at: datetime, due: date) -> int:
        return await self.decide(case_id, at, NewEvent("system", ev.CaseOverdue(due_date=due)))

    async def accountability(self, case_id: str, at: datetime, staff: str, finding: str) -> int:
        record = ev.AccountabilityRecorded(
            staff=staff,
            section="養老保險科",
            leader_in_charge="分管副局長",
            finding=finding,
            measures=["interview"],
            fault_tolerance=False,
        )
        return await self.decide(case_id, at, NewEvent("leader-gao", record))

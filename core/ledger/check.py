"""``unstuck ledger check``: every case row compared with the case as replayed from the stream.

``snapshot`` reads what the ledger holds of each case, ``expected`` says what it should hold of a
replayed state, ``compare`` lists the differences. The replay itself is the auditor's
(``unstuck.replay``), run by the caller: the ledger never folds its own answer to check itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from unstuck import lifecycle as lc

from .tables import accountability, cases, coordinations

COMPARED = (
    "state",
    "category",
    "due_date",
    "overdue",
    "closed",
    "rated",
    "accountability",
    "coordinations",
)


@dataclass(frozen=True, slots=True)
class Difference:
    case_id: str
    field: str  # one of COMPARED, or "row" for a case missing on one side
    ledger: Any
    replayed: Any

    def __str__(self) -> str:
        return f"{self.case_id}: {self.field}: ledger {self.ledger!r}, replayed {self.replayed!r}"


def expected(state: lc.CaseState) -> dict[str, Any]:
    """What the ledger must hold of a replayed case."""
    return {
        "state": str(state.state),
        "category": state.category,
        "due_date": state.due_date.isoformat() if state.due_date else None,
        "overdue": state.overdue,
        "closed": state.closing is not None,
        "rated": state.evaluation.get("rating") if state.evaluation else None,
        "accountability": len(state.accountability),
        "coordinations": len(state.coordinations),
    }


def snapshot(conn: Connection) -> dict[str, dict[str, Any]]:
    """What the ledger holds of every case, in ``expected``'s form."""

    def counts(table: Any) -> dict[str, int]:
        query = select(table.c.case_id, func.count()).group_by(table.c.case_id)
        return {case_id: int(n) for case_id, n in conn.execute(query)}

    accountable, coordinated = counts(accountability), counts(coordinations)
    out = {}
    for r in conn.execute(select(cases)):
        out[r.case_id] = {
            "state": r.state,
            "category": r.category,
            "due_date": r.due_date.isoformat() if r.due_date else None,
            "overdue": bool(r.overdue),
            "closed": r.closed_at is not None,
            "rated": r.rating,
            "accountability": accountable.get(r.case_id, 0),
            "coordinations": coordinated.get(r.case_id, 0),
            "last_stream_seq": int(r.last_stream_seq),
        }
    return out


def compare(
    ledger: Mapping[str, Mapping[str, Any]], replayed: Mapping[str, lc.CaseState]
) -> list[Difference]:
    """Every difference between the ledger's rows and the replayed states, by case id."""
    out: list[Difference] = []
    for case_id in sorted(set(ledger) | {c for c, s in replayed.items() if s.opened_at is not None}):
        row, state = ledger.get(case_id), replayed.get(case_id)
        if row is None or state is None or state.opened_at is None:
            out.append(
                Difference(case_id, "row", "present" if row else "missing", "present" if state else "missing")
            )
            continue
        want = expected(state)
        out += [Difference(case_id, f, row[f], want[f]) for f in COMPARED if row[f] != want[f]]
    return out

"""One stored event folded into a case's state, as the broker folds it: the event must continue the
case's chain (next seq, previous hash), carry a valid payload of its type, and pass ``evolve``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from unstuck import lifecycle as lc
from unstuck.schemas.events import EventSchemaError, parse_payload


class NotFolded(Exception):
    """The event does not continue its case or does not parse: not applied (the replay says why)."""


@dataclass(frozen=True, slots=True)
class Folded:
    state: lc.CaseState
    type: str
    data: Any
    meta: lc.EventMeta


def fold(old: lc.CaseState, fields: dict[str, Any], data: Any = None) -> Folded | None:
    """The case after the event with envelope ``fields`` (``data``: its payload, if parsed already);
    None when it is applied already (its seq is not beyond the state's); NotFolded when it cannot be
    applied. The broker's case book and the ledger's projector both fold through here."""
    seq = int(fields["seq"])
    if seq <= old.seq:
        return None
    if seq != old.seq + 1 or fields.get("prev_hash") != old.head_hash:
        raise NotFolded(f"case {old.case_id}: event seq {seq} does not continue head {old.seq}")
    if data is None:
        try:
            data = parse_payload(fields["type"], fields["data"], int(fields.get("v", 1)))
        except EventSchemaError as exc:
            raise NotFolded(f"case {old.case_id}: event {seq} does not parse: {exc}") from exc
    meta = lc.EventMeta(
        seq=seq,
        at=datetime.fromisoformat(fields["at"]),
        hash=fields["hash"],
        actor=str(fields.get("actor", "")),
    )
    try:
        new = lc.evolve(old, fields["type"], data, meta)
    except Exception as exc:
        raise NotFolded(f"case {old.case_id}: event {seq} ({fields['type']}) not applied: {exc}") from exc
    return Folded(new, fields["type"], data, meta)

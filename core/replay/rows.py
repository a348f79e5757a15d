"""A case as one row of the replay's output: the cells taken from its state and, for JSON, the state
itself as JSON text.

Rendering a state is most of the cost of writing a row, so a replay asked for rows (``RowSpec``)
renders each case's state once, in the process that replayed the case, right after ``finish``, and
keeps it deflated in place of the state (``CaseReplay.row``). Writing the output then only joins
text; a replay split over processes renders in all of them at once.
"""

from __future__ import annotations

import json
import marshal
import zlib
from dataclasses import dataclass
from typing import Any

from unstuck import lifecycle as lc
from unstuck.schemas.privacy import mask_personal

from .replayer import CaseReplay, Replayer

CELLS = (
    "state",
    "category",
    "owner",
    "seq",
    "due_date",
    "overdue",
    "opened_at",
    "last_event_at",
    "head_hash",
)
"""The row's cells taken from the state, in this order."""

Cells = tuple[str, str, str, int, str, bool, str, str, str]


@dataclass(frozen=True)
class RowSpec:
    """What the output needs of each case: the cells only (table, CSV), or the state too (JSON)."""

    state_json: bool = False
    reveal: bool = False


def dump(value: Any) -> str:
    """Compact JSON with sorted keys, as each row of the JSON output is written."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def cells_of(s: lc.CaseState) -> Cells:
    return (
        str(s.state or "-"),  # a status is a StrEnum: its value, as the output writes it
        s.category or "-",
        s.owner or "-",
        s.seq,
        s.due_date.isoformat() if s.due_date else "",
        s.overdue,
        s.opened_at.isoformat() if s.opened_at else "",
        s.last_event_at.isoformat() if s.last_event_at else "",
        s.head_hash,
    )


def masked_state(state: dict[str, Any]) -> dict[str, Any]:
    """A state with the applicant's id and phone numbers masked (they live only in intake.applicant)."""
    applicant = (state.get("intake") or {}).get("applicant")
    if not isinstance(applicant, dict):
        return state
    return {**state, "intake": {**state["intake"], "applicant": mask_personal(applicant)}}


def state_text(s: lc.CaseState, reveal: bool) -> str:
    view = s.to_dict()
    return dump(view if reveal else masked_state(view))


def rendered(s: lc.CaseState, spec: RowSpec) -> tuple[Cells, str | None]:
    return cells_of(s), state_text(s, spec.reveal) if spec.state_json else None


def render_rows(replayer: Replayer, spec: RowSpec) -> None:
    """Render every case the report shows, in place of its state (the others keep only their counts)."""
    report = replayer.report
    replayer.pack_all()
    dictionary = b""
    for track in report.cases.values():
        row = b""  # a case the report does not show: only its counts are kept
        if report.shows(track):
            raw = marshal.dumps(rendered(track.state, spec))
            if not dictionary:
                dictionary = raw
            packer = zlib.compressobj(1, zlib.DEFLATED, 13, 3, zdict=dictionary)
            row = packer.compress(raw) + packer.flush()
        track.row, track.packed, track.dictionary = row, None, dictionary


_text = json.encoder.encode_basestring  # how ``dump`` writes a string (ensure_ascii=False)


def json_row(track: CaseReplay, cells: Cells, state: str, codes: str) -> str:
    """The case's line of the JSON output: what ``dump`` writes for its row with the state's JSON
    text in it (the keys in sorted order), put together without sorting or encoding the state again."""
    _status, category, owner, seq, due, overdue, opened, last, head = cells
    texts = (category, codes, due, head, last, opened, owner)
    if not (all(type(t) is str for t in texts) and type(seq) is int and type(overdue) is bool):
        row = {"case_id": track.case_id, **dict(zip(CELLS, cells, strict=True)), "state": None}
        row |= {"events": track.events, "findings": track.findings, "codes": codes, "intact": track.intact}
        row["stopped"] = track.stopped or ""
        return dump(row).replace('"state":null', f'"state":{state}', 1)
    return "".join(
        (
            '{"case_id":',
            _text(track.case_id),
            ',"category":',
            _text(category),
            ',"codes":',
            _text(codes),
            ',"due_date":',
            _text(due),
            ',"events":',
            str(track.events),
            ',"findings":',
            str(track.findings),
            ',"head_hash":',
            _text(head),
            ',"intact":',
            "true" if track.intact else "false",
            ',"last_event_at":',
            _text(last),
            ',"opened_at":',
            _text(opened),
            ',"overdue":',
            "true" if overdue else "false",
            ',"owner":',
            _text(owner),
            ',"seq":',
            str(seq),
            ',"state":',
            state,
            ',"stopped":',
            _text(track.stopped or ""),
            "}",
        )
    )


def row_of(track: CaseReplay, spec: RowSpec) -> tuple[Cells, str | None]:
    """The cells and state text of a case, rendered before or now."""
    if track.row is None:
        return rendered(track.state, spec)
    unpacker = zlib.decompressobj(13, zdict=track.dictionary)
    cells, text = marshal.loads(unpacker.decompress(track.row) + unpacker.flush())
    return tuple(cells), text

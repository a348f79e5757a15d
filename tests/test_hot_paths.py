"""Hot paths written for speed must give what their plain definitions give.

seal() encodes an event once instead of twice; the lifecycle replaces a case's
state and a coordination without ``dataclasses.replace``; a replay's JSON row is put together
without dumping its state again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from unstuck import lifecycle as lc
from unstuck.canonical import canonical_json, check_body, seal
from unstuck.replay import CaseReplay
from unstuck.replay.rows import CELLS, dump, json_row

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def plain_seal(fields: dict[str, Any]) -> tuple[bytes, str]:
    digest = hashlib.sha256(canonical_json(fields)).hexdigest()
    return canonical_json({**fields, "hash": digest}), digest


@given(st.dictionaries(st.text(max_size=12).filter(lambda k: k != "hash"), values, max_size=8))
def test_sealed_body_is_the_canonical_json_of_the_envelope_with_its_hash(fields: dict[str, Any]) -> None:
    assert seal(fields) == plain_seal(fields)


def test_a_sealed_event_passes_its_own_check() -> None:
    fields = {
        "event_id": "01JDZ6X3E4B3N8Q3M1ZK6J2V9A",
        "case_id": "DD-20261127-0001",
        "seq": 1,
        "type": "case.opened",
        "at": "2026-11-27T01:00:00Z",
        "actor": "w-zhang",
        "data": {"matter_title": "門頭招牌", "facts": {"floor": 2}},
        "prev_hash": "",
        "v": 1,
    }
    body, digest = seal(fields)
    assert (body, digest) == plain_seal(fields)
    assert check_body(body) == ({**fields, "hash": digest}, [])


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "state": st.sampled_from(lc.STATES),
            "seq": st.integers(0, 100),
            "owner": st.none() | st.text(max_size=8),
            "overdue": st.booleans(),
            "round": st.integers(1, 5),
            "warned": st.frozensets(st.integers(0, 3)),
            "case_id": st.text(min_size=1, max_size=8),
        },
    )
)
def test_a_replaced_case_state_equals_what_dataclasses_replace_gives(changes: dict[str, Any]) -> None:
    before = lc.CaseState(case_id="DD-20261127-0001", seq=3, state=lc.COORDINATING, owner="w-zhang")
    assert lc._replace_state(before, **changes) == dataclasses.replace(before, **changes)


def test_replacing_a_field_a_case_state_does_not_have_is_an_error() -> None:
    try:
        lc._replace_state(lc.CaseState(case_id="X"), colour="red")
    except TypeError as exc:
        assert "colour" in str(exc)
    else:
        raise AssertionError("an unknown field was accepted")


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(list(lc.CoordinationStatus)),
            "attempts": st.integers(0, 9),
            "message": st.none() | st.text(max_size=8),
            "last_reason": st.none() | st.sampled_from(["timeout", "error"]),
        },
    )
)
def test_a_replaced_coordination_equals_what_dataclasses_replace_gives(changes: dict[str, Any]) -> None:
    before = lc.Coordination(
        request_id="R1", department="scjg", round=1, question="q", deadline=date(2026, 11, 30)
    )
    assert lc.state.replace_coordination(before, **changes) == dataclasses.replace(before, **changes)


def test_replacing_a_field_a_coordination_does_not_have_is_an_error() -> None:
    before = lc.Coordination(
        request_id="R1", department="scjg", round=1, question="q", deadline=date(2026, 11, 30)
    )
    try:
        lc.state.replace_coordination(before, colour="red")
    except TypeError as exc:
        assert "colour" in str(exc)
    else:
        raise AssertionError("an unknown field was accepted")


texts = st.text(max_size=12)  # any characters: quotes, backslashes, control characters, CJK


@given(
    st.tuples(texts, texts, texts, st.integers(0, 99), texts, st.booleans(), texts, texts, texts),
    st.dictionaries(st.text(max_size=6), values, max_size=4),
    st.fixed_dictionaries(
        {
            "case_id": texts,
            "events": st.integers(0, 99),
            "findings": st.integers(0, 9),
            "stopped": st.none() | texts,
        }
    ),
    texts,
)
def test_a_json_row_put_together_is_the_row_dumped_with_its_state(
    cells: tuple[Any, ...], state: dict[str, Any], track: dict[str, Any], codes: str
) -> None:
    case = CaseReplay(track["case_id"], events=track["events"], findings=track["findings"])
    case.stopped = track["stopped"]
    row = {"case_id": case.case_id, **dict(zip(CELLS, cells, strict=True)), "events": case.events}
    row |= {"findings": case.findings, "codes": codes, "stopped": case.stopped or ""}
    row |= {"intact": case.intact, "state": state}  # as the JSON output always wrote it
    assert json_row(case, cells, dump(state), codes) == dump(row)
    odd = (*cells[:3], str(cells[3]), *cells[4:])  # a cell of another type: the plain way
    row["seq"] = odd[3]
    assert json_row(case, odd, dump(state), codes) == dump(row)

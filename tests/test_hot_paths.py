"""Hot paths written for speed must give what their plain definitions give.

canonical_json takes orjson's bytes where they are RFC 8785's and the reference encoder's (rfc8785)
elsewhere; the replayer's byte check cuts the hash member out of a body instead of encoding it
again; the lifecycle replaces a case's state and a coordination without ``dataclasses.replace``; a
replay's JSON row is put together without dumping its state again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from unstuck import lifecycle as lc
from unstuck.canonical import HASH_MISMATCH, NOT_CANONICAL, _orjson_if_jcs, canonical_json, check_body, seal
from unstuck.replay import CaseReplay, sealed_ok
from unstuck.replay.rows import CELLS, dump, json_row

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cases"

# characters where the byte forms part: escapes, DEL, U+2028, the sorting edge between U+E000-U+FFFF
# and a character beyond U+FFFF (a surrogate pair in UTF-16), and the bytes orjson's output is scanned for
EDGE_CHARACTERS = st.sampled_from(
    [
        "\x00",
        "\x1f",
        '"',
        "\\",
        "/",
        "\x7f",
        "\u2028",
        "\ue000",
        "\ufb33",
        "\uff0c",
        "\uffff",
        "\U00010000",
        "\U0001f600",
        "\U0010ffff",
        ":",
        ",",
        "[",
        "1",
        ".",
        "e",
        "n",
        "u",
        "中",
    ]
)
characters = st.characters(codec="utf-8") | EDGE_CHARACTERS
keys = st.text(characters, max_size=6)
strings = st.text(characters, max_size=12)
i_json_ints = st.integers(-(2**53 - 1), 2**53 - 1)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | i_json_ints | finite_floats | strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=16,
)
# and what JCS has no form for: the reference refuses it, so must canonical_json
unwritable = st.integers().filter(lambda n: abs(n) > 2**53 - 1) | st.sampled_from(
    [float("nan"), float("inf"), -float("inf"), "\ud800", "a\udfff"]
)
any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | strings | unwritable,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(keys | st.sampled_from(["\ud83d"]), inner, max_size=5)
    ),
    max_leaves=12,
)


@given(json_values)
def test_canonical_json_gives_the_reference_encoders_bytes(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(st.dictionaries(keys, json_values, max_size=6) | st.lists(json_values, max_size=4))
def test_orjsons_bytes_are_taken_only_where_they_are_the_reference_encoders(value: Any) -> None:
    fast = _orjson_if_jcs(value)
    assert fast is None or fast == rfc8785.dumps(value)


def outcome(encode: Any, value: Any) -> bytes | type[Exception]:
    try:
        return bytes(encode(value))
    except ValueError:
        return ValueError


@given(any_values)
def test_canonical_json_refuses_what_the_reference_refuses(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(rfc8785.dumps, value)


# text with none of what sends a value to the reference: no ``,`` or ``[`` (a float or null after
# them) and no quote (a colon after one), nothing beyond U+FFFF; colons (a timestamp's), Chinese and its
# full-width punctuation are as common as it gets
plain_text = st.text(
    st.characters(codec="utf-8", max_codepoint=0xFFFF, exclude_characters='",[')
    | st.sampled_from("，。（）：中文:1."),
    max_size=12,
)
plain_values = st.recursive(
    st.booleans() | i_json_ints | plain_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(plain_text, inner, max_size=5),
    max_leaves=16,
)


@given(st.dictionaries(plain_text, plain_values, max_size=6))
def test_a_value_without_floats_nulls_or_characters_beyond_the_bmp_takes_orjsons_bytes(value: Any) -> None:
    assert _orjson_if_jcs(value) == rfc8785.dumps(value)


def test_a_character_beyond_u_ffff_outside_the_keys_keeps_orjsons_bytes() -> None:
    value = {"s": "\U0001f600", "a": ["\U00010000"], "\uffff": 1}
    assert _orjson_if_jcs(value) == b'{"a":["\xf0\x90\x80\x80"],"s":"\xf0\x9f\x98\x80","\xef\xbf\xbf":1}'


def test_a_dict_or_a_list_orjson_writes_exactly_is_not_encoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    def reference(value: Any) -> bytes:
        raise AssertionError(f"the reference encoder was called for {value!r}")

    monkeypatch.setattr(rfc8785, "dumps", reference)
    assert canonical_json({"b": [1, "中，文"], "a": True}) == '{"a":true,"b":[1,"中，文"]}'.encode()
    assert canonical_json([{"b": 1, "a": 2}, "x"]) == b'[{"a":2,"b":1},"x"]'


ENVELOPE = {
    "event_id": "01JDZ6X3E4B3N8Q3M1ZK6J2V9A",
    "case_id": "DD-20261127-0001",
    "seq": 1,
    "type": "case.opened",
    "at": "2026-11-27T01:00:00.123456Z",  # as the broker stamps it: 13:42:13.869 is no float
    "actor": "w-zhang",
    "data": {"matter_title": "門頭招牌", "facts": {"floor": 2}},
    "prev_hash": "",
    "v": 1,
}


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_the_opened_event_of_every_sample_case_takes_orjsons_bytes(sample: str) -> None:
    intake = json.loads((SAMPLES / sample).read_text(encoding="utf-8"))
    fields = {**ENVELOPE, "data": intake, "prev_hash": "3e" * 32}  # hex with digit-then-e runs
    fast = _orjson_if_jcs({**fields, "hash": "5e" * 32})
    assert fast is not None and fast == rfc8785.dumps({**fields, "hash": "5e" * 32})


def test_a_sealed_event_passes_its_own_check() -> None:
    body, digest = seal(ENVELOPE)
    assert body == rfc8785.dumps({**ENVELOPE, "hash": digest})
    assert digest == hashlib.sha256(rfc8785.dumps(ENVELOPE)).hexdigest()
    assert check_body(body) == ({**ENVELOPE, "hash": digest}, [])


def envelope(without_event_id: bool, seq: Any) -> dict[str, Any]:
    """The envelope's fields but data; the replayer cuts the hash member out only with an event_id and
    an integer seq, so without them it encodes the content again."""
    fields = {**ENVELOPE, "seq": seq}
    del fields["data"]
    if without_event_id:
        del fields["event_id"]
    return fields


envelopes = st.builds(envelope, st.booleans(), i_json_ints | finite_floats)


@given(envelopes, st.dictionaries(keys, json_values, max_size=5))
def test_a_sealed_body_checks_clean_and_the_replayers_byte_check_agrees(
    envelope: dict[str, Any], data: dict[str, Any]
) -> None:
    fields = {**envelope, "data": data}
    body, digest = seal(fields)
    obj, problems = check_body(body)
    assert problems == []
    assert obj["hash"] == digest
    assert sealed_ok(body, json.loads(body)) == (True, True)


def verdict(body: bytes) -> tuple[bool, bool]:
    problems = check_body(body)[1]
    return NOT_CANONICAL not in problems, HASH_MISMATCH not in problems


@given(
    envelopes, st.dictionaries(keys, json_values, max_size=5), st.sampled_from(["python", "edited", "hash"])
)
def test_the_replayers_byte_check_gives_check_bodys_verdict_on_changed_bodies(
    envelope: dict[str, Any], data: dict[str, Any], change: str
) -> None:
    fields = {**envelope, "data": data}
    _, digest = seal(fields)
    if change == "python":  # the stdlib's own canonical-looking form: 1.0, code point key order
        changed = json.dumps(
            {**fields, "hash": digest}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    elif change == "edited":
        changed = canonical_json({**fields, "data": {**data, "zz": 1}, "hash": digest})
    else:
        changed = canonical_json({**fields, "hash": digest[::-1]})
    assert sealed_ok(changed, json.loads(changed)) == verdict(changed)


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


row_values = st.recursive(  # what a replay's JSON output holds (plain JSON, not canonical)
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
texts = st.text(max_size=12)  # any characters: quotes, backslashes, control characters, CJK


@given(
    st.tuples(texts, texts, texts, st.integers(0, 99), texts, st.booleans(), texts, texts, texts),
    st.dictionaries(st.text(max_size=6), row_values, max_size=4),
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

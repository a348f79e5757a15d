"""The replayer's checks on stored bytes, without a server: the same verdicts as the canonical module,
chains with several holes, and every finding code documented for auditors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from unstuck.canonical import canonical_json, check_body, seal
from unstuck.replay import FINDINGS, Replayer, envelope_problem, sealed_ok

DOCS = Path(__file__).resolve().parents[1] / "docs" / "audit.md"


def chain(case_id: str, n: int) -> list[dict]:
    """A valid chain of ``n`` events (an opening and then deadline warnings)."""
    events, prev = [], ""
    for seq in range(1, n + 1):
        fields = {
            "event_id": f"01TESTEVENT{case_id[-4:]}{seq:08d}",
            "case_id": case_id,
            "seq": seq,
            "type": "case.deadline_warned",
            "at": f"2026-09-28T0{min(seq, 9)}:00:00Z",
            "actor": "system",
            "data": {"due_date": "2026-10-09", "working_days_left": seq},
            "prev_hash": prev,
            "v": 1,
        }
        body, digest = seal(fields)
        events.append({**fields, "hash": digest, "_body": body})
        prev = digest
    return events


def feed(events: list[dict], heads: dict | None = None) -> Replayer:
    r = Replayer("TEST", verify=True, subject_prefix="unstuck.case", heads=heads or {})
    for i, e in enumerate(events, start=1):
        r.feed(f"unstuck.case.{e['case_id']}", i, e["_body"])
    r.finish()
    return r


def codes(r: Replayer) -> list[tuple[str, int | None]]:
    return [(f.code, f.seq) for f in r.report.findings]


def bodies() -> list[bytes]:
    """Stored bodies and tampered variants, to compare the fast check with the reference one."""
    base = chain("DD-20260928-0001", 3)[1]
    fields = {k: v for k, v in base.items() if k != "_body"}
    variants = [
        base["_body"],
        json.dumps(fields).encode(),  # spaces, ASCII escapes
        canonical_json({**fields, "data": {**fields["data"], "working_days_left": 9}}),
        canonical_json({**fields, "data": {**fields["data"], "hash": fields["hash"]}}),  # a decoy member
        canonical_json({**fields, "v": {"a": 1, "hash": fields["hash"]}}),
        canonical_json({**fields, "hash": fields["hash"].upper()}),
        canonical_json({**fields, "zzz": [1, 2]}),
        canonical_json({k: v for k, v in fields.items() if k != "event_id"}),
        canonical_json({"hash": fields["hash"]}),
        seal({**{k: v for k, v in fields.items() if k != "hash"}, "actor": '說明"引號"\\'})[0],
    ]
    return variants


@pytest.mark.parametrize("body", bodies())
def test_the_fast_byte_check_agrees_with_the_canonical_module(body):
    obj, problems = check_body(body)
    canonical, hash_ok = sealed_ok(body, obj)
    assert canonical == (not any("canonical" in p for p in problems))
    assert hash_ok == (not any("hash" in p for p in problems))


def test_an_intact_chain_has_no_finding_and_its_state_is_at_the_last_seq():
    events = chain("DD-20260928-0001", 5)
    r = feed(events, {"DD-20260928-0001": {"seq": 5, "hash": events[-1]["hash"]}})
    assert codes(r) == []
    assert r.cases["DD-20260928-0001"].state.seq == 5


def test_two_holes_are_two_gaps_and_a_late_event_filling_one_is_out_of_order():
    events = chain("DD-20260928-0001", 9)
    stored = [events[i] for i in (0, 1, 4, 5, 2, 8)]  # seq 3 late; 4, 7 and 8 never
    r = feed(stored)
    assert codes(r) == [("seq_out_of_order", 3), ("seq_gap", 4), ("seq_gap", 7), ("head_missing", 9)]
    assert "seq 7-8 missing" in r.report.findings[2].message


def test_a_late_event_that_does_not_fit_its_neighbours_breaks_the_chain_on_both_sides():
    events = chain("DD-20260928-0001", 4)
    other = chain("DD-20260928-9999", 4)[2]
    forged = seal(
        {**{k: v for k, v in other.items() if k not in ("hash", "_body")}, "case_id": "DD-20260928-0001"}
    )[0]
    stored = [events[0], events[1], events[3], {**events[2], "_body": forged}]
    r = feed(stored, {"DD-20260928-0001": {"seq": 4, "hash": events[3]["hash"]}})
    assert codes(r) == [("seq_out_of_order", 3), ("prev_hash_mismatch", 3), ("prev_hash_mismatch", 4)]


def test_a_first_event_with_a_prev_hash_is_a_broken_link():
    events = chain("DD-20260928-0001", 2)
    first = seal(
        {**{k: v for k, v in events[0].items() if k not in ("hash", "_body")}, "prev_hash": "a" * 64}
    )
    r = feed([{**events[0], "_body": first[0]}])
    assert set(codes(r)) == {("prev_hash_mismatch", 1), ("head_missing", 1)}
    assert any("empty prev_hash" in f.message for f in r.report.findings)


def test_a_body_that_is_not_json_is_unreadable_and_named_by_its_subject():
    r = Replayer("TEST", verify=True, subject_prefix="unstuck.case")
    r.feed("unstuck.case.DD-20260928-0001", 7, b"\xff not json")
    r.finish()
    assert [(f.code, f.case_id, f.stream_seq) for f in r.report.findings] == [
        ("unreadable", "DD-20260928-0001", 7)
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"seq": 0}, "seq 0 is not a positive integer"),
        ({"event_id": "short"}, "event_id 'short' is not valid"),
        ({"at": "yesterday"}, "at 'yesterday' is not an ISO 8601 timestamp"),
        ({"at": "2026-09-28T09:00:00"}, "has no time zone"),
        ({"case_id": "DD.1"}, "case_id 'DD.1' is not valid"),
        ({"extra": 1}, "unknown field(s) extra"),
    ],
)
def test_envelope_problems_name_the_field(change, expected):
    fields = {k: v for k, v in chain("DD-20260928-0001", 1)[0].items() if k != "_body"}
    assert expected in (envelope_problem({**fields, **change}) or "")


def test_every_finding_code_is_explained_in_the_audit_guide():
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))
    assert set(FINDINGS) <= documented, f"document {set(FINDINGS) - documented} in docs/audit.md"

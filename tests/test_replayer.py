"""The pure replayer, without a server: stored bodies, subjects and stream seqs in; case states and
findings out. Every expected finding (code, case, seq, stream seq, message) and every expected state
is written out by hand here, never taken from another run of the same code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from unstuck.canonical import canonical_json, seal
from unstuck.lifecycle import CLOSED, CaseState, CaseStatus, Coordination
from unstuck.lifecycle import _replace_state as lc_replace
from unstuck.replay import (
    FINDINGS,
    CaseReplay,
    Finding,
    Replayer,
    Report,
    compact_head,
    envelope_problem,
    sealed_ok,
)
from unstuck.replay.findings import finding_order
from unstuck.replay.headbook import HeadBook
from unstuck.replay.packing import dictionary_of, pack_state, unpack_state
from unstuck.replay.replayer import bucket_of, fingerprint

PREFIX = "unstuck.case"
A = "DD-20260928-0001"
B = "DD-20260928-0002"
C = "DD-20260928-0003"


@dataclass(frozen=True)
class Stored:
    """One event as the broker stores it: its envelope, its exact bytes and its hash."""

    fields: dict
    body: bytes
    hash: str

    @property
    def case_id(self) -> str:
        return self.fields["case_id"]

    @property
    def seq(self) -> int:
        return self.fields["seq"]


def sealed(fields: dict) -> Stored:
    body, digest = seal(fields)
    return Stored({**fields, "hash": digest}, body, digest)


def event(
    case_id: str,
    seq: int,
    type_: str,
    data: dict,
    at: str,
    prev: str,
    *,
    actor: str = "w-zhang",
    v: int | None = 1,
    event_id: str | None = None,
) -> Stored:
    fields = {
        "event_id": event_id or f"EV-{case_id}-{seq:04d}",
        "case_id": case_id,
        "seq": seq,
        "type": type_,
        "at": at,
        "actor": actor,
        "data": data,
        "prev_hash": prev,
    }
    if v is not None:
        fields["v"] = v
    return sealed(fields)


def warnings(case_id: str, n: int, day: int = 28) -> list[Stored]:
    """A linked chain of ``n`` deadline warnings (the cheapest valid events), one hour apart."""
    out: list[Stored] = []
    prev = ""
    for seq in range(1, n + 1):
        e = event(
            case_id,
            seq,
            "case.deadline_warned",
            {"due_date": "2026-10-09", "working_days_left": seq},
            (utc(2026, 9, day) + timedelta(hours=seq)).isoformat(),
            prev,
            actor="system",
        )
        out.append(e)
        prev = e.hash
    return out


def changed(e: Stored, **fields: object) -> Stored:
    """The same event with some envelope fields changed and sealed again (a forger who re-hashes)."""
    rest = {k: v for k, v in e.fields.items() if k != "hash"}
    return sealed({**rest, **fields})


def replayer(events: list[Stored], heads: dict | None = None, verify: bool = True, **kwargs) -> Replayer:
    """Feed the events in the order given, at stream seqs 1, 2, 3 ..., each on its case's subject."""
    r = Replayer("TEST", verify=verify, subject_prefix=PREFIX, heads=heads, **kwargs)
    for sseq, e in enumerate(events, start=1):
        r.feed(f"{PREFIX}.{e.case_id}", sseq, e.body)
    return r


def found(r: Replayer) -> list[tuple]:
    return [(f.code, f.case_id, f.seq, f.stream_seq, f.message) for f in r.report.findings]


def head(e: Stored, stream_seq: int = 0) -> dict:
    return {"seq": e.seq, "hash": e.hash, "stream_seq": stream_seq}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- one case from opening to closing, replayed and compared field by field ------------------------

OPENED = {
    "channel": "window",
    "applicant": {
        "kind": "enterprise",
        "name": "丹東市振興區味道小廚餐飲店",
        "id_number": "92210603MA0KC8QX2K",
        "phone": "13904151234",
        "contact": "王麗",
    },
    "matter": "shop_sign",
    "matter_title": "二樓門頭招牌設置",
    "facts": {"floor": 2, "building": "臨街商住樓"},
    "window": "城管局戶外廣告審批窗口",
    "department": "chengguan",
    "description": "申請在二樓外立面設置門頭招牌，窗口以多層設置不符合規定為由未予辦理。",
    "category": "cannot",
    "owner": "w-zhang",
    "client_ref": "demo-01",
}
CLASSIFIED = {
    "category": "cannot",
    "reason": "二樓招牌涉及市容規定",
    "mode": "coordinate",
    "working_days": 1,
    "due_date": "2026-09-29",
    "duty_leader": "l-wang",
    "departments": ["chengguan"],
}
REQUESTED = {
    "request_id": "REQ-DD-20260928-0001-chengguan",
    "department": "chengguan",
    "question": "二樓外立面可否設置門頭招牌？",
    "deadline": "2026-09-29",
    "round": 1,
}
REPLIED = {
    "request_id": "REQ-DD-20260928-0001-chengguan",
    "department": "chengguan",
    "outcome": "cannot",
    "message": "臨街建築二樓及以上不得設置門頭招牌。",
    "handler": "城管局 李科長",
    "legal_basis": "《城市市容和環境衛生管理條例》第十一條",
    "attempt": 2,
}
RESOLVED = {
    "outcome": "cannot",
    "summary": "城管局答覆：依法不能設置，可改設一樓招牌。",
    "departments": ["chengguan"],
}
CLOSED_DATA = {
    "outcome": "cannot",
    "explanation": "已向申請人說明法規依據，建議改設一樓招牌。",
    "closed_by": "w-zhang",
    "on_time": True,
}


def scripted_case() -> list[Stored]:
    """受理 → 分類 → 發起協調 → 部門答覆 → 辦結 → 銷號, written out event by event."""
    opened = event(A, 1, "case.opened", OPENED, "2026-09-28T01:30:00+00:00", "")
    classified = event(
        A, 2, "case.classified", CLASSIFIED, "2026-09-28T01:45:00+00:00", opened.hash, actor="w-zhang"
    )
    requested = event(
        A,
        3,
        "coordination.requested",
        REQUESTED,
        "2026-09-28T01:45:01+00:00",
        classified.hash,
        actor="system",
    )
    replied = event(
        A, 4, "coordination.replied", REPLIED, "2026-09-28T06:10:00+00:00", requested.hash, actor="chengguan"
    )
    resolved = event(
        A, 5, "case.resolved", RESOLVED, "2026-09-28T06:10:01+00:00", replied.hash, actor="system"
    )
    closed = event(A, 6, "case.closed", CLOSED_DATA, "2026-09-29T02:00:00+00:00", resolved.hash, v=2)
    return [opened, classified, requested, replied, resolved, closed]


def assert_closed_case(track: CaseReplay, events: list[Stored]) -> None:
    s = track.state
    assert s.case_id == A
    assert s.seq == 6
    assert s.head_hash == events[5].hash
    assert s.state == CLOSED == "closed"
    assert s.opened_at == utc(2026, 9, 28, 1, 30)
    assert s.last_event_at == utc(2026, 9, 29, 2, 0)
    assert s.category == "cannot"
    assert s.mode == "coordinate"
    assert s.owner == "w-zhang"
    assert s.duty_leader == "l-wang"
    assert s.working_days == 1
    assert s.due_date == date(2026, 9, 29)
    assert s.overdue is False
    assert s.intake["matter"] == "shop_sign"
    assert s.intake["applicant"]["id_number"] == "92210603MA0KC8QX2K"
    assert s.coordinations == {
        "REQ-DD-20260928-0001-chengguan": Coordination(
            request_id="REQ-DD-20260928-0001-chengguan",
            department="chengguan",
            round=1,
            question="二樓外立面可否設置門頭招牌？",
            deadline=date(2026, 9, 29),
            status="answered",
            attempts=2,
            outcome="cannot",
            message="臨街建築二樓及以上不得設置門頭招牌。",
            legal_basis="《城市市容和環境衛生管理條例》第十一條",
            rerouted_from=None,
            requested_at=utc(2026, 9, 28, 1, 45, 1),
            last_reason=None,
        )
    }
    assert s.departments == ["chengguan"]
    assert s.resolution == {
        "outcome": "cannot",
        "summary": "城管局答覆：依法不能設置，可改設一樓招牌。",
        "departments": ["chengguan"],
    }
    assert s.closing == {
        "outcome": "cannot",
        "explanation": "已向申請人說明法規依據，建議改設一樓招牌。",
        "closed_by": "w-zhang",
        "on_time": True,
        "at": "2026-09-29T02:00:00+00:00",
    }
    assert s.evaluation is None
    # the replayer's own bookkeeping
    assert track.events == 6
    assert track.first_at == utc(2026, 9, 28, 1, 30)
    assert track.last_at == utc(2026, 9, 29, 2, 0)
    assert track.frozen is False
    assert track.stopped is None


def test_a_scripted_case_replays_to_the_closed_state_written_out_by_hand():
    events = scripted_case()
    r = replayer(events, heads={A: head(events[5], 6)})
    report = r.finish()
    assert found(r) == []
    assert report.ok
    track = report.cases[A]
    assert_closed_case(track, events)
    assert (track.last_seq, track.last_hash, track.last_stream_seq) == (6, events[5].hash, 6)
    assert track.head_seen == events[5].hash
    assert track.findings == 0 and track.intact
    assert track.holes is None and track.in_window
    assert report.summary() == {
        "stream": "TEST",
        "verified": True,
        "ok": True,
        "events": 6,
        "cases": 1,
        "findings": 0,
        "by_code": {},
        "heads_checked": 1,
        "first_stream_seq": 1,
        "last_stream_seq": 6,
        "seconds": 0.0,
    }


def test_the_same_case_replays_to_the_same_state_without_verification():
    events = scripted_case()
    r = replayer(events, heads={A: (1, "0" * 64, 1)}, verify=False)
    report = r.finish()
    assert report.findings == [] and report.heads_checked == 0 and not report.verified
    assert_closed_case(report.cases[A], events)
    assert report.cases[A].head_seen is None  # heads are compared only when verifying


def test_a_version_1_closing_is_upcast_and_an_envelope_without_v_is_version_1():
    events = scripted_case()[:5]
    v1 = {k: v for k, v in CLOSED_DATA.items() if k != "on_time"}
    events.append(event(A, 6, "case.closed", v1, "2026-09-29T02:00:00+00:00", events[4].hash, v=None))
    for verify in (True, False):
        r = replayer(events, verify=verify)
        r.check_heads({B})  # nothing to say about a case with no event and no head
        assert found(r) == []
        state = r.cases[A].state
        assert (state.state, state.seq, r.cases[A].stopped) == ("closed", 6, None)
        assert state.closing == {**v1, "on_time": True, "at": "2026-09-29T02:00:00+00:00"}


# --- the findings catalogue ---------------------------------------------------------------------


def test_the_catalogue_has_each_code_with_its_meaning():
    assert FINDINGS == {
        "unreadable": "the stored body is not a JSON object; nothing else can be checked",
        "not_canonical": "the stored bytes are not the canonical JSON of their content (edited after sealing)",
        "hash_mismatch": "the event's hash does not match its content: the event was changed",
        "schema_invalid": "the envelope or the payload does not match the event schema of its type and version",
        "subject_mismatch": "the event is stored under another case's subject than the case_id in its body",
        "seq_gap": "sequence numbers are missing in the middle of the case: events were dropped",
        "seq_repeat": "a sequence number of the case occurs twice: a forged or duplicated event",
        "seq_out_of_order": "an event is stored after a later event of the same case: events were reordered",
        "prev_hash_mismatch": "the event's prev_hash is not the hash of the case's previous event: the chain is broken",
        "duplicate_event_id": "the same event id occurs in more than one stored event",
        "head_missing": "the broker recorded no head for a case that has events in the stream",
        "head_mismatch": "the head the broker recorded outside the stream differs from the stream at that seq",
        "tail_missing": "the stream ends before the head the broker recorded: the case's tail was cut off",
        "untracked_tail": "the stream has events after the head the broker recorded outside the stream",
    }


def test_a_finding_prints_where_it_is_and_what():
    assert (
        str(Finding("seq_gap", A, 4, 17, "seq 4 missing"))
        == f"seq_gap: case {A} seq 4 (stream seq 17): seq 4 missing"
    )
    assert str(Finding("seq_gap", A, 4, None, "m")) == f"seq_gap: case {A} seq 4: m"
    assert str(Finding("head_missing", A, None, None, "m")) == f"head_missing: case {A}: m"
    assert str(Finding("unreadable", None, None, 7, "m")) == "unreadable: stream (stream seq 7): m"
    assert str(Finding("unreadable", "", 0, 0, "m")) == "unreadable: stream seq 0 (stream seq 0): m"


def test_a_finding_as_a_dict_names_every_part():
    assert Finding("seq_repeat", A, 2, 9, "again").to_dict() == {
        "code": "seq_repeat",
        "case_id": A,
        "seq": 2,
        "stream_seq": 9,
        "message": "again",
    }
    assert Finding("unreadable", None, None, None, "m").to_dict() == {
        "code": "unreadable",
        "case_id": None,
        "seq": None,
        "stream_seq": None,
        "message": "m",
    }


def test_findings_sort_by_case_then_seq_then_stream_seq_then_catalogue_order():
    assert finding_order(Finding("seq_gap", A, 4, 17, "")) == (A, 4, 17, 5)
    assert finding_order(Finding("unreadable", None, None, None, "")) == ("", -1, 0, 0)
    assert finding_order(Finding("no_such_code", B, 0, 3, "")) == (B, 0, 3, 99)
    findings = [
        Finding("prev_hash_mismatch", A, 3, 5, ""),
        Finding("seq_out_of_order", A, 3, 5, ""),
        Finding("head_missing", A, 3, None, ""),
        Finding("seq_gap", A, None, 9, ""),
        Finding("seq_gap", A, 1, 9, ""),
        Finding("unreadable", None, None, 1, ""),
        Finding("hash_mismatch", B, 1, 2, ""),
        Finding("not_canonical", A, 3, 4, ""),
    ]
    ordered = sorted(findings, key=finding_order)
    assert [(f.code, f.case_id, f.seq, f.stream_seq) for f in ordered] == [
        ("unreadable", None, None, 1),
        ("seq_gap", A, None, 9),
        ("seq_gap", A, 1, 9),
        ("head_missing", A, 3, None),
        ("not_canonical", A, 3, 4),
        ("seq_out_of_order", A, 3, 5),
        ("prev_hash_mismatch", A, 3, 5),
        ("hash_mismatch", B, 1, 2),
    ]


# --- per-event findings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\xff\xfe", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        (b"{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (b"[1, 2]", "list"),
        (b"null", "NoneType"),
        (b'"text"', "str"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_unreadable_and_counted(body, why):
    r = Replayer("TEST", verify=True, subject_prefix=PREFIX)
    r.feed(f"{PREFIX}.{A}", 7, body)
    report = r.finish()
    assert found(r) == [("unreadable", A, None, 7, f"body on {PREFIX}.{A} is not a JSON object ({why})")]
    assert (report.events, report.first_stream_seq, report.last_stream_seq) == (1, 7, 7)
    assert report.cases == {}  # nothing to fold, no case to check a head for


def test_an_unreadable_body_on_a_subject_without_a_case_token_is_a_finding_of_the_stream():
    r = Replayer("TEST", verify=True)
    r.feed("unstuck.case.", 3, b"garbage")
    r.finish()
    assert found(r) == [
        (
            "unreadable",
            None,
            None,
            3,
            "body on unstuck.case. is not a JSON object (Expecting value: line 1 column 1 (char 0))",
        )
    ]
    assert str(r.report.findings[0]).startswith("unreadable: stream (stream seq 3): body on unstuck.case.")


def test_without_verification_an_unreadable_body_is_counted_but_no_finding():
    r = Replayer("TEST", verify=False)
    r.feed(f"{PREFIX}.{A}", 1, b"\x00")
    assert r.finish().events == 1
    assert found(r) == []


def test_the_case_filter_skips_other_cases_readable_or_not():
    a, b = warnings(A, 1)[0], warnings(B, 1)[0]
    r = Replayer("TEST", verify=True, subject_prefix=PREFIX, case_id=A)
    r.feed(f"{PREFIX}.{B}", 1, b"not json")
    r.feed(f"{PREFIX}.{B}", 2, b.body)
    r.feed(f"{PREFIX}.{A}", 3, a.body)
    r.feed(f"{PREFIX}.{A}", 4, b"not json")
    report = r.finish()
    assert report.events == 2
    assert list(report.cases) == [A]
    assert (report.first_stream_seq, report.last_stream_seq) == (1, 4)
    assert report.case_filter == A
    assert found(r) == [
        (
            "unreadable",
            A,
            None,
            4,
            f"body on {PREFIX}.{A} is not a JSON object (Expecting value: line 1 column 1 (char 0))",
        ),
        ("head_missing", A, 1, None, "no head recorded outside the stream for a case with 1 event(s)"),
    ]
    assert report.heads_checked == 0


def test_with_a_case_filter_another_cases_event_under_the_cases_subject_is_a_subject_mismatch():
    a = warnings(A, 1)[0]
    b = warnings(B, 2)
    r = Replayer("TEST", verify=True, subject_prefix=PREFIX, heads={A: head(a)}, case_id=A)
    r.feed(f"{PREFIX}.{A}", 1, a.body)
    r.feed(f"{PREFIX}.{A}", 2, b[1].body)  # B's seq 2 under A's subject: part of what A's record holds
    r.feed(f"{PREFIX}.{A}", 3, changed(b[0], seq="1").body)
    r.feed(f"{PREFIX}.{C}", 4, b[0].body)  # elsewhere: not about A
    report = r.finish()
    assert found(r) == [
        ("subject_mismatch", B, None, 3, f"stored on {PREFIX}.{A}, but the body belongs to case {B}"),
        ("subject_mismatch", B, 2, 2, f"stored on {PREFIX}.{A}, but the body belongs to case {B}"),
    ]
    assert (report.events, list(report.cases), report.cases[A].findings) == (1, [A], 0)
    # replaying without verification only skips it
    r = Replayer("TEST", verify=False, subject_prefix=PREFIX, case_id=A)
    r.feed(f"{PREFIX}.{A}", 2, b[1].body)
    assert (found(r), r.report.events) == ([], 0)


def test_stored_bytes_that_are_not_canonical_are_a_finding_and_stop_the_state():
    events = warnings(A, 3)
    spaced = json.dumps(events[1].fields, ensure_ascii=False).encode()  # same content, other bytes
    r = replayer([events[0]], heads={A: head(events[2])})
    r.feed(f"{PREFIX}.{A}", 2, spaced)
    r.feed(f"{PREFIX}.{A}", 3, events[2].body)
    r.finish()
    assert found(r) == [
        ("not_canonical", A, 2, 2, "stored bytes are not canonical JSON (sorted keys, no spaces, UTF-8)")
    ]
    track = r.cases[A]
    assert (track.state.seq, track.frozen, track.stopped, track.findings) == (
        1,
        True,
        "record broken at seq 2",
        1,
    )
    assert not track.intact


def test_content_changed_after_sealing_is_a_hash_mismatch():
    events = warnings(A, 2)
    fields = {**events[1].fields, "data": {"due_date": "2026-10-09", "working_days_left": 9}}
    forged = canonical_json(fields)
    r = replayer([events[0]], heads={A: head(events[1])})
    r.feed(f"{PREFIX}.{A}", 2, forged)
    r.finish()
    assert found(r) == [
        ("hash_mismatch", A, 2, 2, f"stored hash {events[1].hash[:12]}… does not match the event's content")
    ]
    assert r.cases[A].stopped == "record broken at seq 2"


def test_an_event_without_a_hash_is_a_hash_mismatch_and_schema_invalid():
    fields = {k: v for k, v in warnings(A, 1)[0].fields.items() if k != "hash"}
    r = Replayer("TEST", verify=True, subject_prefix=PREFIX)
    r.feed(f"{PREFIX}.{A}", 1, canonical_json(fields))
    r.finish()
    assert found(r) == [
        ("head_missing", A, 1, None, "no head recorded outside the stream for a case with 1 event(s)"),
        ("hash_mismatch", A, 1, 1, "stored hash None… does not match the event's content"),
        ("schema_invalid", A, 1, 1, "missing field(s) hash"),
    ]


def test_an_event_stored_on_another_cases_subject_is_a_subject_mismatch_but_still_folds():
    a = warnings(A, 2)
    r = Replayer("TEST", verify=True, subject_prefix=PREFIX, heads={A: head(a[1])})
    r.feed(f"{PREFIX}.{A}", 1, a[0].body)
    r.feed(f"{PREFIX}.{B}", 2, a[1].body)
    r.finish()
    assert found(r) == [
        ("subject_mismatch", A, 2, 2, f"stored on {PREFIX}.{B}, but the body belongs to case {A}")
    ]
    track = r.cases[A]
    assert list(r.cases) == [A]  # the body says which case it is
    assert (track.state.seq, track.frozen, track.findings) == (2, False, 1)


def test_a_copy_under_another_prefix_is_a_subject_mismatch_for_every_event():
    a = warnings(A, 1)[0]
    r = Replayer("TEST", verify=True, subject_prefix=PREFIX, heads={A: head(a)})
    r.feed(f"copy.case.{A}", 1, a.body)
    r.finish()
    assert found(r) == [
        ("subject_mismatch", A, 1, 1, f"stored on copy.case.{A}, but the body belongs to case {A}")
    ]
    # without a known prefix only the last token is compared
    r = Replayer("TEST", verify=True, heads={A: head(a)})
    r.feed(f"copy.case.{A}", 1, a.body)
    r.feed(f"copy.case.{B}", 2, warnings(B, 1)[0].body)
    r.feed(f"copy.case.{A}", 3, warnings(C, 1)[0].body)
    r.finish()
    assert [(f.code, f.case_id, f.stream_seq) for f in r.report.findings] == [
        ("head_missing", B, None),
        ("head_missing", C, None),
        ("subject_mismatch", C, 3),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"actor": "w zhang"}, "actor 'w zhang' is not valid"),
        ({"type": "case.no_such_thing"}, "type 'case.no_such_thing' is not a known event type"),
        (
            {"data": {"due_date": "2026-10-09", "working_days_left": -1}},
            "case.deadline_warned v1 data.working_days_left: Input should be greater than or equal to 0",
        ),
        ({"v": 9}, "case.deadline_warned v9 is newer than this code knows (v1): upgrade unstuck"),
        ({"at": "2026-09-28T01:00:00"}, "at '2026-09-28T01:00:00' has no time zone"),
    ],
)
def test_an_event_that_does_not_match_its_schema_is_schema_invalid_and_stops_the_state(change, message):
    events = warnings(A, 2)
    bad = changed(events[1], **change)
    r = replayer([events[0], bad], heads={A: head(bad)})
    r.finish()
    assert found(r) == [("schema_invalid", A, 2, 2, message)]
    assert (r.cases[A].state.seq, r.cases[A].stopped) == (1, "record broken at seq 2")


def test_a_version_1_closing_without_v_is_valid_but_a_version_2_closing_needs_on_time():
    events = scripted_case()[:5]
    v1 = {k: v for k, v in CLOSED_DATA.items() if k != "on_time"}
    closed = event(A, 6, "case.closed", v1, "2026-09-29T02:00:00+00:00", events[4].hash, v=2)
    r = replayer([*events, closed], heads={A: head(closed)})
    r.finish()
    assert found(r) == [("schema_invalid", A, 6, 6, "case.closed v2 data.on_time: Field required")]


def test_a_case_id_that_is_not_a_string_is_taken_from_the_subject():
    e = changed(warnings(A, 1)[0], case_id=5)
    r = Replayer("TEST", verify=True, subject_prefix=PREFIX)
    r.feed(f"{PREFIX}.{A}", 1, e.body)
    r.feed(f"{PREFIX}.{B}", 2, changed(warnings(B, 1)[0], case_id="").body)
    r.finish()
    assert sorted(r.cases) == [A, B]
    assert [
        (f.code, f.case_id, f.seq, f.stream_seq, f.message)
        for f in r.report.findings
        if f.code == "schema_invalid"
    ] == [
        ("schema_invalid", A, 1, 1, "case_id 5 is not valid"),
        ("schema_invalid", B, 1, 2, "case_id '' is not valid"),
    ]


def test_an_event_whose_seq_is_not_an_integer_is_checked_but_not_folded_or_chained():
    events = warnings(A, 2)
    bad = changed(events[1], seq="2")
    r = replayer([events[0], bad], heads={A: head(events[0])})
    r.finish()
    assert found(r) == [("schema_invalid", A, None, 2, "seq '2' is not a positive integer")]
    track = r.cases[A]
    assert (track.events, track.last_seq, track.state.seq, track.frozen) == (2, 1, 1, False)


# --- the chain of a case --------------------------------------------------------------------------


def test_a_dropped_event_is_a_gap_reported_at_the_first_missing_seq():
    events = warnings(A, 6)
    stored = [events[0], events[1], events[4], events[5]]  # 3 and 4 dropped
    r = replayer(stored, heads={A: head(events[5], 4)})
    r.finish()
    assert found(r) == [("seq_gap", A, 3, None, "seq 3-4 missing: no stored event between seq 2 and seq 5")]
    track = r.cases[A]
    assert track.holes == [[3, 4]]
    assert track.edge_hash == {2: events[1].hash, 5: events[4].hash}
    assert track.edge_prev == {5: events[3].hash}
    assert (track.last_seq, track.last_hash, track.head_seen) == (6, events[5].hash, events[5].hash)
    assert (track.state.seq, track.stopped) == (2, "record broken at seq 5")


def test_a_case_that_starts_after_seq_1_has_a_gap_from_seq_1():
    events = warnings(A, 3)
    r = replayer([events[2]], heads={A: head(events[2])})
    r.finish()
    assert found(r) == [("seq_gap", A, 1, None, "seq 1-2 missing: no stored event between seq 0 and seq 3")]
    track = r.cases[A]
    assert (track.holes, track.edge_hash, track.edge_prev) == (
        [[1, 2]],
        {3: events[2].hash},
        {3: events[1].hash},
    )
    assert (track.state.seq, track.frozen, track.stopped) == (0, True, "record broken at seq 3")


def test_two_single_gaps_are_two_findings_in_seq_order():
    events = warnings(A, 5)
    r = replayer([events[0], events[2], events[4]], heads={A: head(events[4])})
    r.finish()
    assert found(r) == [
        ("seq_gap", A, 2, None, "seq 2 missing: no stored event between seq 1 and seq 3"),
        ("seq_gap", A, 4, None, "seq 4 missing: no stored event between seq 3 and seq 5"),
    ]
    assert r.cases[A].findings == 2
    assert r.report.counts() == {"seq_gap": 2}


def test_a_late_event_in_the_middle_of_a_hole_splits_it_in_two():
    events = warnings(A, 6)
    r = replayer([events[0], events[5], events[2]], heads={A: head(events[5])})
    r.finish()
    assert found(r) == [
        ("seq_gap", A, 2, None, "seq 2 missing: no stored event between seq 1 and seq 3"),
        ("seq_out_of_order", A, 3, 3, "seq 3 is stored after seq 6 of the same case"),
        ("seq_gap", A, 4, None, "seq 4-5 missing: no stored event between seq 3 and seq 6"),
    ]
    assert r.cases[A].holes == [[2, 2], [4, 5]]


def test_late_events_filling_a_hole_from_both_ends_leave_the_middle_as_a_gap():
    events = warnings(A, 5)
    r = replayer([events[0], events[4], events[1], events[3]], heads={A: head(events[4])})
    r.finish()
    assert found(r) == [
        ("seq_out_of_order", A, 2, 3, "seq 2 is stored after seq 5 of the same case"),
        ("seq_gap", A, 3, None, "seq 3 missing: no stored event between seq 2 and seq 4"),
        ("seq_out_of_order", A, 4, 4, "seq 4 is stored after seq 5 of the same case"),
    ]
    assert r.cases[A].holes == [[3, 3]]


def test_reordered_events_that_still_link_are_out_of_order_only():
    events = warnings(A, 4)
    r = replayer([events[0], events[3], events[1], events[2]], heads={A: head(events[3])})
    r.finish()
    assert found(r) == [
        ("seq_out_of_order", A, 2, 3, "seq 2 is stored after seq 4 of the same case"),
        ("seq_out_of_order", A, 3, 4, "seq 3 is stored after seq 4 of the same case"),
    ]
    track = r.cases[A]
    assert track.holes == []
    assert track.edge_hash == {1: events[0].hash, 2: events[1].hash, 3: events[2].hash, 4: events[3].hash}
    assert track.edge_prev == {2: events[0].hash, 3: events[1].hash, 4: events[2].hash}
    assert track.head_seen == events[3].hash
    assert (track.state.seq, track.stopped) == (1, "record broken at seq 4")


def test_a_late_first_event_must_have_an_empty_prev_hash():
    events = warnings(A, 2)
    first = changed(events[0], prev_hash="a" * 64)
    r = replayer([events[1], first], heads={A: head(events[1])})
    r.finish()
    assert found(r) == [
        ("seq_out_of_order", A, 1, 2, "seq 1 is stored after seq 2 of the same case"),
        ("prev_hash_mismatch", A, 1, 2, "prev_hash aaaaaaaaaaaa… is not the hash of seq 0"),
        (
            "prev_hash_mismatch",
            A,
            2,
            None,
            f"prev_hash {events[0].hash[:12]}… is not the hash {first.hash[:12]}… of seq 1",
        ),
    ]


def test_a_late_first_event_with_an_empty_prev_hash_links_to_nothing_and_is_only_out_of_order():
    events = warnings(A, 2)
    r = replayer([events[1], events[0]], heads={A: head(events[1])})
    r.finish()
    assert found(r) == [("seq_out_of_order", A, 1, 2, "seq 1 is stored after seq 2 of the same case")]


def test_a_late_forged_event_breaks_the_links_on_both_sides_and_the_next_late_one():
    events = warnings(A, 5)
    forged = changed(events[2], prev_hash="b" * 64)  # seq 3, re-hashed, linked to nothing
    r = replayer([events[0], events[4], events[1], forged, events[3]], heads={A: head(events[4])})
    r.finish()
    assert found(r) == [
        ("seq_out_of_order", A, 2, 3, "seq 2 is stored after seq 5 of the same case"),
        ("seq_out_of_order", A, 3, 4, "seq 3 is stored after seq 5 of the same case"),
        ("prev_hash_mismatch", A, 3, 4, "prev_hash bbbbbbbbbbbb… is not the hash of seq 2"),
        ("seq_out_of_order", A, 4, 5, "seq 4 is stored after seq 5 of the same case"),
        ("prev_hash_mismatch", A, 4, 5, f"prev_hash {events[2].hash[:12]}… is not the hash of seq 3"),
    ]
    assert r.cases[A].edge_hash[3] == forged.hash
    assert r.cases[A].edge_prev[3] == "b" * 64


def test_a_first_event_with_a_prev_hash_is_a_broken_link():
    events = warnings(A, 1)
    first = changed(events[0], prev_hash="c" * 64)
    r = replayer([first], heads={A: head(first)})
    r.finish()
    assert found(r) == [("prev_hash_mismatch", A, 1, 1, "the first event must have an empty prev_hash")]
    assert r.cases[A].stopped == "record broken at seq 1"


def test_an_event_linked_to_the_wrong_previous_hash_is_a_broken_link_and_the_chain_goes_on_from_it():
    events = warnings(A, 3)
    middle = changed(events[1], prev_hash="d" * 64)
    last = changed(events[2], prev_hash=middle.hash)
    r = replayer([events[0], middle, last], heads={A: head(last)})
    r.finish()
    assert found(r) == [
        (
            "prev_hash_mismatch",
            A,
            2,
            2,
            f"prev_hash dddddddddddd… is not the hash {events[0].hash[:12]}… of seq 1",
        )
    ]
    track = r.cases[A]
    assert (track.last_seq, track.last_hash) == (3, last.hash)
    assert (track.state.seq, track.stopped) == (1, "record broken at seq 2")


def test_an_event_stored_twice_is_a_repeat_and_a_duplicate_id_and_stops_the_state():
    events = warnings(A, 3)
    r = replayer([events[0], events[1], events[2], events[1]], heads={A: head(events[2])})
    assert r.duplicate_candidates() == [[2, 4]]
    eid = events[1].fields["event_id"]
    r.finish([[(2, eid, A, 2), (4, eid, A, 2)]])
    assert found(r) == [
        ("seq_repeat", A, 2, 4, f"seq 2 of case {A} is stored again (the case is at seq 3)"),
        (
            "duplicate_event_id",
            A,
            2,
            4,
            f"event id {eid} was already stored at stream seq 2 (case {A} seq 2)",
        ),
    ]
    track = r.cases[A]
    assert track.findings == 2
    assert (track.state.seq, track.frozen, track.stopped) == (3, True, "record broken at seq 2")
    assert r.report.counts() == {"seq_repeat": 1, "duplicate_event_id": 1}


def test_a_forged_event_at_a_seq_already_taken_is_a_repeat():
    events = warnings(A, 2)
    forged = changed(events[0], event_id="EV-FORGED-00000001")
    r = replayer([events[0], events[1], forged], heads={A: head(events[1])})
    r.finish()
    assert r.duplicate_candidates() == []
    assert found(r) == [("seq_repeat", A, 1, 3, f"seq 1 of case {A} is stored again (the case is at seq 2)")]


def test_an_event_id_reused_in_another_case_is_a_duplicate_at_the_later_copy():
    a = warnings(A, 2)
    b = changed(warnings(B, 1)[0], event_id=a[0].fields["event_id"])
    c = warnings(C, 1)[0]
    r = replayer([a[0], a[1], c, b], heads={A: head(a[1]), B: head(b), C: head(c)})
    assert r.duplicate_candidates() == [[1, 4]]
    eid = a[0].fields["event_id"]
    r.finish([[(1, eid, A, 1), (4, eid, B, 1)]])
    assert found(r) == [
        ("duplicate_event_id", B, 1, 4, f"event id {eid} was already stored at stream seq 1 (case {A} seq 1)")
    ]
    assert (r.cases[A].findings, r.cases[B].findings, r.cases[C].findings) == (0, 1, 0)


def test_three_copies_of_an_id_are_one_candidate_group_and_two_findings():
    a = warnings(A, 1)[0]
    copies = [changed(warnings(case, 1)[0], event_id=a.fields["event_id"]) for case in (B, C)]
    r = replayer([a, *copies], heads={A: head(a), B: head(copies[0]), C: head(copies[1])})
    assert r.duplicate_candidates() == [[1, 2, 3]]
    eid = a.fields["event_id"]
    r.finish([[(1, eid, A, 1), (2, eid, B, 1), (3, eid, C, None)]])
    assert found(r) == [
        (
            "duplicate_event_id",
            B,
            1,
            2,
            f"event id {eid} was already stored at stream seq 1 (case {A} seq 1)",
        ),
        (
            "duplicate_event_id",
            C,
            None,
            3,
            f"event id {eid} was already stored at stream seq 1 (case {A} seq 1)",
        ),
    ]


def test_among_many_event_ids_only_the_reused_ones_are_candidates():
    events = warnings(A, 1500)
    again = changed(warnings(B, 1)[0], event_id=events[700].fields["event_id"])
    other = warnings(C, 1)[0]
    twice = changed(warnings(C, 2)[1], event_id=other.fields["event_id"], prev_hash=other.hash)
    r = replayer([*events, again, other, twice])
    assert sorted(r.duplicate_candidates()) == [[701, 1501], [1502, 1503]]
    # ids that are not strings are not indexed (the envelope check reports them)
    r = Replayer("TEST", verify=True)
    for sseq in (1, 2):
        r.feed(f"{PREFIX}.{A}", sseq, canonical_json({"event_id": 12345, "case_id": A}))
    assert r.duplicate_candidates() == []


def test_the_duplicate_index_holds_any_jetstream_sequence_up_to_2_to_the_64th_minus_1():
    a = warnings(A, 1)[0]
    again = changed(warnings(B, 1)[0], event_id=a.fields["event_id"])
    r = Replayer("TEST", verify=True, subject_prefix=PREFIX)
    r.feed(f"{PREFIX}.{A}", 2**64 - 2, a.body)
    r.feed(f"{PREFIX}.{B}", 2**64 - 1, again.body)
    assert r.duplicate_candidates() == [[2**64 - 2, 2**64 - 1]]
    assert (r.report.first_stream_seq, r.report.last_stream_seq) == (2**64 - 2, 2**64 - 1)


# --- recorded heads -------------------------------------------------------------------------------


def test_a_case_without_a_recorded_head_is_head_missing_at_its_last_seq():
    events = warnings(A, 3)
    r = replayer(events)
    r.finish()
    assert found(r) == [
        ("head_missing", A, 3, None, "no head recorded outside the stream for a case with 3 event(s)")
    ]
    assert (r.report.heads_checked, r.cases[A].findings) == (0, 1)


def test_a_recorded_head_with_another_hash_is_head_mismatch():
    events = warnings(A, 3)
    r = replayer(events, heads={A: {"seq": 3, "hash": "f" * 64, "stream_seq": 3}})
    r.finish()
    assert found(r) == [
        (
            "head_mismatch",
            A,
            3,
            None,
            f"the broker recorded hash ffffffffffff… at seq 3; the stream has {events[2].hash[:12]}…",
        )
    ]
    assert r.report.heads_checked == 1


def test_a_head_at_a_seq_the_stream_does_not_hold_is_a_mismatch_with_none_seen():
    events = warnings(A, 3)
    r = replayer([events[0], events[2]], heads={A: (2, events[1].hash, 2)})
    r.finish()
    assert found(r) == [
        ("seq_gap", A, 2, None, "seq 2 missing: no stored event between seq 1 and seq 3"),
        (
            "head_mismatch",
            A,
            2,
            None,
            f"the broker recorded hash {events[1].hash[:12]}… at seq 2; the stream has none…",
        ),
    ]


def test_the_head_is_compared_with_the_event_at_its_seq_not_with_an_earlier_one():
    events = warnings(A, 3)
    r = replayer(events, heads={A: head(events[1])})
    r.finish()
    assert r.cases[A].head_seen == events[1].hash
    assert found(r) == [
        ("untracked_tail", A, 3, None, "the stream has seq 3-3 after the recorded head seq 2")
    ]


def test_a_stream_cut_before_the_recorded_head_is_tail_missing():
    events = warnings(A, 5)
    r = replayer(events[:3], heads={A: head(events[4], 5)})
    r.finish()
    assert found(r) == [
        (
            "tail_missing",
            A,
            4,
            None,
            "the broker recorded head seq 5, but the stream holds seq 1-3: seq 4-5 cut off",
        )
    ]


def test_a_recorded_head_for_a_case_with_no_event_is_tail_missing_from_seq_1():
    r = Replayer(
        "TEST", verify=True, subject_prefix=PREFIX, heads={C: {"seq": 2, "hash": "e" * 64, "stream_seq": 9}}
    )
    report = r.finish()
    assert found(r) == [
        (
            "tail_missing",
            C,
            1,
            None,
            "the broker recorded head seq 2, but the stream holds no event of this case: seq 1-2 cut off",
        )
    ]
    assert (report.heads_checked, report.events, report.cases) == (1, 0, {})


def test_events_after_the_recorded_head_are_an_untracked_tail():
    events = warnings(A, 4)
    r = replayer(events, heads={A: head(events[1], 2)})
    r.finish()
    assert found(r) == [
        ("untracked_tail", A, 3, None, "the stream has seq 3-4 after the recorded head seq 2")
    ]


def test_heads_are_checked_for_the_named_cases_only():
    a, b, c = warnings(A, 2), warnings(B, 1), warnings(C, 1)
    r = replayer([*a, *b, *c], heads={A: head(a[0]), B: head(b[0])})
    r.check_heads({A, C})
    assert found(r) == [
        ("untracked_tail", A, 2, None, "the stream has seq 2-2 after the recorded head seq 1"),
        ("head_missing", C, 1, None, "no head recorded outside the stream for a case with 1 event(s)"),
    ]
    assert r.report.heads_checked == 1
    r.check_heads(set())
    assert r.report.heads_checked == 0


def test_with_a_case_filter_only_that_cases_head_is_checked():
    a = warnings(A, 1)
    r = Replayer(
        "TEST", verify=True, subject_prefix=PREFIX, heads={A: head(a[0]), B: (3, "1" * 64, 3)}, case_id=A
    )
    r.feed(f"{PREFIX}.{A}", 1, a[0].body)
    report = r.finish()
    assert found(r) == []
    assert report.heads_checked == 1
    r.check_heads({A, B})  # B's recorded head is outside the case asked for
    assert found(r) == []
    assert report.heads_checked == 1


def test_recorded_heads_are_kept_compactly_and_unreadable_ones_say_so():
    assert compact_head((3, "ab", 7)) == (3, "ab", 7)
    assert compact_head({"seq": "3", "hash": "ab", "stream_seq": "7"}) == (3, "ab", 7)
    assert compact_head({}) == (-1, "", 0)
    assert compact_head({"seq": "three"}) == (-1, "unreadable head value {'seq': 'three'}", 0)
    assert compact_head({"seq": None, "hash": "0123456789abcdef0123456789"}) == (
        -1,
        "unreadable head value {'seq': None, 'hash': '0123456789abcdef0",
        0,
    )
    r = Replayer(heads={A: {"seq": 2, "hash": "ab", "stream_seq": 5}, B: (1, "cd", 2)})
    assert r.heads == {A: (2, "ab", 5), B: (1, "cd", 2)}
    digest = "0123456789abcdef" * 4
    book = HeadBook({A: {"seq": 7, "hash": digest, "stream_seq": 2**64 - 1}, B: (-1, "unreadable", 0)})
    assert book == {A: (7, digest, 2**64 - 1), B: (-1, "unreadable", 0)}
    assert (book.seq_of(A), book.seq_of(B), book.seq_of(C)) == (7, -1, None)
    assert [type(v) for v in book._heads.values()] == [bytes, tuple]  # 48 bytes, or as it came
    assert [dict(part) for part in book.split(lambda c: c == B, 2)] == [
        {A: (7, digest, 2**64 - 1)},
        {B: (-1, "unreadable", 0)},
    ]
    book.drop(A)
    assert list(book) == [B] and len(book) == 1 and A not in book


def test_an_unreadable_recorded_head_is_a_head_finding():
    events = warnings(A, 1)
    r = replayer(events, heads={A: {"seq": "x"}})
    r.finish()
    assert found(r) == [
        (
            "head_mismatch",
            A,
            -1,
            None,
            "the broker recorded hash unreadable h… at seq -1; the stream has none…",
        )
    ]


# --- windows: --since and --until ---------------------------------------------------------------


def three_cases() -> list[Stored]:
    """A: 28, 29 and 30 September; B: opened 2 October; C: 20 September only."""
    prev = ""
    a = []
    for seq, day in enumerate((28, 29, 30), start=1):
        e = event(
            A,
            seq,
            "case.deadline_warned",
            {"due_date": "2026-10-09", "working_days_left": seq},
            f"2026-09-{day}T02:00:00+00:00",
            prev,
            actor="system",
        )
        a.append(e)
        prev = e.hash
    b = event(
        B,
        1,
        "case.deadline_warned",
        {"due_date": "2026-10-09", "working_days_left": 1},
        "2026-10-02T02:00:00+00:00",
        "",
        actor="system",
    )
    c = event(
        C,
        1,
        "case.deadline_warned",
        {"due_date": "2026-10-09", "working_days_left": 1},
        "2026-09-20T02:00:00+00:00",
        "",
        actor="system",
    )
    return [c, a[0], a[1], b, a[2]]


def test_without_a_window_every_case_is_selected_in_case_order():
    r = replayer(three_cases(), verify=False)
    report = r.finish()
    assert [c.case_id for c in report.selected()] == [A, B, C]
    assert [c.state.seq for c in report.selected()] == [3, 1, 1]
    assert all(c.in_window for c in report.selected())


def test_since_selects_the_cases_with_an_event_from_that_instant_on():
    since = utc(2026, 9, 29, 2, 0)  # exactly A's second event
    r = replayer(three_cases(), verify=False, since=since)
    report = r.finish()
    assert report.since == since and report.until is None
    assert [c.case_id for c in report.selected()] == [A, B]
    assert (report.cases[A].first_at, report.cases[A].last_at) == (utc(2026, 9, 28, 2), utc(2026, 9, 30, 2))
    assert report.cases[A].state.seq == 3  # since narrows the report, not the state
    r = replayer(three_cases(), verify=False, since=utc(2026, 10, 2, 2))  # exactly B's only event
    assert [c.case_id for c in r.finish().selected()] == [B]


def test_until_gives_the_states_at_that_instant_and_the_cases_opened_by_then():
    until = utc(2026, 9, 29, 2, 0)  # exactly A's second event: it counts
    r = replayer(three_cases(), verify=False, until=until)
    report = r.finish()
    assert report.until == until and report.since is None
    assert [c.case_id for c in report.selected()] == [A, C]
    a = report.cases[A]
    assert (a.state.seq, a.frozen, a.stopped) == (2, True, "until")
    assert a.last_at == utc(2026, 9, 30, 2)
    assert report.cases[B].stopped == "until"
    r = replayer(three_cases(), verify=False, until=utc(2026, 10, 2, 2))  # exactly when B was opened
    assert [c.case_id for c in r.finish().selected()] == [A, B, C]


def test_since_and_until_together_select_the_cases_active_between_them():
    r = replayer(three_cases(), verify=False, since=utc(2026, 9, 29), until=utc(2026, 9, 29, 23))
    report = r.finish()
    assert [c.case_id for c in report.selected()] == [A]
    assert [(c.case_id, c.in_window) for c in sorted(report.cases.values(), key=lambda c: c.case_id)] == [
        (A, True),
        (B, False),
        (C, False),
    ]
    # A's only event between them is exactly at the end of the window
    r = replayer(three_cases(), verify=False, since=utc(2026, 9, 29), until=utc(2026, 9, 29, 2))
    assert [c.case_id for c in r.finish().selected()] == [A]


def test_a_case_broken_before_the_window_still_shows_activity_inside_it():
    events = warnings(A, 2, day=20)
    broken = changed(events[1], prev_hash="9" * 64)
    late = event(
        A,
        3,
        "case.deadline_warned",
        {"due_date": "2026-10-09", "working_days_left": 3},
        "2026-10-05T01:00:00+00:00",
        broken.hash,
        actor="system",
    )
    r = replayer([events[0], broken, late], since=utc(2026, 10, 1))
    report = r.finish()
    a = report.cases[A]
    assert (a.state.seq, a.stopped, a.in_window) == (1, "record broken at seq 2", True)
    assert [c.case_id for c in report.selected()] == [A]
    r = replayer([events[0], broken, late], until=utc(2026, 10, 1))
    report = r.finish()
    a = report.cases[A]
    assert (a.first_at, a.last_at) == (utc(2026, 9, 20, 1), utc(2026, 10, 5, 1))
    assert (a.stopped, a.in_window) == ("record broken at seq 2", True)


def test_an_until_window_does_not_select_a_case_whose_times_cannot_be_read():
    naive = changed(warnings(A, 1)[0], at="2026-09-28T01:00:00")
    r = replayer([naive], verify=False, until=utc(2026, 12, 31))
    report = r.finish()
    assert report.selected() == []
    assert report.cases[A].first_at is None
    assert report.cases[A].stopped == "record broken at seq 1"


# --- replay without verification ----------------------------------------------------------------


def test_without_verification_a_repeated_event_is_skipped_as_the_broker_does():
    events = warnings(A, 3)
    r = replayer([events[0], events[1], events[1], events[2]], verify=False)
    report = r.finish()
    a = report.cases[A]
    assert (a.state.seq, a.frozen, a.stopped, a.events) == (3, False, None, 4)
    assert report.findings == []


def test_without_verification_a_gap_or_a_broken_link_stops_the_state():
    events = warnings(A, 4)
    r = replayer([events[0], events[2], events[3]], verify=False)
    assert (r.cases[A].state.seq, r.cases[A].stopped) == (1, "record broken at seq 3")
    assert isinstance(r.cases[A].last_at, datetime)
    r = replayer([events[0], changed(events[1], prev_hash="7" * 64)], verify=False)
    assert (r.cases[A].state.seq, r.cases[A].stopped) == (1, "record broken at seq 2")


@pytest.mark.parametrize(
    ("change", "stopped"),
    [
        (
            {"data": {"due_date": "2026-10-09"}},
            "seq 2: case.deadline_warned v1 data.working_days_left: Field required",
        ),
        ({"type": ["case", "deadline_warned"]}, "seq 2: unhashable type: 'list'"),
        ({"v": 9}, "seq 2: case.deadline_warned v9 is newer than this code knows (v1): upgrade unstuck"),
        ({"at": "the second of October"}, "record broken at seq 2"),
        ({"at": 20261002}, "record broken at seq 2"),
        ({"at": "2026-10-02T08:00:00"}, "record broken at seq 2"),
    ],
)
def test_without_verification_an_event_the_lifecycle_cannot_read_stops_the_state(change, stopped):
    events = warnings(A, 3)
    bad = changed(events[1], **change)
    r = replayer([events[0], bad, changed(events[2], prev_hash=bad.hash)], verify=False)
    a = r.finish().cases[A]
    assert (a.state.seq, a.frozen, a.stopped) == (1, True, stopped)


def test_without_verification_an_event_without_a_type_stops_the_state():
    events = warnings(A, 2)
    rest = {k: v for k, v in events[1].fields.items() if k not in ("type", "hash")}
    r = replayer([events[0], sealed(rest)], verify=False)
    assert r.cases[A].stopped == "seq 2: 'type'"


# --- the report ---------------------------------------------------------------------------------


def test_the_report_summary_counts_findings_by_code():
    a, b = warnings(A, 3), warnings(B, 2)
    r = replayer([a[0], a[2], b[0], b[1], b[1]], heads={B: head(b[1], 4)})
    r.feed(f"{PREFIX}.{C}", 6, b"{oops")
    report = r.finish()
    report.seconds = 1.23456
    assert report.counts() == {"seq_gap": 1, "head_missing": 1, "seq_repeat": 1, "unreadable": 1}
    assert report.summary() == {
        "stream": "TEST",
        "verified": True,
        "ok": False,
        "events": 6,
        "cases": 2,
        "findings": 4,
        "by_code": {"seq_gap": 1, "head_missing": 1, "seq_repeat": 1, "unreadable": 1},
        "heads_checked": 1,
        "first_stream_seq": 1,
        "last_stream_seq": 6,
        "seconds": 1.235,
    }
    assert [f.code for f in report.findings_of(A)] == ["seq_gap", "head_missing"]
    assert [f.code for f in report.findings_of(B)] == ["seq_repeat"]
    assert report.findings_of("DD-20260928-0009") == []
    assert (report.cases[A].findings, report.cases[B].findings) == (2, 1)
    assert not report.ok


def test_a_new_report_is_empty_and_ok():
    report = Report("UNSTUCK_CASES", verified=False)
    assert report.ok and report.counts() == {} and report.selected() == []
    r = Replayer()
    assert (r.report.stream, r.report.verified, r.report.subject_prefix) == ("UNSTUCK_CASES", False, None)
    r = Replayer("S", True, "p.q", None, utc(2026, 1, 1), utc(2026, 2, 1), A)
    assert (r.report.stream, r.report.verified, r.report.subject_prefix, r.report.case_filter) == (
        "S",
        True,
        "p.q",
        A,
    )
    assert (r.report.since, r.report.until) == (utc(2026, 1, 1), utc(2026, 2, 1))
    assert r.cases is r.report.cases
    assert r.heads == {}


def test_the_first_and_last_stream_seqs_are_those_of_the_messages_read():
    events = warnings(A, 2)
    r = Replayer("TEST")
    r.feed(f"{PREFIX}.{A}", 41, events[0].body)
    r.feed(f"{PREFIX}.{A}", 45, events[1].body)
    report = r.finish()
    assert (report.first_stream_seq, report.last_stream_seq, report.events) == (41, 45, 2)
    assert report.cases[A].last_stream_seq == 45


# --- the checks on one body ---------------------------------------------------------------------


def test_the_fast_byte_check_agrees_with_the_reference_on_hand_made_bodies():
    e = warnings(A, 2)[1]
    fields = dict(e.fields)
    rest = {k: v for k, v in fields.items() if k != "hash"}
    cases = [
        (e.body, (True, True)),
        (json.dumps(fields).encode(), (False, True)),
        (canonical_json(rest), (True, False)),  # no hash at all
        (canonical_json({**fields, "hash": 5}), (True, False)),
        (canonical_json({**fields, "hash": e.hash.upper()}), (True, False)),
        (canonical_json({**fields, "hash": "a" * 64}), (True, False)),
        (canonical_json({**fields, "seq": "2"}), (True, False)),
        (sealed({**rest, "seq": "2"}).body, (True, True)),
        (sealed({**rest, "v": "1"}).body, (True, True)),
        (sealed({**rest, "type": 7}).body, (True, True)),
        (sealed({**rest, "prev_hash": None}).body, (True, True)),
        (sealed({k: v for k, v in rest.items() if k != "event_id"}).body, (True, True)),
        (sealed({**rest, "zzz": {"hash": e.hash}}).body, (True, True)),
        (canonical_json({**fields, "zzz": [1]}), (True, False)),
        (canonical_json({**fields, "data": {**fields["data"], "working_days_left": 7}}), (True, False)),
    ]
    for body, expected in cases:
        assert sealed_ok(body, json.loads(body)) == expected, body


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, None),
        ({"v": None}, None),  # an envelope without v is version 1
        ({"v": 2}, None),
        ({"seq": 1}, None),
        ({"event_id": None}, "missing field(s) event_id"),
        ({"event_id": None, "at": None, "actor": None}, "missing field(s) actor, at, event_id"),
        ({"zzz": 1, "aaa": 2}, "unknown field(s) aaa, zzz"),
        ({"at": None, "zzz": 1}, "missing field(s) at; unknown field(s) zzz"),
        ({"event_id": "short"}, "event_id 'short' is not valid"),
        ({"event_id": 1234567890123456789}, "event_id 1234567890123456789 is not valid"),
        ({"case_id": "DD.1"}, "case_id 'DD.1' is not valid"),
        ({"type": "opened"}, "type 'opened' is not valid"),
        ({"actor": "a" * 65}, f"actor {'a' * 65!r} is not valid"),
        ({"prev_hash": "xyz"}, "prev_hash 'xyz' is not valid"),
        ({"hash": "A" * 64}, f"hash {'A' * 64!r} is not valid"),
        ({"seq": 0}, "seq 0 is not a positive integer"),
        ({"seq": "1"}, "seq '1' is not a positive integer"),
        ({"seq": True}, "seq True is not a positive integer"),
        ({"v": 0}, "v 0 is not a positive integer"),
        ({"v": "1"}, "v '1' is not a positive integer"),
        ({"data": []}, "data is not an object"),
        ({"at": 5}, "at 5 is not a timestamp"),
        ({"at": "yesterday"}, "at 'yesterday' is not an ISO 8601 timestamp"),
        ({"at": "2026-09-28T09:00:00"}, "at '2026-09-28T09:00:00' has no time zone"),
    ],
)
def test_envelope_problems_name_the_field(change, expected):
    fields = dict(warnings(A, 1)[0].fields)
    for key, value in change.items():
        if value is None and key in ("v", "event_id", "at", "actor"):
            fields.pop(key)
        else:
            fields[key] = value
    assert envelope_problem(fields) == expected


# --- memory: states packed, a replay split by case --------------------------------------------------


def test_a_packed_state_unpacks_equal_to_the_state_it_was():
    closed = replayer(scripted_case()).cases[A].state
    extension = {"days": 3, "reason": "需補充材料", "until": date(2026, 10, 2)}  # dates: pickled instead
    rich = lc_replace(
        closed,
        pending_extension=extension,
        warned=frozenset({1, 3}),
        escalations={"chengguan": (2, utc(2026, 9, 28, 9, 0))},
    )
    dictionary = dictionary_of(replayer(scripted_case()[:3]).cases[A].state)  # an earlier state
    for state in (closed, rich, CaseState(case_id=B)):
        assert unpack_state(pack_state(state, dictionary), dictionary) == state
        assert unpack_state(pack_state(state), b"") == state  # without a dictionary too
    assert len(pack_state(closed, dictionary)) < 450  # some 2.5 KB as objects, 1 KB deflated alone
    assert type(unpack_state(pack_state(closed)).state) is CaseStatus


def test_states_packed_while_other_cases_are_fed_replay_to_the_same_states_and_findings():
    a = scripted_case()
    b = warnings(B, 3)
    c = warnings(C, 2, day=29)
    interleaved = [a[0], b[0], c[0], a[1], b[1], a[2], c[1], a[3], b[2], a[4], a[5]]
    heads = {A: head(a[5], 11), B: (3, b[2].hash, 9), C: (1, c[0].hash, 3)}  # C's head is behind
    roomy = replayer(interleaved, heads)
    tight = replayer(interleaved, heads, live_cases=1)  # each case packed as soon as another is fed
    assert [t.live is None for t in tight.cases.values()] == [False, True, True]  # A was fed last
    for r in (roomy, tight):
        r.finish()
    assert (
        found(tight)
        == found(roomy)
        == [
            (
                "untracked_tail",
                C,
                2,
                None,
                "the stream has seq 2-2 after the recorded head seq 1",
            )
        ]
    )
    assert_closed_case(tight.cases[A], a)
    for case_id in (A, B, C):
        assert tight.cases[case_id].state == roomy.cases[case_id].state
    assert tight.cases[B].state.warned == frozenset({1, 2, 3})


def test_a_replayer_given_buckets_replays_only_their_cases_and_counts_the_others():
    # CRC-32 of the case id, modulo 64: A (…0001) is in bucket 5, B (…0002) in bucket 63
    assert (bucket_of(A.encode()), bucket_of(B.encode())) == (5, 63)
    events = warnings(A, 2) + warnings(B, 3)
    r = replayer(events, buckets=frozenset({5}))
    r.finish()
    assert list(r.cases) == [A] and r.report.events == 2
    assert r.misrouted == 3  # B's events reached the wrong part: the split must be redone
    unreadable = Replayer("TEST", verify=True, subject_prefix=PREFIX, buckets=frozenset({5}))
    unreadable.feed(f"{PREFIX}.{B}", 1, b"not json")  # an unreadable body is its subject's case
    assert (unreadable.misrouted, unreadable.report.findings) == (1, [])


def test_a_duplicate_id_is_reported_by_the_part_that_holds_the_later_copy():
    first = warnings(A, 1)[0]
    copy = changed(warnings(B, 1)[0], event_id=first.fields["event_id"])
    duplicates = [[(1, first.fields["event_id"], A, 1), (2, first.fields["event_id"], B, 1)]]
    parts = [
        replayer([first, copy], buckets=frozenset({5})),
        replayer([first, copy], buckets=frozenset({63})),
    ]
    for part in parts:
        part.finish(duplicates)
    assert [f.code for f in parts[0].report.findings] == ["head_missing"]
    assert [(f.code, f.case_id, f.stream_seq) for f in parts[1].report.findings] == [
        ("head_missing", B, None),
        ("duplicate_event_id", B, 2),
    ]


def test_event_id_fingerprints_are_the_same_in_every_process():
    # the id's standard CRC-32 in the high half, its Adler-32 in the low half, shifted to a signed range
    assert fingerprint("01JDZ6X3E4B3N8Q3M1ZK6J2V9A") == (0x63243251 << 32 | 0x58F106A8) - (1 << 63)


def test_a_report_repr_stays_short_however_many_cases_it_holds():
    r = replayer(warnings(A, 2) + warnings(B, 2))
    assert repr(r.finish()) == "Report(stream='TEST', verified=True, events=4, cases=2, findings=2)"

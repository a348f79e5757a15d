"""A replay split by case over processes, without a server: how messages are routed to the parts,
how the buckets are shared out, when a replay is split, and how a part hands its cases over.

The split replay against a real stream, compared with one process, is in test_replay_tamper.py."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest
from test_replayer import PREFIX, A, B, C, replayer, warnings

from unstuck import cli
from unstuck.replay import parallel
from unstuck.replay.parallel import Outcome, parts_for, route, split_buckets


def test_a_message_goes_to_the_bucket_of_the_case_written_in_it():
    # CRC-32 of the case id, modulo 64: …0001 is in bucket 5, …0002 in 63, …0003 in 41
    body = warnings(A, 1)[0].body
    assert route(f"{PREFIX}.{B}", body) == 5  # the body's case, not the subject's
    assert route(f"{PREFIX}.{C}", b"not json") == 41  # no case in it: the subject's
    assert route(f"{PREFIX}.{C}", b'{"case_id":"","seq":1}') == 41  # an empty case id too
    decision = b"\n".join(e.body for e in warnings(B, 2))
    assert route(f"{PREFIX}.{B}", decision) == 63


def test_the_reading_process_verifies_a_smaller_share_of_the_buckets():
    assert split_buckets(2) == [frozenset(range(22)), frozenset(range(22, 64))]  # 0.35 of 64 is 22.4
    three = split_buckets(3)  # 0.35 of two parts' worth is 0.233 of three: 14.9, so 15 buckets
    assert three[0] == frozenset(range(15))
    assert three[1] == frozenset(range(15, 64, 2)) and three[2] == frozenset(range(16, 64, 2))
    assert split_buckets(64)[0] == frozenset({0})  # never nothing, never more than leaves one each
    for parts in (2, 3, 5):
        shares = split_buckets(parts)
        assert sorted(b for share in shares for b in share) == list(range(64))


def test_a_replay_is_split_when_asked_or_when_the_stream_is_large():
    assert parts_for(1, 10**7, 50_000) == 1
    assert parts_for(3, 10, 50_000) == 3
    assert parts_for(None, 49_999, 50_000) == 1
    assert 1 <= parts_for(None, 50_000, 50_000) <= 4


def test_a_part_hands_over_its_cases_in_batches_and_keeps_none(monkeypatch):
    monkeypatch.setattr(parallel, "CASES_PER_BATCH", 2)
    r = replayer(warnings(A, 1) + warnings(B, 2) + warnings(C, 1), heads={C: (1, "0" * 64, 4)})
    r.finish()
    receiving, sending = multiprocessing.Pipe(duplex=False)
    parallel._hand_over(r, sending)
    outcome: Outcome = receiving.recv()
    assert outcome.batches == 2 and outcome.heads_checked == 1
    assert [(f.code, f.case_id) for f in outcome.findings] == [
        ("head_missing", A),
        ("head_missing", B),
        ("head_mismatch", C),
    ]
    assert outcome.heads == {C: (1, "0" * 64, 4)}  # the recorded heads behind the head findings
    tracks = [parallel._track(v) for _ in range(2) for v in pickle.loads(receiving.recv_bytes())]
    assert sorted((t.case_id, t.events, t.last_seq) for t in tracks) == [(A, 1, 1), (B, 2, 2), (C, 1, 1)]
    assert {t.case_id: t.state.warned for t in tracks} == {
        A: frozenset({1}),
        B: frozenset({1, 2}),
        C: frozenset({1}),
    }
    assert r.cases == {}


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_must_be_a_number_of_processes(jobs, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["replay", "--jobs", jobs])
    assert exc.value.code == 2
    assert "is not a number of processes" in capsys.readouterr().err

"""The event store on JetStream: hash chain, dedup by Nats-Msg-Id, no forks, no deletes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import nats.js.errors
import pytest

from unstuck import eventstore
from unstuck import lifecycle as lc
from unstuck.canonical import canonical_json, check_body, event_hash
from unstuck.eventstore import (
    AppendConflict,
    EventStore,
    ExpectedHead,
    StoreFormatError,
    decision_body,
    envelope_fields,
    seal_decision,
)
from unstuck.heads import HeadBook
from unstuck.replay import verify_stream
from unstuck.schemas.events import CaseOverdue, OwnerAssigned
from unstuck.schemas.subjects import HEAD_LAG_SECONDS

AT = datetime(2026, 9, 28, 1, 0, tzinfo=UTC)


def owner_event(n: int) -> lc.NewEvent:
    return lc.NewEvent("w-a", OwnerAssigned(owner=f"w-{n}", previous_owner="w-a", reason="r"))


@pytest.fixture
async def store(nats_client):
    s = EventStore(nats_client.jetstream())
    await s.ensure()
    return s


async def test_stream_is_created_once_with_deny_delete_and_deny_purge(store, nats_client):
    await store.ensure()  # idempotent
    info = await nats_client.jetstream().stream_info("UNSTUCK_CASES")
    assert info.config.deny_delete and info.config.deny_purge
    assert info.config.subjects == ["unstuck.case.>"]
    with pytest.raises(nats.js.errors.APIError):
        await nats_client.jetstream().purge_stream("UNSTUCK_CASES")


async def test_a_decision_is_one_message_holding_its_events_one_per_line(store, nats_client):
    stored = await store.append("DD-20260928-0031", ExpectedHead(), [owner_event(1), owner_event(2)], AT)
    again = await store.append(
        "DD-20260928-0031", ExpectedHead(2, stored[1].hash, stored[1].stream_seq), [owner_event(3)], AT
    )
    js = nats_client.jetstream()
    assert (await js.stream_info("UNSTUCK_CASES")).state.messages == 2
    first = await js.get_msg("UNSTUCK_CASES", seq=1)
    assert first.data == stored[0].body + b"\n" + stored[1].body
    assert first.headers["Nats-Msg-Id"] == stored[0].fields["event_id"]  # the decision id
    assert first.headers["Nats-Expected-Last-Subject-Sequence"] == "0"
    second = await js.get_msg("UNSTUCK_CASES", seq=2)
    assert second.data == again[0].body
    assert second.headers["Nats-Expected-Last-Subject-Sequence"] == "1"
    assert [e.stream_seq for e in stored + again] == [1, 1, 2]
    assert again[0].fields["prev_hash"] == stored[1].hash  # the chain runs across decisions


async def test_the_stream_is_marked_with_storage_format_2(store, nats_client):
    info = await nats_client.jetstream().stream_info("UNSTUCK_CASES")
    assert info.config.metadata["unstuck_format"] == "2"


async def test_a_stream_of_the_old_format_is_refused_in_one_line_naming_its_version(nats_client):
    js = nats_client.jetstream()
    await js.add_stream(
        name="OLD_CASES", subjects=["old.case.>"], deny_delete=True, deny_purge=True
    )  # as format 1 created it: no format mark
    await js.publish("old.case.DD-1", b'{"seq":1}', stream="OLD_CASES")
    with pytest.raises(StoreFormatError) as refused:
        await EventStore(js, stream="OLD_CASES").ensure()
    assert str(refused.value).startswith(
        "stream OLD_CASES holds storage format 1; this unstuck reads format 2"
    )
    assert "\n" not in str(refused.value)


async def test_a_new_empty_stream_without_the_mark_is_marked(nats_client):
    js = nats_client.jetstream()
    await js.add_stream(name="BARE_CASES", subjects=["unstuck.case.>"], deny_delete=True, deny_purge=True)
    await EventStore(js, stream="BARE_CASES").ensure()
    assert (await js.stream_info("BARE_CASES")).config.metadata["unstuck_format"] == "2"


async def test_events_are_chained_and_stored_as_canonical_bytes(store):
    stored = await store.append("DD-20260928-0001", ExpectedHead(), [owner_event(1), owner_event(2)], AT)
    assert [e.seq for e in stored] == [1, 2]
    assert stored[0].fields["prev_hash"] == "" and stored[1].fields["prev_hash"] == stored[0].hash
    back = await store.read_case("DD-20260928-0001")
    assert [e.body for e in back] == [e.body for e in stored]
    for e in back:
        fields, problems = check_body(e.body)
        assert problems == []
        assert e.body == canonical_json(fields)
        assert fields["hash"] == event_hash({k: v for k, v in fields.items() if k != "hash"})


async def append_twice(store: EventStore, case_id: str, events: int) -> tuple[list, list]:
    """Append a decision, then append it again exactly as a writer whose acknowledgement was lost
    would: the same event ids, from the same head it decided on (it never learned the first try
    was stored)."""
    decision = [owner_event(n) for n in range(1, events + 1)]
    ids = [f"01RETRIEDAPPEND{events}EVENT{n:05d}" for n in range(1, events + 1)]
    first = await store.append(case_id, ExpectedHead(), decision, AT, event_ids=ids)
    again = await store.append(case_id, ExpectedHead(), decision, AT, event_ids=ids)
    return first, again


async def test_a_retried_decision_with_the_same_event_ids_is_stored_once(store):
    first, again = await append_twice(store, "DD-20260928-0012", 2)
    assert [(e.body, e.stream_seq) for e in again] == [(e.body, e.stream_seq) for e in first]
    stored = await store.read_case("DD-20260928-0012")
    assert [e.fields["event_id"] for e in stored] == [
        "01RETRIEDAPPEND2EVENT00001",
        "01RETRIEDAPPEND2EVENT00002",
    ]
    assert [e.seq for e in stored] == [1, 2]
    assert await store.last_seq() == 1  # one decision, one message, stored once
    await store.heads.flush()
    assert (await store.heads.read_all())["DD-20260928-0012"]["seq"] == 2


# nats-server checks the expected subject sequence before the duplicate window for a single
# publish: EventStore recognises its own event as the subject's last instead of reporting a conflict
async def test_a_retried_single_event_with_the_same_event_id_is_stored_once(store):
    first, again = await append_twice(store, "DD-20260928-0011", 1)
    assert [(e.body, e.stream_seq) for e in again] == [(e.body, e.stream_seq) for e in first]
    stored = await store.read_case("DD-20260928-0011")
    assert [e.fields["event_id"] for e in stored] == ["01RETRIEDAPPEND1EVENT00001"]
    assert await store.last_seq() == 1


async def test_two_writers_cannot_fork_a_case(store):
    first = await store.append("DD-20260928-0003", ExpectedHead(), [owner_event(1)], AT)
    # a second writer that still believes the case is empty is refused
    with pytest.raises(AppendConflict):
        await store.append("DD-20260928-0003", ExpectedHead(), [owner_event(9)], AT)
    # one that read the head appends fine
    await store.append(
        "DD-20260928-0003",
        ExpectedHead(1, first[0].hash, first[0].stream_seq),
        [lc.NewEvent("system", CaseOverdue(due_date="2026-10-10"))],
        AT,
    )
    assert [e.seq for e in await store.read_case("DD-20260928-0003")] == [1, 2]


async def test_the_head_of_each_case_is_recorded_outside_the_stream(store):
    stored = await store.append("DD-20260928-0004", ExpectedHead(), [owner_event(1), owner_event(2)], AT)
    assert await store.heads.flush(timeout=HEAD_LAG_SECONDS)  # written off the append's path, at once
    heads = await store.heads.read_all()
    assert heads["DD-20260928-0004"] == {
        "seq": 2,
        "hash": stored[-1].hash,
        "stream_seq": stored[-1].stream_seq,
    }


async def test_reading_a_case_that_does_not_exist_gives_no_events(store):
    assert await store.read_case("DD-20260928-9999") == []


def test_a_changed_byte_is_detected_by_the_hash_or_the_canonical_form():
    fields = envelope_fields("DD-1", 1, owner_event(1), AT, "")
    from unstuck.canonical import seal

    body, _ = seal(fields)
    edited = body.replace(b'"w-1"', b'"w-7"')
    assert "hash does not match" in " ".join(check_body(edited)[1])
    spaced = json.dumps(json.loads(body), sort_keys=True).encode()
    assert "not canonical" in " ".join(check_body(spaced)[1])


async def test_reconcile_records_the_heads_a_crashed_writer_left_behind(store):
    # a writer appended two events and crashed before recording the second head
    stored = await store.append("DD-20260928-0021", ExpectedHead(), [owner_event(1), owner_event(2)], AT)
    await store.heads.flush()
    # as if the writer had got no further than the first event (the bucket as such a crash leaves it)
    first_head = {"seq": 1, "hash": stored[0].hash, "stream_seq": 1}
    await store.heads.kv.put("DD-20260928-0021", json.dumps(first_head).encode())
    assert (await store.heads.read_all())["DD-20260928-0021"]["seq"] == 1
    other = await store.append("DD-20260928-0022", ExpectedHead(), [owner_event(3)], AT)
    await store.heads.flush()
    # on restart the broker hands over the heads it rebuilt from the stream: one behind, one not
    restarted = EventStore(store.js)
    await restarted.ensure()
    behind = await restarted.heads.reconcile(
        {
            "DD-20260928-0021": (2, stored[1].hash, stored[1].stream_seq),
            "DD-20260928-0022": (1, other[0].hash, other[0].stream_seq),
        }
    )
    assert behind == 1
    assert (await store.heads.read_all())["DD-20260928-0021"] == {
        "seq": 2,
        "hash": stored[1].hash,
        "stream_seq": stored[1].stream_seq,
    }


async def test_a_head_noted_late_never_replaces_a_newer_head_another_replica_wrote(store, nats_client):
    other = HeadBook(nats_client.jetstream())  # a second replica writing the same bucket
    await other.ensure()
    case_id = "DD-20260928-0041"
    store.heads.note(case_id, 5, "5" * 64, 5)
    await store.heads.flush()
    other.note(case_id, 9, "9" * 64, 9)
    await other.flush()
    # this replica's heads of its own earlier appends arrive late, one after the other: the first
    # finds the newer head there, and the second must not take that for a revision to write over
    for seq in (6, 7):
        store.heads.note(case_id, seq, str(seq) * 64, seq)
        await store.heads.flush()
    assert (await store.heads.read_all())[case_id]["seq"] == 9
    await other.close()


async def publish_unrecorded(store: EventStore, case_id: str, head: ExpectedHead, n: int) -> None:
    """A decision stored as a broker stores it, whose head the broker never recorded (it crashed)."""
    sealed = seal_decision(case_id, head, [owner_event(n)], AT)
    await store.js.publish(
        f"unstuck.case.{case_id}",
        decision_body([body for body, _ in sealed]),
        stream="UNSTUCK_CASES",
        headers={"Nats-Expected-Last-Subject-Sequence": str(head.stream_seq)},
    )


async def test_a_head_left_behind_by_a_crash_is_reported_after_the_lag_bound(store, nats_client):
    stored = await store.append("DD-20260928-0051", ExpectedHead(), [owner_event(1)], AT)
    await store.heads.flush()
    head = ExpectedHead(1, stored[0].hash, stored[0].stream_seq)
    await publish_unrecorded(store, "DD-20260928-0051", head, 2)
    report = await verify_stream(nats_client)
    assert [(f.code, f.case_id, f.seq) for f in report.findings] == [
        ("untracked_tail", "DD-20260928-0051", 2)
    ]


async def test_a_head_written_within_the_lag_bound_is_not_a_finding(store, nats_client):
    stored = await store.append("DD-20260928-0052", ExpectedHead(), [owner_event(1)], AT)
    await store.heads.flush()
    head = ExpectedHead(1, stored[0].hash, stored[0].stream_seq)
    await publish_unrecorded(store, "DD-20260928-0052", head, 2)
    auditing = asyncio.create_task(verify_stream(nats_client))
    await asyncio.sleep(HEAD_LAG_SECONDS / 4)  # the auditor has read the old head by now
    events = await store.read_case("DD-20260928-0052")
    store.heads.note("DD-20260928-0052", 2, events[-1].hash, events[-1].stream_seq)
    await store.heads.flush()
    report = await auditing
    assert report.ok, [str(f) for f in report.findings]


async def test_a_head_written_during_the_audit_is_judged_as_the_broker_holds_it(store, nats_client):
    stored = await store.append("DD-20260928-0053", ExpectedHead(), [owner_event(1)], AT)
    await store.heads.flush()
    head = ExpectedHead(1, stored[0].hash, stored[0].stream_seq)
    await publish_unrecorded(store, "DD-20260928-0053", head, 2)  # stored, its head not yet written
    auditing = asyncio.create_task(verify_stream(nats_client))
    await asyncio.sleep(HEAD_LAG_SECONDS / 4)
    # the head then recorded names another event at seq 2: the stored one is not the broker's
    store.heads.note("DD-20260928-0053", 2, "ab" * 32, 2)
    await store.heads.flush()
    report = await auditing
    assert [(f.code, f.case_id, f.seq) for f in report.findings] == [("head_mismatch", "DD-20260928-0053", 2)]


async def test_following_reads_stored_history_without_a_consumer_then_follows_the_tail_through_one(
    store, nats_client, monkeypatch
):
    """A broker starting without a snapshot folds the whole history: it is read a batch of direct
    gets at a time (no consumer, so the server never pushes the history into the client's
    buffers); the ordered consumer starts after it, at the tail."""
    monkeypatch.setattr(eventstore, "HISTORY_BATCH", 256)
    js = nats_client.jetstream()
    heads: dict[str, ExpectedHead] = {}
    for n in range(600):  # more than two batches
        case_id = f"DD-20260928-{n % 7:04d}"
        stored = await store.append(case_id, heads.get(case_id, ExpectedHead()), [owner_event(n)], AT)
        heads[case_id] = ExpectedHead(stored[-1].fields["seq"], stored[-1].hash, stored[-1].stream_seq)
    seen: list[int] = []
    consumers_while_reading_history: set[int] = set()
    tail = asyncio.Event()

    async def on_message(stream_seq, subject, body, own):
        seen.append(stream_seq)
        if stream_seq <= 600 and stream_seq % 100 == 0:
            consumers_while_reading_history.add((await js.stream_info("UNSTUCK_CASES")).state.consumer_count)
        if stream_seq == 601:
            tail.set()

    sub = await store.follow(on_message, start_seq=5)
    assert seen == list(range(5, 601))
    assert consumers_while_reading_history == {0}
    assert (await js.stream_info("UNSTUCK_CASES")).state.consumer_count == 1
    await store.append("DD-20260928-0100", ExpectedHead(), [owner_event(1)], AT)
    await asyncio.wait_for(tail.wait(), 10)
    assert seen[-1] == 601 and len(seen) == len(set(seen))
    await sub.unsubscribe()

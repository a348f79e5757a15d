"""The broker holds the open cases only: closed ones leave memory and come back on demand, and a
restart starts from the snapshot of the open cases, checked against the chain, never from history."""

from __future__ import annotations

import json
from datetime import timedelta

import nats
import pytest

from conftest import sample
from unstuck import lifecycle as lc
from unstuck.adapters.registry import installed_departments
from unstuck.broker import Broker
from unstuck.broker.snapshots import Snapshot, decode_state, encode_state
from unstuck.lifecycle.state import replace_state
from unstuck.testing import api_call, close_client, fast_config, wait_for


@pytest.fixture
def unstuck_config(request):
    """These tests are about where a closed case is kept. 邀評 keeps a closed case that is not rated
    yet in memory until its invitation (the last test, given ``[3]``), so it is off unless given."""
    config = fast_config()
    config.deadlines.invite_rating_days = getattr(request, "param", 0)
    return config


async def open_case(nc, name: str, **changes) -> str:
    return (await api_call(nc, "case.open", sample(name, **changes)))["case_id"]


async def conclude_reviews(broker, nc, case_id: str) -> None:
    """The higher department's review of a `cannot`, concluded by hand (no adapter serves it here)."""
    for review in broker.state_of(case_id).reviews:
        if review["conclusion"] is None:
            body = {"department": review["department"], "outcome": "upheld", "note": "上級維持"}
            await api_call(nc, "case.review_conclude", {"case_id": case_id, "actor": "w-zhang", **body})


async def close_case(broker, nc, case_id: str) -> None:
    await conclude_reviews(broker, nc, case_id)
    state = broker.state_of(case_id)
    outcome = state.resolution["outcome"]  # 銷號 agrees with the department's answer
    await api_call(
        nc,
        "case.close",
        {"case_id": case_id, "actor": state.owner, "outcome": outcome, "explanation": "已辦結"},
    )


async def answered_and_closed(broker, nc, name: str) -> str:
    case_id = await open_case(nc, name)
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    await close_case(broker, nc, case_id)
    return case_id


async def start_broker(server, config, clock, serve_api: bool = False) -> tuple[Broker, object]:
    nc = await nats.connect(server.url)
    b = Broker(nc, config, clock, departments=installed_departments())
    await b.start(serve_api=serve_api)
    await nc.flush()
    return b, nc


async def store_snapshot(broker: Broker, snapshot: Snapshot) -> None:
    """Put ``snapshot`` where the next broker to start will read it."""
    store = await broker.snapshots.bucket()
    await store.put(broker.store.stream, snapshot.encode(broker.store.stream))


async def stop_broker(b: Broker, nc) -> None:
    await b.stop()
    await close_client(nc)


async def test_a_closed_case_leaves_memory_and_comes_back_for_a_late_rating(
    broker, builtin_adapters, nats_client
):
    broker.book.closed_kept = 1  # keep one closed case: the second closing pushes the first out
    first = await answered_and_closed(broker, nats_client, "01")
    second = await answered_and_closed(broker, nats_client, "07")
    still_open = await open_case(nats_client, "01", client_ref="still-open")

    assert first not in broker.states and first not in broker.book.closed
    assert second in broker.book.closed and second not in broker.states
    assert still_open in broker.states

    shown = await api_call(nats_client, "case.get", {"case_id": first})
    assert shown["state"]["state"] == "closed" and shown["state"]["case_id"] == first
    loads = broker.book.loads
    await api_call(nats_client, "case.evaluate", {"case_id": first, "rating": "good"})
    assert broker.state_of(first).state == lc.EVALUATED
    types = [e.type for e in await broker.store.read_case(first)]
    assert types[-2:] == ["case.closed", "case.evaluated"]
    assert broker.book.loads == loads  # case.get read it back; the rating found it in memory


async def test_a_closed_case_still_waiting_for_its_review_stays_watched_until_the_conclusion(
    broker, builtin_adapters, nats_client
):
    broker.book.closed_kept = 1
    case_id = await open_case(nats_client, "01")  # chengguan answers cannot: reviewed by hand
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    body = {"actor": "w-zhang", "outcome": "cannot", "explanation": "已說明依據"}
    await api_call(nats_client, "case.close", {"case_id": case_id, **body})
    await answered_and_closed(broker, nats_client, "07")  # pushes a closed case out of memory
    assert broker.state_of(case_id).state == lc.CLOSED
    assert case_id in broker.states  # still watched: the review's due date is followed
    await conclude_reviews(broker, nats_client, case_id)
    await answered_and_closed(broker, nats_client, "07")
    assert case_id not in broker.states and case_id not in broker.book.closed


async def test_a_restart_reads_the_snapshot_and_the_tail_only(
    nats_server, builtin_adapters, nats_client, sim_clock, unstuck_config
):
    a, nc_a = await start_broker(nats_server, unstuck_config, sim_clock, serve_api=True)
    try:
        closed = await answered_and_closed(a, nats_client, "01")
        open_ids = [await open_case(nats_client, "07"), await open_case(nats_client, "01", category="hard")]
        await wait_for(lambda: all(a.state_of(c).state == lc.ANSWERED for c in open_ids))
        expected = {c: a.state_of(c) for c in open_ids}
        last = await a.store.last_seq()
    finally:
        await stop_broker(a, nc_a)  # a clean stop stores the snapshot

    b, nc_b = await start_broker(nats_server, unstuck_config, sim_clock)
    try:
        assert b.book.followed_from == last + 1  # nothing of the history was read again
        assert {c: b.state_of(c) for c in open_ids} == expected
        assert closed not in b.states and b.book.known_cases == 3
        assert b.status()["cases"] == 3 and b.status()["open_cases"] == 2
        open_gauge = sum(
            s.value
            for metric in b.metrics.open_cases.collect()
            for s in metric.samples
            if s.name == "unstuck_cases_open"
        )
        assert open_gauge == 2
    finally:
        await stop_broker(b, nc_b)


async def test_a_replica_started_from_an_old_snapshot_folds_the_tail(
    broker, builtin_adapters, nats_client, nats_server, sim_clock, unstuck_config
):
    kept_open = await open_case(nats_client, "07")
    to_close = await open_case(nats_client, "01")
    await wait_for(lambda: broker.state_of(to_close).state == lc.ANSWERED)
    await wait_for(lambda: broker.state_of(kept_open).state == lc.ANSWERED)
    covers = await broker.snapshots.save()
    await close_case(broker, nats_client, to_close)  # after the snapshot: only the tail says so
    newer = await open_case(nats_client, "01")

    b, nc_b = await start_broker(nats_server, unstuck_config, sim_clock)
    try:
        assert b.book.followed_from == covers + 1
        assert to_close not in b.states and newer in b.states and kept_open in b.states
        assert b.state_of(kept_open) == broker.state_of(kept_open)
        assert b.book.known_cases == 3
    finally:
        await stop_broker(b, nc_b)


async def test_a_snapshot_that_disagrees_with_the_chain_is_corrected_from_the_subject(
    broker, builtin_adapters, nats_client, nats_server, sim_clock, unstuck_config
):
    case_id = await open_case(nats_client, "07")
    await wait_for(lambda: broker.state_of(case_id).state == lc.ANSWERED)
    true_state = broker.state_of(case_id)
    snapshot = broker.snapshots.take()
    forged = replace_state(true_state, overdue=True, head_hash="f" * 64)
    snapshot.states = [(forged if s.case_id == case_id else s, seq) for s, seq in snapshot.states]
    await store_snapshot(broker, snapshot)

    b, nc_b = await start_broker(nats_server, unstuck_config, sim_clock)
    try:
        assert b.state_of(case_id) == true_state
        assert b.book.loads == 1
    finally:
        await stop_broker(b, nc_b)


async def test_a_snapshot_of_a_longer_stream_is_not_used(
    broker, builtin_adapters, nats_client, nats_server, sim_clock, unstuck_config
):
    case_id = await open_case(nats_client, "07")
    snapshot = broker.snapshots.take()
    snapshot.covers += 1000  # as if the stream had been deleted and created again since
    await store_snapshot(broker, snapshot)

    b, nc_b = await start_broker(nats_server, unstuck_config, sim_clock)
    try:
        assert b.book.followed_from == 1
        assert case_id in b.states
    finally:
        await stop_broker(b, nc_b)


async def test_every_state_a_window_produces_survives_the_snapshot_codec(
    broker, builtin_adapters, nats_client
):
    """Open, answered, extended, escalated, closed, evaluated, with accountability: each encoded and
    decoded equals the original, value for value, and keeps its types."""
    refused = await open_case(nats_client, "01", category="refused")
    extended = await open_case(nats_client, "07")
    await wait_for(lambda: broker.state_of(extended).state == lc.ANSWERED)
    await api_call(
        nats_client,
        "case.extend",
        {"case_id": extended, "actor": "w-zhang", "working_days": 2, "reason": "待委員會研究"},
    )
    await api_call(
        nats_client,
        "case.escalate",
        {
            "case_id": extended,
            "actor": "w-zhang",
            "department": "window",
            "level": "section_head",
            "note": "請協調",
        },
    )
    await api_call(
        nats_client,
        "accountability.record",
        {
            "case_id": refused,
            "actor": "leader-gao",
            "staff": "renshe-clerk-07",
            "section": "養老保險科",
            "leader_in_charge": "leader-wang",
            "finding": "推諉",
            "measures": ["interview"],
            "fault_tolerance": False,
        },
    )
    evaluated = await answered_and_closed(broker, nats_client, "01")
    await api_call(nats_client, "case.evaluate", {"case_id": evaluated, "rating": "bad"})
    states = [broker.state_of(c) for c in (refused, extended, evaluated)]
    assert states[1].pending_extension and states[1].escalations and states[0].accountability
    for state in states:
        encoded = json.loads(json.dumps(encode_state(state)))  # through JSON text, as stored
        decoded = decode_state(encoded)
        assert decoded == state
        assert type(decoded.state) is type(state.state)
        for mine, theirs in zip(decoded.coordinations.values(), state.coordinations.values(), strict=True):
            assert type(mine.status) is type(theirs.status) and mine.deadline == theirs.deadline


async def test_a_snapshot_from_another_stream_is_refused(broker):
    raw = broker.snapshots.take().encode("SOME_OTHER_STREAM")
    with pytest.raises(ValueError, match="SOME_OTHER_STREAM"):
        Snapshot.decode(raw, broker.store.stream)


@pytest.mark.parametrize("unstuck_config", [3], indirect=True)
async def test_a_closed_case_not_rated_stays_in_memory_until_its_invitation_then_leaves(
    broker, builtin_adapters, nats_client, sim_clock
):
    broker.book.closed_kept = 1
    case_id = await answered_and_closed(broker, nats_client, "07")  # closed on Monday 28 September
    await answered_and_closed(broker, nats_client, "07")  # would push it out of the recently closed
    assert case_id in broker.states  # watched: 邀評 is still owed
    sim_clock.advance(timedelta(days=2))  # Wednesday 30 September: two days, not yet
    await api_call(nats_client, "admin.tick", {})
    assert case_id in broker.states and not broker.state_of(case_id).rating_invited
    sim_clock.advance(timedelta(days=1))  # Thursday 1 October (a holiday: days, not working days)
    await api_call(nats_client, "admin.tick", {})
    types = [e.type for e in await broker.store.read_case(case_id)]
    assert types[-1] == "case.rating_invited" and types.count("case.rating_invited") == 1
    await answered_and_closed(broker, nats_client, "07")
    assert case_id not in broker.states and case_id not in broker.book.closed

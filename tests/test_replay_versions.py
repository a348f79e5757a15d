"""Schema evolution: an event stored at an older version of its type still replays and verifies.

``case.closed`` is at v2 (it gained ``on_time``); a closing stored at v1, before that field existed,
is lifted by the upcaster in schemas/events.py on its way into ``evolve``.
"""

from __future__ import annotations

from ulid import ULID

from conftest import sample
from unstuck.canonical import seal
from unstuck.eventstore import iso
from unstuck.replay import verify_stream
from unstuck.schemas import CURRENT_VERSIONS
from unstuck.schemas.events import parse_payload
from unstuck.schemas.subjects import case_subject
from unstuck.testing import api_call, wait_for


async def append_by_hand(broker, nats_client, case_id: str, event_type: str, version: int, data: dict) -> int:
    """Store one event as an older broker would have: sealed, chained, head recorded."""
    state = broker.state_of(case_id)
    fields = {
        "event_id": str(ULID()),
        "case_id": case_id,
        "seq": state.seq + 1,
        "type": event_type,
        "at": iso(broker.clock.now()),
        "actor": "leader-gao",
        "data": data,
        "prev_hash": state.head_hash,
        "v": version,
    }
    body, digest = seal(fields)
    ack = await nats_client.jetstream().publish(
        case_subject(case_id),
        body,
        stream="UNSTUCK_CASES",
        headers={
            "Nats-Msg-Id": fields["event_id"],
            "Nats-Expected-Last-Subject-Sequence": str(broker.stream_seqs[case_id]),
        },
    )
    broker.store.heads.note(case_id, fields["seq"], digest, ack.seq)
    await broker.store.heads.flush()
    return state.seq + 1


def test_case_closed_is_at_v2_and_v1_data_is_upcast_with_on_time():
    assert CURRENT_VERSIONS["case.closed"] == 2
    closed = parse_payload(
        "case.closed", {"outcome": "resolved", "explanation": "已說明", "closed_by": "w-li"}, 1
    )
    assert closed.on_time is True


async def test_a_stored_v1_closing_without_on_time_replays_and_verifies(
    broker, builtin_adapters, nats_client
):
    case_id = (await api_call(nats_client, "case.open", sample("02")))["case_id"]
    await wait_for(lambda: broker.state_of(case_id).state == "answered")
    v1 = {"outcome": "resolved", "explanation": "已向申請人說明核名結果", "closed_by": "leader-gao"}
    seq = await append_by_hand(broker, nats_client, case_id, "case.closed", 1, v1)
    await wait_for(lambda: broker.state_of(case_id).seq == seq)

    report = await verify_stream(nats_client)

    assert report.ok, [str(f) for f in report.findings]
    replayed = report.cases[case_id].state
    assert replayed.state == "closed"
    assert replayed.closing["on_time"] is True
    assert replayed.to_dict() == broker.state_of(case_id).to_dict()


async def test_an_event_newer_than_this_code_knows_is_schema_invalid_and_says_upgrade(
    broker, builtin_adapters, nats_client
):
    case_id = (await api_call(nats_client, "case.open", sample("02")))["case_id"]
    await wait_for(lambda: broker.state_of(case_id).state == "answered")
    v3 = {"outcome": "resolved", "explanation": "說明", "closed_by": "leader-gao", "on_time": True}
    seq = await append_by_hand(broker, nats_client, case_id, "case.closed", 3, v3)

    report = await verify_stream(nats_client)

    assert [(f.code, f.case_id, f.seq) for f in report.findings] == [("schema_invalid", case_id, seq)]
    assert "newer than this code knows (v2): upgrade" in report.findings[0].message
    assert report.cases[case_id].state.state == "answered"  # the state stops before the unknown version

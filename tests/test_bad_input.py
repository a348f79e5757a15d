"""Bad input anywhere gets a clear error naming the field (or is flagged by verification), is counted,
and crashes nothing: malformed API requests, subject-breaking ids, replies from the wrong department,
and events written into the case stream by something other than the broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from conftest import sample
from unstuck.broker import Broker
from unstuck.canonical import seal
from unstuck.config import Config
from unstuck.replay import verify_stream
from unstuck.schemas.subjects import STREAM
from unstuck.testing import fast_config, wait_for

MAX_PAYLOAD = 2048


@pytest.fixture
def unstuck_config() -> Config:
    config = fast_config(timeout_seconds=0.3, attempts=2, stalled_retry_seconds=30.0)
    config.broker.max_payload_bytes = MAX_PAYLOAD
    return config


async def request(nc: Client, verb: str, body: dict[str, Any] | bytes) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    msg = await nc.request(f"unstuck.api.{verb}", data, timeout=10)
    return dict(json.loads(msg.data))


def errors_counted(broker: Broker, reason: str) -> float:
    return broker.metrics.registry.get_sample_value("unstuck_api_errors_total", {"reason": reason}) or 0.0


async def refused(
    broker: Broker, nc: Client, verb: str, body: dict[str, Any] | bytes, code: str
) -> dict[str, Any]:
    """Send a bad request: it must be refused with ``code``, counted, and store nothing."""
    before_count = errors_counted(broker, code)
    before_seq = await broker.store.last_seq()
    reply = await request(nc, verb, body)
    assert reply["ok"] is False, reply
    error = reply["error"]
    assert error["code"] == code, error
    assert error["message"] and error["field"], error
    assert errors_counted(broker, code) == before_count + 1
    assert await broker.store.last_seq() == before_seq
    return dict(error)


# --- API requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b'{"a": NaN', "invalid_json"),
        (b"[1, 2]", "invalid_request"),
        (b'"a string"', "invalid_request"),
        (b"null", "invalid_request"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_refused_naming_the_body(
    broker: Broker, nats_client: Client, data: bytes, code: str
) -> None:
    error = await refused(broker, nats_client, "case.open", data, code)
    assert error["field"] == "body"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"applicant": "張三"}, "applicant"),
        ({"facts": ["not", "a", "map"]}, "facts"),
        ({"category": 5}, "category"),
        ({"category": "impossible"}, "category"),
        ({"owner": 42}, "owner"),
        ({"description": ""}, "description"),
        ({"unexpected": True}, "unexpected"),
    ],
)
async def test_a_field_of_the_wrong_type_is_refused_naming_it(
    broker: Broker, nats_client: Client, change: dict[str, Any], field: str
) -> None:
    error = await refused(broker, nats_client, "case.open", sample("02", **change), "invalid_request")
    assert error["field"] == field


@pytest.mark.parametrize("missing", ["matter", "applicant", "window", "department", "owner", "description"])
async def test_a_missing_field_is_refused_naming_it(
    broker: Broker, nats_client: Client, missing: str
) -> None:
    body = sample("02")
    del body[missing]
    error = await refused(broker, nats_client, "case.open", body, "invalid_request")
    assert error["field"] == missing


async def test_a_payload_over_the_configured_maximum_is_refused_before_it_is_parsed(
    broker: Broker, nats_client: Client
) -> None:
    body = sample("02", description="很難辦" * 400)  # about 3.6 KB, over broker.max_payload_bytes
    error = await refused(broker, nats_client, "case.open", body, "payload_too_large")
    assert str(MAX_PAYLOAD) in error["message"] and "max_payload_bytes" in error["fix"]


async def test_an_unknown_department_is_refused_with_the_known_ones_as_the_fix(
    broker: Broker, nats_client: Client
) -> None:
    error = await refused(
        broker, nats_client, "case.open", sample("02", department="nobody"), "invalid_request"
    )
    assert error["field"] == "department" and "renshe" in error["fix"]


@pytest.mark.parametrize("case_id", ["DD.0001", "DD-*", "DD->", ">", "*", "DD 0001", " DD", "DD\t1", ""])
async def test_a_case_id_that_would_break_a_subject_is_refused(
    broker: Broker, nats_client: Client, case_id: str
) -> None:
    error = await refused(broker, nats_client, "case.get", {"case_id": case_id}, "invalid_request")
    assert error["field"] == "case_id"


@pytest.mark.parametrize("code", ["ren.she", "*", ">", "ren she", "RENSHE", "renshe.>", ""])
async def test_a_department_code_that_would_break_a_subject_is_refused(
    broker: Broker, nats_client: Client, code: str
) -> None:
    error = await refused(broker, nats_client, "case.open", sample("02", department=code), "invalid_request")
    assert error["field"] == "department"
    opened = await request(nats_client, "case.open", sample("05"))  # guided: nothing else is written
    error = await refused(
        broker,
        nats_client,
        "case.classify",
        {
            "case_id": opened["result"]["case_id"],
            "actor": "w-li",
            "category": "cannot",
            "reason": "r",
            "departments": [code],
        },
        "invalid_request",
    )
    assert error["field"] == "departments.0"


async def test_an_unknown_verb_is_refused_naming_the_subject(broker: Broker, nats_client: Client) -> None:
    for verb in ("case.delete", "case.get.extra", "admin.purge"):
        error = await refused(broker, nats_client, verb, {}, "not_found")
        assert error["field"] == "subject"


# --- department replies ---------------------------------------------------------------------------


def _reply(msg: Msg, **changes: Any) -> bytes:
    request = json.loads(msg.data)
    body = {
        "request_id": request["request_id"],
        "department": request["department"],
        "outcome": "resolved",
        "message": "辦好了",
        "handler": "clerk",
    }
    body.update(changes)
    return json.dumps(body, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "wrong",
    [
        {"department": "scjg"},
        {"request_id": "DD-20260928-9999-c1"},
        {"request_id": "x"},
        {"outcome": "cannot"},  # without its legal basis
    ],
    ids=["wrong-department", "unknown-request-id", "malformed-request-id", "cannot-without-basis"],
)
async def test_a_reply_from_the_wrong_department_or_for_another_request_is_counted_and_never_recorded(
    broker: Broker, nats_client: Client, wrong: dict[str, Any]
) -> None:
    async def impostor(msg: Msg) -> None:
        await msg.respond(_reply(msg, **wrong))

    await nats_client.subscribe("unstuck.dept.renshe.coordinate", queue="unstuck.dept.renshe", cb=impostor)
    await nats_client.flush()
    opened = await request(nats_client, "case.open", sample("03", category="hard"))
    case_id = opened["result"]["case_id"]

    def stalled() -> bool:
        return any(c.status == "stalled" for c in broker.state_of(case_id).coordinations.values())

    await wait_for(stalled, 30, "the coordination stalled")
    invalid = broker.metrics.registry.get_sample_value(
        "unstuck_coordination_invalid_replies_total", {"department": "renshe"}
    )
    assert invalid == 2  # both attempts, each counted
    types = [e.type for e in await broker.store.read_case(case_id)]
    assert "coordination.replied" not in types
    assert types.count("coordination.retried") == 1 and "coordination.stalled" in types
    retried = next(e for e in await broker.store.read_case(case_id) if e.type == "coordination.retried")
    assert retried.fields["data"]["reason"] == "invalid_reply"


async def test_a_department_cannot_record_an_answer_to_a_case_it_was_not_asked_about(
    broker: Broker, builtin_adapters: Any, nats_client: Client
) -> None:
    opened = await request(nats_client, "case.open", sample("03", category="hard"))
    case_id = opened["result"]["case_id"]
    await wait_for(lambda: broker.state_of(case_id).state == "answered", 30, "renshe answered")
    body = {
        "case_id": case_id,
        "actor": "chengguan",  # the department itself (window staff may record no answer at all)
        "department": "chengguan",
        "outcome": "resolved",
        "message": "m",
        "handler": "h",
    }
    error = await refused(broker, nats_client, "case.record", body, "not_allowed")
    assert error["field"] == "department"
    staff = await refused(broker, nats_client, "case.record", {**body, "actor": "w-li"}, "not_allowed")
    assert staff["field"] == "actor" and "窗口人員不能代為登記" in staff["message_zh"]


# --- events the broker did not write -------------------------------------------------------------


async def test_events_written_into_the_stream_by_something_else_are_rejected_counted_and_flagged(
    broker: Broker, builtin_adapters: Any, nats_client: Client
) -> None:
    js = nats_client.jetstream()
    opened = await request(nats_client, "case.open", sample("02"))
    case_id = opened["result"]["case_id"]
    await wait_for(lambda: broker.state_of(case_id).state == "answered", 30, "the case answered")
    head = broker.state_of(case_id)

    # 1. not JSON at all, on a case subject of its own
    await js.publish("unstuck.case.FORGED-0001", b"\x00 not an event")
    # 2. an event that continues the real case but whose hash was not computed over its content
    forged: dict[str, Any] = {
        "event_id": "01FORGEDFORGEDFORGEDFORGED",
        "case_id": case_id,
        "seq": head.seq + 1,
        "type": "case.closed",
        "at": "2026-09-28T01:00:00Z",
        "actor": "intruder",
        "data": {
            "outcome": "resolved",
            "explanation": "closed by someone else",
            "closed_by": "intruder",
            "on_time": True,
        },
        "prev_hash": head.head_hash,
        "v": 2,
    }
    body, _ = seal(forged)
    await js.publish(f"unstuck.case.{case_id}", body.replace(b"someone else", b"the window!!"))
    # 3. a well-sealed event that does not continue the chain (wrong seq)
    body, _ = seal({**forged, "event_id": "01FORGEDFORGEDFORGEDFORGE2", "seq": head.seq + 7})
    await js.publish(f"unstuck.case.{case_id}", body)

    def rejected() -> float:
        return broker.metrics.registry.get_sample_value("unstuck_stream_rejected_events_total") or 0.0

    await wait_for(lambda: rejected() >= 3, 15, "three stream messages rejected")
    assert broker.state_of(case_id).state == "answered"  # none of them reached the case
    assert broker.state_of(case_id).seq == head.seq
    assert broker.health()["nats_connected"]

    report = await verify_stream(nats_client, STREAM)
    codes = report.counts()
    assert not report.ok
    assert {f.case_id for f in report.findings} >= {case_id, "FORGED-0001"}
    assert len(report.findings_of(case_id)) >= 2, codes

    # the broker still works for everything else
    again = await request(nats_client, "case.open", sample("05"))
    assert again["ok"], again


async def test_a_broker_that_answers_garbage_to_itself_never_raises(broker: Broker) -> None:
    for verb, data in [
        ("case.open", b"\x80"),
        ("status", b"{}"),
        ("case.get", b'{"case_id": 1}'),
        ("x", b""),
    ]:
        reply = json.loads(await broker.handle(verb, data))
        assert set(reply) >= {"ok"}

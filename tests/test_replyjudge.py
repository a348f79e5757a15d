"""The reply judge, without a server: every verdict on what a department sends back, as an exact
(reason, reply or None, detail) tuple written out by hand."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from unstuck.replyjudge import SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER, judge_reply
from unstuck.schemas import CoordinationReply, CoordinationRequest
from unstuck.schemas.coordination import Outcome

REQUEST = CoordinationRequest(
    request_id="REQ-DD-20260928-0001-chengguan",
    case_id="DD-20260928-0001",
    department="chengguan",
    category="cannot",
    matter="shop_sign",
    matter_title="二樓門頭招牌設置",
    facts={"floor": 2},
    question="二樓外立面可否設置門頭招牌？",
    deadline=date(2026, 9, 29),
    reply_by=datetime(2026, 9, 28, 2, 0, 30, tzinfo=UTC),
    attempt=1,
)


def body(**changes: object) -> bytes:
    """A department's answer on the wire: a valid `cannot` reply to REQUEST, with some fields changed."""
    reply: dict[str, object] = {
        "request_id": "REQ-DD-20260928-0001-chengguan",
        "department": "chengguan",
        "outcome": "cannot",
        "message": "臨街建築二樓及以上不得設置門頭招牌。",
        "handler": "城管局 李科長",
        "legal_basis": "《城市市容和環境衛生管理條例》第十一條",
    }
    reply.update(changes)
    return json.dumps({k: v for k, v in reply.items() if v is not None}, ensure_ascii=False).encode()


def test_a_valid_reply_to_this_request_from_this_department_is_accepted_with_its_outcome():
    verdict = judge_reply(REQUEST, "chengguan", body(), None)
    assert verdict == (
        "cannot",
        CoordinationReply(
            request_id="REQ-DD-20260928-0001-chengguan",
            department="chengguan",
            outcome=Outcome.CANNOT,
            message="臨街建築二樓及以上不得設置門頭招牌。",
            handler="城管局 李科長",
            legal_basis="《城市市容和環境衛生管理條例》第十一條",
        ),
        "",
    )


def test_each_outcome_comes_back_as_its_own_reason():
    accepted = body(outcome="accepted", legal_basis=None, expected_date="2026-10-09")
    reason, reply, detail = judge_reply(REQUEST, "chengguan", accepted, {})
    assert (reason, detail) == ("accepted", "")
    assert reply is not None and reply.expected_date == date(2026, 10, 9)
    materials = body(outcome="need_materials", legal_basis=None, materials=["房屋產權證明", "外立面效果圖"])
    reason, reply, detail = judge_reply(REQUEST, "chengguan", materials, {})
    assert (reason, detail) == ("need_materials", "")
    assert reply is not None and reply.materials == ["房屋產權證明", "外立面效果圖"]


def test_an_error_header_with_its_message_is_an_error_with_code_and_message():
    headers = {SERVICE_ERROR_CODE_HEADER: "503", SERVICE_ERROR_HEADER: "rule table unavailable"}
    assert judge_reply(REQUEST, "chengguan", b"", headers) == ("error", None, "503 rule table unavailable")


def test_an_error_header_without_a_message_is_an_error_with_the_code_alone():
    headers = {"Nats-Service-Error-Code": "500"}
    assert judge_reply(REQUEST, "chengguan", b"", headers) == ("error", None, "500 ")


def test_the_error_code_wins_over_a_body_that_would_be_a_valid_reply():
    headers = {"Nats-Service-Error-Code": "400", "Nats-Service-Error": "bad request"}
    assert judge_reply(REQUEST, "chengguan", body(), headers) == ("error", None, "400 bad request")


def test_a_message_header_without_a_code_is_not_an_error_and_the_body_is_judged():
    reason, reply, detail = judge_reply(REQUEST, "chengguan", body(), {"Nats-Service-Error": "ignored"})
    assert (reason, reply is not None, detail) == ("cannot", True, "")


def test_a_body_that_is_not_json_is_an_invalid_reply_about_the_body():
    assert judge_reply(REQUEST, "chengguan", b"not json", None) == (
        "invalid_reply",
        None,
        "body: Invalid JSON: expected ident at line 1 column 2",
    )


def test_a_reply_missing_a_field_is_invalid_and_names_the_field():
    assert judge_reply(REQUEST, "chengguan", body(handler=None), None) == (
        "invalid_reply",
        None,
        "handler: Field required",
    )


def test_a_nested_field_is_named_by_its_dotted_path():
    bad = body(outcome="need_materials", legal_basis=None, materials=["房屋產權證明", ""])
    assert judge_reply(REQUEST, "chengguan", bad, None) == (
        "invalid_reply",
        None,
        "materials.1: String should have at least 1 character",
    )


def test_an_outcome_without_its_required_field_is_invalid_about_the_whole_body():
    assert judge_reply(REQUEST, "chengguan", body(legal_basis=None), None) == (
        "invalid_reply",
        None,
        "body: Value error, legal_basis is required when outcome is cannot: "
        "name the law or rule that forbids it",
    )


def test_a_reply_to_another_request_is_invalid():
    other = body(request_id="REQ-DD-20260928-0002-chengguan")
    assert judge_reply(REQUEST, "chengguan", other, None) == (
        "invalid_reply",
        None,
        "request_id REQ-DD-20260928-0002-chengguan answers another request",
    )


def test_a_reply_naming_another_department_is_invalid():
    assert judge_reply(REQUEST, "chengguan", body(department="scjg"), None) == (
        "invalid_reply",
        None,
        "reply names department scjg",
    )


def test_the_department_asked_is_the_one_the_reply_must_name():
    # the same reply is accepted from the department it names, refused when another one was asked
    assert judge_reply(REQUEST, "scjg", body(), None) == (
        "invalid_reply",
        None,
        "reply names department chengguan",
    )

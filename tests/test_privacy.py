"""Personal data masked in one place (schemas/privacy.py), and wherever it could leak: validation errors
that echo a value sent under an unknown name, and the free text of notifications."""

from __future__ import annotations

import json

import pytest

from conftest import sample
from unstuck.schemas.privacy import PERSONAL_FIELDS, mask_email, mask_identifier, mask_personal, mask_text
from unstuck.testing import ApiError, api_call

ID_NUMBER = "210607199001017777"
PHONE = "13912345678"


def test_the_personal_fields():
    assert PERSONAL_FIELDS == {"id_number", "phone", "email"}


@pytest.mark.parametrize(
    ("value", "masked"),
    [("wangli@example.com", "w*****@example.com"), ("a@b.cn", "a*@b.cn"), ("no-at-sign", "n*****sign")],
)
def test_mask_email_keeps_the_first_character_and_the_domain(value, masked):
    assert mask_email(value) == masked
    assert mask_personal({"email": value}) == {"email": masked}


def test_an_applicants_email_is_validated_and_masked_when_shown():
    from pydantic import ValidationError

    from unstuck.schemas.case import CheckedApplicant

    applicant = CheckedApplicant.model_validate(
        {"kind": "citizen", "name": "王小明", "id_number": ID_NUMBER, "email": " wangli@example.com "}
    )
    assert applicant.masked()["email"] == "w*****@example.com"
    assert applicant.model_dump(mode="json")["email"] == "wangli@example.com"
    assert "wangli" not in repr(applicant)
    with pytest.raises(ValidationError, match="not an email address"):
        CheckedApplicant.model_validate(
            {"kind": "citizen", "name": "王小明", "id_number": ID_NUMBER, "email": "wangli at example"}
        )


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (ID_NUMBER, "2106**********7777"),
        ("11010519491231002X", "1101**********002X"),
        (PHONE, "1******5678"),  # under 12 characters: the first and the last four
        ("123456789", "1****6789"),
        ("1234", "****"),
        ("", ""),
    ],
)
def test_mask_identifier_keeps_only_enough_to_recognise_the_number(value, masked):
    assert mask_identifier(value) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"申請人身份證{ID_NUMBER}，電話{PHONE}", "申請人身份證2106**********7777，電話1******5678"),
        ("證件號 11010519491231002x 已核對", "證件號 1101**********002x 已核對"),
        # not numbers of a person: a hash, a ULID, a case id, a longer run of digits, a landline
        ("a" * 12 + "210607199001017777" + "b", "a" * 12 + "210607199001017777" + "b"),
        ("01JD8ZQ2K3M4N5P6Q7R8S9T0VW", "01JD8ZQ2K3M4N5P6Q7R8S9T0VW"),
        ("DD-20260928-0001", "DD-20260928-0001"),
        ("1391234567890", "1391234567890"),
        ("024-12345678", "024-12345678"),
        ("12912345678", "12912345678"),  # no mobile number starts with 12
    ],
)
def test_mask_text_masks_id_and_phone_numbers_standing_alone(text, masked):
    assert mask_text(text) == masked


def test_mask_personal_masks_personal_fields_at_any_depth_and_numbers_in_text():
    record = {
        "applicant": {"name": "王小明", "id_number": ID_NUMBER, "phone": PHONE},
        "notes": [f"回電{PHONE}", {"phone": PHONE}],
        "seq": 3,
        "phone": None,
    }
    assert mask_personal(record) == {
        "applicant": {"name": "王小明", "id_number": "2106**********7777", "phone": "1******5678"},
        "notes": ["回電1******5678", {"phone": "1******5678"}],
        "seq": 3,
        "phone": None,
    }
    assert record["applicant"]["id_number"] == ID_NUMBER  # a copy: the record itself is untouched


async def test_a_number_sent_under_an_unknown_field_name_is_not_echoed(broker, nats_client):
    body = sample("04")
    body["applicant"]["idcard"] = ID_NUMBER
    with pytest.raises(ApiError) as refused:
        await api_call(nats_client, "case.open", body)
    error = refused.value.error
    assert error["code"] == "invalid_request" and error["field"] == "applicant.idcard"
    assert ID_NUMBER not in json.dumps(error, ensure_ascii=False)
    assert error["message"] == "applicant.idcard: Extra inputs are not permitted (got '2106**********7777')"


async def test_a_number_in_a_notes_free_text_is_masked_on_the_notification_subject(
    broker, builtin_adapters, nats_client
):
    case_id = (await api_call(nats_client, "case.open", sample("06")))["case_id"]
    seen = await nats_client.subscribe("unstuck.notify.>")
    await api_call(
        nats_client,
        "case.escalate",
        {
            "case_id": case_id,
            "actor": "leader-gao",
            "department": "chengguan",
            "level": "director",
            "note": f"申請人電話{PHONE}，請直接聯繫",
        },
    )
    messages = []

    async def escalation_seen() -> bool:
        try:
            messages.append(json.loads((await seen.next_msg(timeout=0.5)).data))
        except TimeoutError:
            pass
        return any(m["type"] == "case.escalated" for m in messages)

    for _ in range(40):
        if await escalation_seen():
            break
    escalated = next(m for m in messages if m["type"] == "case.escalated")
    assert PHONE not in json.dumps(escalated, ensure_ascii=False)
    assert escalated["data"]["note"] == "申請人電話1******5678，請直接聯繫"
    # the record itself keeps what the leader wrote
    stored = [e for e in await broker.store.read_case(case_id) if e.type == "case.escalated"]
    assert stored[-1].fields["data"]["note"] == f"申請人電話{PHONE}，請直接聯繫"

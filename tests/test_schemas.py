"""The wire contract: JSON Schemas in step with the models, personal identifiers masked."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest
from pydantic import ValidationError

from conftest import sample
from unstuck.schemas import CaseIntake, CoordinationReply, Envelope, parse_payload
from unstuck.schemas.events import EVENT_TYPES, EventSchemaError
from unstuck.schemas.export import JSON_DIR, render_schemas


def test_committed_json_schemas_match_the_models():
    rendered = render_schemas()
    committed = {p.name: p.read_text(encoding="utf-8") for p in JSON_DIR.glob("*.json")}
    stale = sorted(set(committed) - set(rendered))
    missing = sorted(set(rendered) - set(committed))
    changed = sorted(n for n in set(rendered) & set(committed) if rendered[n] != committed[n])
    assert not (stale or missing or changed), (
        f"schemas/json is out of date (stale {stale}, missing {missing}, changed {changed}): "
        "run `unstuck schemas export`"
    )


def test_every_event_type_has_a_payload_schema_file():
    names = {p.name for p in JSON_DIR.glob("event.*.json")}
    assert names == {f"event.{t}.json" for t in EVENT_TYPES}


def test_applicant_id_number_and_phone_never_appear_unmasked_in_repr_or_logs(caplog):
    intake = CaseIntake.model_validate(sample("03"))
    text = repr(intake) + str(intake) + repr(intake.applicant)
    assert "210602196505123018" not in text and "13841523366" not in text
    assert "2106**********3018" in text
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("opened %s", intake)
    assert "210602196505123018" not in caplog.text


def test_the_json_record_keeps_the_full_identifier():
    intake = CaseIntake.model_validate(sample("03"))
    assert json.loads(intake.model_dump_json())["applicant"]["id_number"] == "210602196505123018"


@pytest.mark.parametrize(
    ("outcome", "missing"),
    [
        ("cannot", "legal_basis"),
        ("not_ours", "belongs_to"),
        ("accepted", "expected_date"),
        ("need_materials", "materials"),
    ],
)
def test_a_reply_must_carry_the_field_its_outcome_needs(outcome, missing):
    with pytest.raises(ValidationError, match=missing):
        CoordinationReply(request_id="DD-1-c1", department="scjg", outcome=outcome, message="m", handler="h")


def test_not_ours_must_name_another_department():
    with pytest.raises(ValidationError, match="replying department itself"):
        CoordinationReply(
            request_id="DD-1-c1",
            department="scjg",
            outcome="not_ours",
            message="m",
            handler="h",
            belongs_to="scjg",
        )


@pytest.mark.parametrize("bad", ["a.b", "a b", "a*", "a>", ""])
def test_department_codes_and_case_ids_must_be_one_subject_token(bad):
    with pytest.raises(ValidationError):
        CaseIntake.model_validate({**sample("01"), "department": bad})
    with pytest.raises(ValidationError):
        Envelope(
            event_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
            case_id=bad,
            seq=1,
            type="case.opened",
            at="2026-09-28T01:00:00Z",
            actor="w",
            data={},
            prev_hash="",
            hash="",
        )


def test_an_older_case_closed_event_is_upcast_before_use():
    payload = parse_payload(
        "case.closed", {"outcome": "resolved", "explanation": "x", "closed_by": "w"}, version=1
    )
    assert payload.on_time is True


def test_an_unknown_event_type_is_a_schema_error_not_a_crash():
    with pytest.raises(EventSchemaError, match="not a known event type"):
        parse_payload("case.teleported", {})
    with pytest.raises(EventSchemaError, match="newer than this code"):
        parse_payload("case.opened", {}, version=99)


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        CaseIntake.model_validate({**sample("01"), "colour": "red"})


def test_deadline_is_a_date_in_requests():
    from unstuck.testing import coordination_request

    assert coordination_request("scjg").deadline == date(2026, 10, 9)

"""The wire contract: JSON Schemas in step with the models, personal identifiers masked."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest
from pydantic import ValidationError

from conftest import ROOT, sample
from unstuck.cli.schemas import render_cases_doc
from unstuck.config import DEFAULT_DEPARTMENTS
from unstuck.schemas import Applicant, CaseIntake, CoordinationReply, Envelope, casedoc, parse_payload
from unstuck.schemas.api import OpenCase
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


def test_committed_case_format_doc_matches_the_schema_and_the_sample_cases():
    committed = (ROOT / "docs" / "cases.md").read_text(encoding="utf-8")
    assert committed == render_cases_doc(), "docs/cases.md is out of date: run `unstuck schemas export`"


def test_case_format_doc_has_a_row_per_field_with_type_required_description_and_constraints():
    text = render_cases_doc()
    rows = {
        line.split(" | ")[0].removeprefix("| "): line for line in text.splitlines() if line.startswith("| `")
    }
    fields = [*OpenCase.model_fields, *(f"applicant.{name}" for name in Applicant.model_fields)]
    assert [f"`{name}`" for name in fields] == [key for key in rows if not key.endswith(".json`")]
    assert rows["`department`"] == (
        "| `department` | string | yes | the code of that window's department (原窗口所屬部門), e.g. "
        "chengguan; a department the broker knows | matches `^[a-z][a-z0-9_]{0,31}$` |"
    )
    assert rows["`channel`"] == (
        "| `channel` | string (Channel) | no | how the matter reached the window (受理渠道) | one of "
        "`window`, `phone`, `online`, `enterprise`; default `window` |"
    )
    assert rows["`category`"].endswith(
        "| one of `cannot`, `hard`, `refused`, `guided`; may be null or left out |"
    )
    assert rows["`facts`"].endswith(
        "| at most 50 entries; names match `^[a-z][a-z0-9_]{0,63}$`; values: string or integer from "
        "-9007199254740991 to 9007199254740991 or boolean |"
    )
    assert rows["`applicant.phone`"].startswith("| `applicant.phone` | string or null | no | ")
    assert rows["`applicant.phone`"].endswith(
        "| personal data: masked wherever shown; may be null or left out |"
    )
    assert rows["`owner`"].endswith("| matches `^[^\\s.*>]+$`; 1 to 64 characters |")


def test_case_format_doc_embeds_every_sample_case_as_it_is():
    text = render_cases_doc()
    samples = sorted((ROOT / "examples" / "cases").glob("*.json"))
    assert len(samples) == 13
    for path in samples:
        block = f"### {path.name}\n\n```json\n{path.read_text(encoding='utf-8').rstrip()}\n```\n"
        assert block in text, path.name
    assert "| `05-scjg-guided-food-permit.json` | 食品經營許可 | `scjg` | `guided` |" in text


def test_case_format_doc_names_the_default_departments_it_says_the_broker_knows():
    text = render_cases_doc()
    assert "one of its defaults (`renshe`, `scjg`,\n  `chengguan`)" in text
    assert sorted(DEFAULT_DEPARTMENTS) == ["chengguan", "renshe", "scjg"]


def test_case_format_doc_refuses_a_sample_the_broker_would_refuse():
    body = sample("01")
    body["applicant"]["id_card"] = body["applicant"].pop("id_number")
    with pytest.raises(
        ValueError, match=r"example 99-typo\.json is not a valid case file: applicant\.id_number: "
    ):
        casedoc.render([("99-typo.json", json.dumps(body, ensure_ascii=False))])


def test_every_event_type_has_a_payload_schema_file():
    names = {p.name for p in JSON_DIR.glob("event.*.json")}
    assert names == {f"event.{t}.json" for t in EVENT_TYPES}


def test_applicant_id_number_and_phone_never_appear_unmasked_in_repr_or_logs(caplog):
    intake = CaseIntake.model_validate(sample("03"))
    text = repr(intake) + str(intake) + repr(intake.applicant)
    assert "210618196505123018" not in text and "13841523366" not in text
    assert "2106**********3018" in text
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("opened %s", intake)
    assert "210618196505123018" not in caplog.text


def test_the_json_record_keeps_the_full_identifier():
    intake = CaseIntake.model_validate(sample("03"))
    assert json.loads(intake.model_dump_json())["applicant"]["id_number"] == "210618196505123018"


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

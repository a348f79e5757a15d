"""The language-neutral contract: schemas/asyncapi.yaml stays in step with the models and the subjects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unstuck.broker import API_VERBS
from unstuck.cli import main
from unstuck.cli.schemas import render_cases_doc
from unstuck.schemas import CoordinationReply, CoordinationRequest
from unstuck.schemas.asyncapi import API_REQUESTS, ASYNCAPI_FILE, render
from unstuck.schemas.events import EVENT_TYPES
from unstuck.schemas.export import JSON_DIR
from unstuck.schemas.subjects import coordinate_subject, department_queue

ROOT = Path(__file__).resolve().parents[1]


def load(text: str) -> dict[str, Any]:
    """Parse the document: YAML comments, then JSON (which is YAML 1.2)."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return json.loads(body)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_committed_asyncapi_yaml_matches_the_models():
    committed = (ROOT / "schemas" / "asyncapi.yaml").read_text(encoding="utf-8")
    assert committed == render(), "schemas/asyncapi.yaml is stale: run `unstuck schemas export`"
    assert ASYNCAPI_FILE.read_text(encoding="utf-8") == committed


def test_asyncapi_document_parses_and_every_reference_resolves():
    doc = load(render())
    assert doc["asyncapi"] == "3.0.0"
    all_refs = refs(doc)
    assert len(all_refs) > 100
    for ref in all_refs:
        resolve(doc, ref)


def test_operations_use_messages_of_their_own_channels():
    doc = load(render())
    for name, op in doc["operations"].items():
        channel = op["channel"]["$ref"]
        for message in op["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), name
        if "reply" in op:
            reply_channel = op["reply"]["channel"]["$ref"]
            for message in op["reply"]["messages"]:
                assert message["$ref"].startswith(reply_channel + "/messages/"), name


def test_channels_come_from_the_subject_table_and_the_broker_verbs():
    doc = load(render())
    coordinate = doc["channels"]["departmentCoordinate"]
    assert coordinate["address"] == coordinate_subject("{department}")
    assert doc["operations"]["answerCoordination"]["bindings"]["nats"]["queue"] == department_queue(
        "{department}"
    )
    api_addresses = {
        c["address"] for c in doc["channels"].values() if str(c["address"]).startswith("unstuck.api.")
    }
    assert api_addresses == {f"unstuck.api.{verb}" for verb in API_VERBS}
    assert set(API_REQUESTS) == set(API_VERBS)
    assert set(doc["channels"]["caseEvents"]["messages"]) == {f"event.{t}" for t in EVENT_TYPES}


def test_coordination_schemas_agree_with_the_json_schema_files():
    doc = load(render())
    schemas = doc["components"]["schemas"]
    for model, stem in (
        (CoordinationRequest, "coordination-request"),
        (CoordinationReply, "coordination-reply"),
    ):
        exported = json.loads((JSON_DIR / f"{stem}.json").read_text(encoding="utf-8"))
        in_asyncapi = schemas[model.__name__]
        assert in_asyncapi["required"] == exported["required"]
        assert set(in_asyncapi["properties"]) == set(exported["properties"])
        assert in_asyncapi["additionalProperties"] is False


def test_schemas_export_writes_json_schemas_the_asyncapi_document_and_the_case_format(tmp_path, capsys):
    target, cases = tmp_path / "asyncapi.yaml", tmp_path / "cases.md"
    argv = ["schemas", "export", "--dir", str(tmp_path / "json"), "--asyncapi", str(target)]
    assert main([*argv, "--cases-doc", str(cases)]) == 0
    assert target.read_text(encoding="utf-8") == render()
    assert (tmp_path / "json" / "coordination-request.json").is_file()
    assert cases.read_text(encoding="utf-8") == render_cases_doc()
    out = capsys.readouterr().out
    assert "AsyncAPI" in out
    assert f"wrote the case file format to {cases}" in out

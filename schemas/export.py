"""Write the contract models as JSON Schema files (``unstuck schemas export``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from . import api
from .case import CaseIntake
from .coordination import AdapterError, CoordinationReply, CoordinationRequest
from .department import Department
from .events import EVENT_TYPES, Envelope

JSON_DIR = Path(__file__).parent / "json"


def contract_models() -> dict[str, type[BaseModel]]:
    """Every model of the contract, by the file stem it is exported under."""
    models: dict[str, type[BaseModel]] = {
        "case-intake": CaseIntake,
        "department": Department,
        "coordination-request": CoordinationRequest,
        "coordination-reply": CoordinationReply,
        "adapter-error": AdapterError,
        "event-envelope": Envelope,
        "api-reply": api.ApiReply,
    }
    for event_type, model in EVENT_TYPES.items():
        models["event." + event_type] = model
    for request in api.API_REQUESTS.values():
        if request is not None:
            models["api." + request.__name__] = request
    return models


def render_schemas() -> dict[str, str]:
    """File name → JSON text, exactly as exported."""
    out = {}
    for stem, model in contract_models().items():
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://unstuck.example/schemas/{stem}.json"
        out[f"{stem}.json"] = json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    return out


def export(directory: Path = JSON_DIR) -> list[Path]:
    """Write every schema file into ``directory`` and remove stale ones; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_schemas()
    for stale in directory.glob("*.json"):
        if stale.name not in rendered:
            stale.unlink()
    written = []
    for name, text in rendered.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

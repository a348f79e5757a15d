"""The contract as an AsyncAPI 3.0 document (``schemas/asyncapi.yaml``), generated from the models
and the subject table, so a department system in Java, Go or JavaScript can answer too.

The file is JSON, which is YAML 1.2: any YAML or JSON parser reads it, and it is byte-for-byte
reproducible from the models (a test regenerates it and compares). ``unstuck schemas export``
writes it beside the JSON Schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import api
from .api import API_REQUESTS
from .case import CaseIntake
from .common import CASE_ID_PATTERN, DEPARTMENT_CODE_PATTERN
from .coordination import AdapterError, CoordinationReply, CoordinationRequest
from .department import Department
from .events import EVENT_TYPES, Envelope
from .subjects import (
    BROKER_QUEUE,
    FORMAT_METADATA_KEY,
    STORAGE_FORMAT,
    STREAM,
    api_subject,
    case_subject,
    coordinate_subject,
    department_queue,
    notify_subject,
)

ASYNCAPI_FILE = Path(__file__).parent / "asyncapi.yaml"
CONTRACT_VERSION = "0.1.0"
REF = "#/components/schemas/{model}"
NATS_BINDING_VERSION = "0.1.0"


NOTIFICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Notification",
    "description": "A message for people: 催辦, 督辦, escalation, extension, review, closing. Stored in the "
    "stream UNSTUCK_NOTIFY (Nats-Msg-Id: its id) and delivered by `unstuck notify` (docs/notifications.md).",
    "required": ["id", "case_id", "type", "audience", "at", "to", "text", "data"],
    "properties": {
        "id": {"type": "string", "description": "<event_id>:<audience>, unique per notification"},
        "case_id": {"type": "string", "pattern": CASE_ID_PATTERN},
        "audience": {"type": "string", "description": "the subject's last token, e.g. applicant"},
        "to": {
            "type": "object",
            "description": "whom it is for: staff ids, or the applicant's phone and email (in full: only "
            "the notifier reads the stream)",
            "properties": {
                "staff": {"type": "array", "items": {"type": "string"}},
                "phone": {"type": "string"},
                "email": {"type": "string"},
            },
        },
        "type": {"type": "string", "description": "the event type that caused it, e.g. case.escalated"},
        "at": {"type": "string", "format": "date-time"},
        "text": {"type": "string", "description": "the message in Chinese, ready to send"},
        "data": {"type": "object", "description": "the event's payload, without personal data"},
    },
}

EMPTY_REQUEST: dict[str, Any] = {
    "type": "object",
    "title": "EmptyRequest",
    "description": "no fields: send {}",
    "additionalProperties": False,
}


def _camel(verb: str) -> str:
    return "".join(part.capitalize() for part in verb.replace("_", ".").split("."))


def _schemas() -> tuple[dict[str, Any], dict[str, str]]:
    """components.schemas and the name each model got there."""
    models: list[type[BaseModel]] = [
        CoordinationRequest,
        CoordinationReply,
        AdapterError,
        Department,
        CaseIntake,
        Envelope,
        api.ApiReply,
        *{m for m in API_REQUESTS.values() if m is not None},
        *EVENT_TYPES.values(),
    ]
    unique = sorted(set(models), key=lambda m: m.__name__)
    keys, top = models_json_schema([(m, "validation") for m in unique], ref_template=REF)
    names = {m.__name__: keys[(m, "validation")]["$ref"].rsplit("/", 1)[-1] for m in unique}
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Notification"] = NOTIFICATION_SCHEMA
    schemas["EmptyRequest"] = EMPTY_REQUEST
    for event_type, model in EVENT_TYPES.items():
        schemas["Event." + event_type] = {
            "title": f"Event {event_type}",
            "description": (model.__doc__ or "").strip().splitlines()[0],
            "allOf": [
                {"$ref": REF.format(model=names["Envelope"])},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": event_type},
                        "data": {"$ref": REF.format(model=names[model.__name__])},
                    },
                },
            ],
        }
    return dict(sorted(schemas.items())), names


def _message(name: str, title: str, summary: str, schema: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": REF.format(model=schema)},
        **extra,
    }


def build() -> dict[str, Any]:
    """The AsyncAPI document as a dict."""
    schemas, names = _schemas()
    messages: dict[str, Any] = {
        "CoordinationRequest": _message(
            "CoordinationRequest",
            "Coordination request",
            "The broker asks a department; request_id is stable across retries (answer repeats the same).",
            names["CoordinationRequest"],
            description=(
                "Answer before `reply_by` (an instant, UTC) or not at all: after it the broker has stopped "
                "waiting. `deadline` is the working day by which the case must be settled (the 1-3-5 rule)."
            ),
        ),
        "CoordinationReply": _message(
            "CoordinationReply",
            "Coordination reply",
            "The department's answer: resolved, accepted (expected_date), cannot (legal_basis), "
            "not_ours (belongs_to) or need_materials (materials).",
            names["CoordinationReply"],
        ),
        "AdapterError": _message(
            "AdapterError",
            "Adapter error",
            "A request the department cannot parse: a NATS micro error reply "
            "(headers Nats-Service-Error-Code 400 and Nats-Service-Error) with this body.",
            names["AdapterError"],
            headers={
                "type": "object",
                "properties": {
                    "Nats-Service-Error-Code": {"type": "string", "examples": ["400", "500"]},
                    "Nats-Service-Error": {"type": "string"},
                },
            },
        ),
        "ApiReply": _message(
            "ApiReply",
            "API reply",
            'Every API verb answers {"ok": true, "result": ...} or {"ok": false, "error": {...}}.',
            names["ApiReply"],
        ),
        "Notification": _message(
            "Notification", "Notification", NOTIFICATION_SCHEMA["description"], "Notification"
        ),
        "EmptyRequest": _message("EmptyRequest", "Empty request", "A verb without fields.", "EmptyRequest"),
    }
    for verb, model in API_REQUESTS.items():
        if model is not None:
            messages["Api." + verb] = _message(
                model.__name__,
                f"{verb} request",
                (model.__doc__ or verb).strip().splitlines()[0],
                names[model.__name__],
            )
    for event_type in EVENT_TYPES:
        messages["Event." + event_type] = _message(
            event_type,
            f"Event {event_type}",
            schemas["Event." + event_type]["description"],
            "Event." + event_type,
        )

    def msg_ref(key: str) -> dict[str, str]:
        return {"$ref": f"#/components/messages/{key}"}

    channels: dict[str, Any] = {
        "departmentCoordinate": {
            "address": coordinate_subject("{department}"),
            "title": "Coordination requests to one department",
            "description": (
                "Request/reply. Every adapter instance of a department subscribes in the queue group "
                f"`{department_queue('{department}')}`, so each request reaches exactly one instance. Serve it as a "
                "NATS micro service named `unstuck-{department}` so `$SRV.PING`/`$SRV.STATS` find it."
            ),
            "parameters": {
                "department": {
                    "description": f"the department code, one subject token matching {DEPARTMENT_CODE_PATTERN}",
                    "examples": ["renshe", "scjg", "chengguan", "zhujian"],
                }
            },
            "messages": {"coordinationRequest": msg_ref("CoordinationRequest")},
        },
        "coordinationReplyInbox": {
            "address": None,
            "title": "The broker's reply inbox",
            "description": "The reply subject of the request message (a NATS inbox), dynamic.",
            "messages": {
                "coordinationReply": msg_ref("CoordinationReply"),
                "adapterError": msg_ref("AdapterError"),
            },
        },
        "caseEvents": {
            "address": case_subject("{case_id}"),
            "title": "The events of one case",
            "description": (
                f"JetStream stream `{STREAM}` (storage format {STORAGE_FORMAT}, named in the stream's "
                f"metadata `{FORMAT_METADATA_KEY}`), written by the broker only, never edited. Each message "
                "is one decision: the events one command produced, one per line, each line the canonical "
                "JSON of an event envelope (RFC 8785, JCS: keys sorted by UTF-16 code units, no spaces, "
                "UTF-8, numbers as ECMAScript writes them); `hash` is sha256 over those bytes without "
                "`hash`, and `seq` and `prev_hash` chain the events of a case across decisions. Headers: "
                "`Nats-Msg-Id` is the decision id (its first event's `event_id`), "
                "`Nats-Expected-Last-Subject-Sequence` the case's previous message. The messages listed "
                "here are the events a line can hold."
            ),
            "parameters": {
                "case_id": {
                    "description": f"the case id, one subject token matching {CASE_ID_PATTERN}",
                    "examples": ["DD-20261127-0001"],
                }
            },
            "messages": {"event." + t: msg_ref("Event." + t) for t in EVENT_TYPES},
        },
        "notifications": {
            "address": notify_subject("{audience}"),
            "title": "Notifications for people",
            "parameters": {
                "audience": {
                    "description": "who it is for",
                    "examples": ["applicant", "owner", "duty_leader"],
                }
            },
            "messages": {"notification": msg_ref("Notification")},
        },
        "apiReplyInbox": {
            "address": None,
            "title": "The caller's reply inbox",
            "messages": {"apiReply": msg_ref("ApiReply")},
        },
    }
    operations: dict[str, Any] = {
        "answerCoordination": {
            "action": "receive",
            "title": "A department adapter answers a coordination request",
            "channel": {"$ref": "#/channels/departmentCoordinate"},
            "messages": [{"$ref": "#/channels/departmentCoordinate/messages/coordinationRequest"}],
            "bindings": {
                "nats": {"queue": department_queue("{department}"), "bindingVersion": NATS_BINDING_VERSION}
            },
            "reply": {
                "channel": {"$ref": "#/channels/coordinationReplyInbox"},
                "messages": [
                    {"$ref": "#/channels/coordinationReplyInbox/messages/coordinationReply"},
                    {"$ref": "#/channels/coordinationReplyInbox/messages/adapterError"},
                ],
            },
        },
        "followCaseEvents": {
            "action": "receive",
            "title": "Auditors and replicas read the events of cases (ordered consumer on the stream)",
            "channel": {"$ref": "#/channels/caseEvents"},
            "messages": [{"$ref": f"#/channels/caseEvents/messages/event.{t}"} for t in EVENT_TYPES],
        },
        "receiveNotifications": {
            "action": "receive",
            "title": "`unstuck notify` reads the stored notifications (durable consumer notifier) and delivers them",
            "channel": {"$ref": "#/channels/notifications"},
            "messages": [{"$ref": "#/channels/notifications/messages/notification"}],
        },
    }
    for verb, model in API_REQUESTS.items():
        channel = "api" + _camel(verb)
        key = "apiRequest"
        channels[channel] = {
            "address": api_subject(verb),
            "title": f"API {verb}",
            "messages": {key: msg_ref("Api." + verb if model is not None else "EmptyRequest")},
        }
        operations["call" + _camel(verb)] = {
            "action": "send",
            "title": f"Window staff and front ends call {verb}",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{key}"}],
            "bindings": {"nats": {"bindingVersion": NATS_BINDING_VERSION}},
            "reply": {
                "channel": {"$ref": "#/channels/apiReplyInbox"},
                "messages": [{"$ref": "#/channels/apiReplyInbox/messages/apiReply"}],
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "unstuck coordination bus",
            "version": CONTRACT_VERSION,
            "description": (
                "The wire contract of the 辦不成事 window's coordination bus on NATS. Department adapters "
                "answer `answerCoordination`; window front ends call the broker's API "
                f"(queue group `{BROKER_QUEUE}`); auditors follow the case events. Operations are "
                "described from the side of the application that connects to the broker. Generated from "
                "the pydantic models; the same schemas are in schemas/json/."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "a local nats-server; `unstuck serve` prints the embedded server's address",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


HEADER = (
    "# unstuck coordination bus: AsyncAPI 3.0. Generated by `unstuck schemas export` from the models;\n"
    "# do not edit by hand. JSON is YAML 1.2, so YAML and JSON parsers both read this file.\n"
)


def render() -> str:
    """The file's text, exactly as exported."""
    return HEADER + json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


def export(path: Path = ASYNCAPI_FILE) -> Path:
    """Write the document (only if it changed); returns its path."""
    text = render()
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path

"""The envelope every stored event carries, and the check of its fields (not its payload).

The broker's follower and the auditor's replayer judge a stored event's envelope with the same
function, so an event the auditor would report is never applied by the broker.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

ENVELOPE_KEYS = frozenset(
    {"event_id", "case_id", "seq", "type", "at", "actor", "data", "prev_hash", "hash", "v", "auth"}
)
_EVENT_ID = re.compile(r"[0-9A-Za-z_-]{16,64}")
_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TYPE = re.compile(r"[a-z_]+\.[a-z_]+")
_ACTOR = re.compile(r"[^\s.*>]{1,64}")
_HASH = re.compile(r"(?:[0-9a-f]{64})?")
OPTIONAL_KEYS = frozenset({"v", "auth"})  # v: 1 when absent; auth: the actor's identity was not checked
AUTH_VALUES = frozenset({"nats", "web", "online", "claimed"})
HEX64 = re.compile(r"[0-9a-f]{64}")


def envelope_problem(obj: dict[str, Any]) -> str | None:
    """What is wrong with the envelope fields (not the payload), or None."""
    keys = obj.keys()
    if keys != ENVELOPE_KEYS:
        missing = sorted(ENVELOPE_KEYS - keys - OPTIONAL_KEYS)
        extra = sorted(keys - ENVELOPE_KEYS)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing field(s) {', '.join(missing)}")
            if extra:
                parts.append(f"unknown field(s) {', '.join(extra)}")
            return "; ".join(parts)
    checks = (
        ("event_id", _EVENT_ID),
        ("case_id", _CASE_ID),
        ("type", _TYPE),
        ("actor", _ACTOR),
        ("prev_hash", _HASH),
        ("hash", _HASH),
    )
    for name, pattern in checks:
        value = obj[name]
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return f"{name} {value!r} is not valid"
    seq = obj["seq"]
    if type(seq) is not int or seq < 1:
        return f"seq {seq!r} is not a positive integer"
    v = obj.get("v", 1)
    if type(v) is not int or v < 1:
        return f"v {v!r} is not a positive integer"
    if "auth" in obj and obj["auth"] not in AUTH_VALUES:
        return f"auth {obj['auth']!r} is not one of {', '.join(sorted(AUTH_VALUES))}"
    if not isinstance(obj["data"], dict):
        return "data is not an object"
    at = obj["at"]
    if not isinstance(at, str):
        return f"at {at!r} is not a timestamp"
    try:
        instant = datetime.fromisoformat(at)
    except ValueError:
        return f"at {at!r} is not an ISO 8601 timestamp"
    if instant.tzinfo is None:
        return f"at {at!r} has no time zone"
    return None

"""Canonical JSON and the per-case hash chain."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the one byte form of a value."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def event_hash(fields_without_hash: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of every envelope field but ``hash``."""
    return hashlib.sha256(canonical_json(fields_without_hash)).hexdigest()


def seal(fields_without_hash: dict[str, Any]) -> tuple[bytes, str]:
    """The stored body of an event and its hash.

    The content is encoded once: the canonical JSON of the keys sorting before ``hash`` and of those
    after it, joined without ``hash`` for the digest and with it for the body (the same bytes as
    encoding the whole envelope twice; a hot path, one encoding per appended event).
    """
    if "hash" in fields_without_hash:
        digest = event_hash(fields_without_hash)
        return canonical_json({**fields_without_hash, "hash": digest}), digest
    head = canonical_json({k: v for k, v in fields_without_hash.items() if k < "hash"})[1:-1]
    tail = canonical_json({k: v for k, v in fields_without_hash.items() if k > "hash"})[1:-1]
    sep = b"," if head and tail else b""
    digest = hashlib.sha256(b"{" + head + sep + tail + b"}").hexdigest()
    member = b'"hash":"' + digest.encode() + b'"'
    body = b"{" + (head + b"," if head else b"") + member + (b"," + tail if tail else b"") + b"}"
    return body, digest


def check_body(body: bytes) -> tuple[dict[str, Any], list[str]]:
    """Parse a stored body and list what is wrong with its bytes: not canonical, hash mismatch."""
    problems: list[str] = []
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return {}, [f"body is not JSON: {exc}"]
    if not isinstance(obj, dict):
        return {}, ["body is not a JSON object"]
    if canonical_json(obj) != body:
        problems.append("body bytes are not canonical JSON (edited after sealing?)")
    stored = obj.get("hash")
    rest = {k: v for k, v in obj.items() if k != "hash"}
    if stored != event_hash(rest):
        problems.append("hash does not match the event's content")
    return obj, problems

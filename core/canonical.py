"""Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) and the per-case hash chain.

An event's ``hash`` is sha256 over the JCS bytes of its envelope without ``hash``; its stored body is
the JCS bytes of the envelope with it. JCS is what stock libraries in other languages write (numbers
as ECMAScript prints them, object keys ordered by their UTF-16 code units, UTF-8, no whitespace), so
an auditor checks a record with any of them and none of this code.

``rfc8785`` is the reference encoder. ``orjson`` writes the very same bytes for most values and is
several times faster: it differs from JCS only for floats (``1.0`` where JCS writes ``1``, ``1e+16``
where JCS writes ``10000000000000000``), for NaN and Infinity (``null`` where JCS refuses), for
integers beyond ±(2^53-1) (refused here by its strict-integer option) and in the order of keys that
hold a character beyond U+FFFF (orjson orders by code point, JCS by UTF-16 code unit; the two orders
differ only between such a character, a surrogate pair in UTF-16, and one in U+E000-U+FFFF). Its
output is taken only when a scan of those bytes finds none of these; anything the scan is unsure of
is encoded again by the reference.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import orjson
import rfc8785

_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER  # an integer beyond ±(2^53-1) raises: the reference refuses it too
    # what JSON has no type for goes to the reference (which refuses it), not to orjson's own forms
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)

_ROLES = {
    ord('"'): ord("Q"),
    ord(":"): ord("S"),
    **dict.fromkeys(b",[", ord("C")),
    **dict.fromkeys(b"-0123456789n", ord("0")),
    **dict.fromkeys(b".eEu", ord("E")),
    **dict.fromkeys(range(0xF0, 0xF5), ord("H")),
}
_SHAPE = bytes(_ROLES.get(b, ord(".")) for b in range(256))
"""Each byte of orjson's output to its role: Q a quote; S a colon; C a byte an array value follows
(``,`` ``[``); 0 a digit, a minus sign or an ``n``; E a byte that makes a number a float (``.`` ``e``
``E``) or a ``u``; H the first byte of a character beyond U+FFFF in UTF-8; ``.`` any other byte."""

_FLOAT = re.compile(rb"(?:QS|C)0+E")
"""A float or a null in the output, as ``_SHAPE`` maps it: where a value starts (after a key's closing
quote and its colon, or after ``,`` or ``[``), digits (and a sign) then ``.`` or an exponent, or
``nu``. orjson writes every float so, and a NaN or an Infinity as ``null``. A colon inside a string
(a timestamp's ``13:42:13.869``) follows no quote, so it is not taken for one; a string that happens
to look alike (``"a,1.5"``) only costs the reference encoding."""

_KEY_BEYOND_BMP = re.compile(rb'[{,]"(?:[^"\\\xf0-\xf4]|\\.)*+[\xf0-\xf4](?:[^"\\]|\\.)*+":', re.DOTALL)
"""An object key holding a character beyond U+FFFF, in orjson's output (read from any key's opening
quote, escapes and all: a real one always matches)."""


def _orjson_if_jcs(obj: Any) -> bytes | None:
    """orjson's bytes for ``obj`` when they are its JCS bytes, None when that is not certain."""
    try:
        out = orjson.dumps(obj, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:  # a type, key or integer orjson will not write: the reference decides
        return None
    shape = out.translate(_SHAPE)
    if _FLOAT.search(shape) is not None:
        return None
    if b"H" in shape and _KEY_BEYOND_BMP.search(out) is not None:
        return None
    return out


def canonical_json(obj: Any) -> bytes:
    """The RFC 8785 (JCS) bytes of a JSON value: the one byte form of it.

    Raises ValueError (``rfc8785.CanonicalizationError``) for what JCS has no form for: NaN or
    Infinity, an integer beyond ±(2^53-1), a string with a lone surrogate, a key that is not a
    string, a value of a type JSON does not have (pass JSON values: orjson still writes a UUID or a
    plain Enum member inside a dict or list, where the reference refuses them).
    """
    if type(obj) is dict or type(obj) is list:
        out = _orjson_if_jcs(obj)
        if out is not None:
            return out
    return rfc8785.dumps(obj)


def event_hash(fields_without_hash: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of every envelope field but ``hash``."""
    return hashlib.sha256(canonical_json(fields_without_hash)).hexdigest()


def seal(fields_without_hash: dict[str, Any]) -> tuple[bytes, str]:
    """The stored body of an event and its hash: the canonical JSON of the envelope with ``hash`` set
    to sha256 over the canonical JSON of the fields given (a ``hash`` among them is hashed, then
    replaced)."""
    digest = event_hash(fields_without_hash)
    return canonical_json({**fields_without_hash, "hash": digest}), digest


def _as_doubles(value: Any) -> Any:
    """``value`` with every integer replaced by the double it denotes, as JSON parsers outside Python
    read numbers (OverflowError past the largest double)."""
    if type(value) is int:
        return float(value)
    if type(value) is dict:
        return {k: _as_doubles(v) for k, v in value.items()}
    if type(value) is list:
        return [_as_doubles(v) for v in value]
    return value


def recanonical(parsed: Any) -> bytes | None:
    """The JCS bytes of a value parsed from stored bytes by ``json.loads``, as any JCS verifier
    computes them; None when JCS has no form for the value.

    Python's parser reads an integer token as an exact int, where parsers elsewhere read a double:
    a float of 2^53 or more is written by JCS as an integer token, so it is read back here as the
    double it is. NaN and Infinity, which Python's parser accepts and JSON does not have, and lone
    surrogates have no canonical form.
    """
    try:
        return canonical_json(parsed)
    except rfc8785.IntegerDomainError:
        try:
            return canonical_json(_as_doubles(parsed))
        except (ValueError, OverflowError):
            return None
    except ValueError:
        return None


NOT_CANONICAL = "body bytes are not canonical JSON (edited after sealing?)"
HASH_MISMATCH = "hash does not match the event's content"


def check_body(body: bytes) -> tuple[dict[str, Any], list[str]]:
    """Parse a stored body and list what is wrong with its bytes: not canonical, hash mismatch."""
    problems: list[str] = []
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return {}, [f"body is not JSON: {exc}"]
    if not isinstance(obj, dict):
        return {}, ["body is not a JSON object"]
    if recanonical(obj) != body:
        problems.append(NOT_CANONICAL)
    stored = obj.get("hash")
    content = recanonical({k: v for k, v in obj.items() if k != "hash"})
    if content is None or stored != hashlib.sha256(content).hexdigest():
        problems.append(HASH_MISMATCH)
    return obj, problems

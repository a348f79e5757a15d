"""Canonical JSON, sealing and the body check (core/canonical.py) against bytes written by hand.

Each digest is sha256 over a byte string spelled out in the test, so a change to the byte form of
an event (key order, separators, escaping, where ``hash`` sits) fails here first.
"""

from __future__ import annotations

import hashlib

import pytest

from unstuck.canonical import canonical_json, check_body, event_hash, seal


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_canonical_json_sorts_keys_drops_spaces_and_keeps_chinese_as_utf8():
    value = {"b": [1, 2], "a": "中文", "c": {"y": None, "x": True}}
    assert canonical_json(value) == '{"a":"中文","b":[1,2],"c":{"x":true,"y":null}}'.encode()


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


def test_event_hash_is_sha256_of_the_canonical_bytes():
    assert event_hash({"seq": 1, "actor": "w-zhang"}) == sha('{"actor":"w-zhang","seq":1}')


@pytest.mark.parametrize(
    ("fields", "content", "body"),
    [
        # keys on both sides of "hash"
        ({"seq": 2, "actor": "w"}, '{"actor":"w","seq":2}', '{"actor":"w","hash":"%s","seq":2}'),
        # keys only before "hash"
        ({"at": "t", "case_id": "C"}, '{"at":"t","case_id":"C"}', '{"at":"t","case_id":"C","hash":"%s"}'),
        # keys only after "hash"
        ({"type": "x", "seq": 1}, '{"seq":1,"type":"x"}', '{"hash":"%s","seq":1,"type":"x"}'),
        # nothing but the hash
        ({}, "{}", '{"hash":"%s"}'),
    ],
)
def test_seal_places_the_hash_of_the_content_in_key_order(fields, content, body):
    stored, digest = seal(fields)
    assert digest == sha(content)
    assert stored == (body % digest).encode()


def test_seal_of_fields_that_already_carry_a_hash_hashes_them_whole_and_replaces_it():
    stored, digest = seal({"a": 1, "hash": "old"})
    assert digest == sha('{"a":1,"hash":"old"}')
    assert stored == f'{{"a":1,"hash":"{digest}"}}'.encode()


def test_a_sealed_body_checks_clean():
    stored, digest = seal({"seq": 1, "actor": "w", "data": {"說明": "中文"}})
    obj, problems = check_body(stored)
    assert problems == []
    assert obj == {"seq": 1, "actor": "w", "data": {"說明": "中文"}, "hash": digest}


def test_a_body_with_spaces_is_not_canonical_but_its_hash_still_matches():
    digest = sha('{"a":1}')
    obj, problems = check_body(f'{{"a": 1, "hash": "{digest}"}}'.encode())
    assert obj == {"a": 1, "hash": digest}
    assert problems == ["body bytes are not canonical JSON (edited after sealing?)"]


def test_an_edited_value_breaks_the_hash():
    digest = sha('{"a":1}')
    _, problems = check_body(f'{{"a":2,"hash":"{digest}"}}'.encode())
    assert problems == ["hash does not match the event's content"]


def test_a_missing_hash_is_a_mismatch():
    _, problems = check_body(b'{"a":1}')
    assert problems == ["hash does not match the event's content"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "body is not JSON: "),
        (b"\xff\xfe{", "body is not JSON: "),
        (b"[1,2]", "body is not a JSON object"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_named_as_such(body, problem):
    obj, problems = check_body(body)
    assert obj == {}
    assert len(problems) == 1 and problems[0].startswith(problem)

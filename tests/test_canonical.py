"""Canonical JSON (RFC 8785, JCS), sealing and the body check (core/canonical.py) against bytes written
by hand.

Each digest is sha256 over a byte string spelled out in the test, so a change to the byte form of
an event (key order, separators, escaping, number form, where ``hash`` sits) fails here first. The
RFC's own examples are typed in from RFC 8785: the number samples of Appendix B, the sorting
example of section 3.2.3 and the example of sections 3.2.2 and 3.2.4.
"""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from unstuck.canonical import canonical_json, check_body, event_hash, seal

NOT_CANONICAL = "body bytes are not canonical JSON (edited after sealing?)"
HASH_MISMATCH = "hash does not match the event's content"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def double(ieee_hex: str) -> float:
    """The IEEE 754 double whose 64 bits are ``ieee_hex``, as Appendix B lists them."""
    return float(struct.unpack(">d", bytes.fromhex(ieee_hex))[0])


# --- RFC 8785 ------------------------------------------------------------------------------------

# Appendix B, "Number Serialization Samples": the double's bits and its JSON form
APPENDIX_B = [
    ("0000000000000000", "0"),  # zero
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),  # min pos number
    ("8000000000000001", "-5e-324"),  # min neg number
    ("7fefffffffffffff", "1.7976931348623157e+308"),  # max pos number
    ("ffefffffffffffff", "-1.7976931348623157e+308"),  # max neg number
    ("4340000000000000", "9007199254740992"),  # max pos int
    ("c340000000000000", "-9007199254740992"),  # max neg int
    ("4430000000000000", "295147905179352830000"),  # ~2**68
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("ieee_hex", "expected"), APPENDIX_B)
def test_rfc8785_appendix_b_number_samples(ieee_hex, expected):
    value = double(ieee_hex)
    assert canonical_json(value) == expected.encode()
    assert canonical_json({"n": value}) == b'{"n":' + expected.encode() + b"}"
    assert canonical_json([1, value, "x"]) == b"[1," + expected.encode() + b',"x"]'


@pytest.mark.parametrize("ieee_hex", ["7fffffffffffffff", "7ff0000000000000"])  # NaN, Infinity
def test_rfc8785_appendix_b_nan_and_infinity_are_refused(ieee_hex):
    with pytest.raises(ValueError):
        canonical_json({"n": double(ieee_hex)})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # ECMAScript's Number to String (RFC 8785 section 3.2.2.3): where Python's own form differs
        (1.0, "1"),
        (-0.0, "0"),
        (100.0, "100"),
        (1e16, "10000000000000000"),  # Python: 1e+16
        (1e20, "100000000000000000000"),  # below 1e21: still all digits
        (1e21, "1e+21"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),  # Python: 1e-07
        (1.5e-7, "1.5e-7"),
        (4.5, "4.5"),
        (0.002, "0.002"),
        (1e30, "1e+30"),
        (1e-27, "1e-27"),
        (0.1 + 0.2, "0.30000000000000004"),
        (2.0**60, "1152921504606847000"),  # the shortest digits that read back as 2^60
    ],
)
def test_numbers_are_written_as_ecmascript_writes_them(value, expected):
    assert canonical_json({"n": value}) == f'{{"n":{expected}}}'.encode()


def test_rfc8785_section_3_2_3_keys_are_sorted_by_utf16_code_units():
    # the input of section 3.2.3, as JSON text with its escapes
    text = (
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
        ' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control",'
        ' "\\u00f6": "Latin Small Letter O With Diaeresis"}'
    )
    expected = (
        b'{"\\r":"Carriage Return","1":"One",'
        b'"\xc2\x80":"Control",'  # U+0080
        b'"\xc3\xb6":"Latin Small Letter O With Diaeresis",'  # U+00F6
        b'"\xe2\x82\xac":"Euro Sign",'  # U+20AC
        b'"\xf0\x9f\x98\x80":"Emoji: Grinning Face",'  # U+1F600: D83D DE00 in UTF-16, so before U+FB33
        b'"\xef\xac\xb3":"Hebrew Letter Dalet With Dagesh"}'  # U+FB33
    )
    assert canonical_json(json.loads(text)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # by code point U+FFFF sorts before U+1F600; by UTF-16 code unit (D83D) after it
        ({'"\uffff': 1, '"\U0001f600': 2}, b'{"\\"\xf0\x9f\x98\x80":2,"\\"\xef\xbf\xbf":1}'),
        ({"\\\uffff": 1, "\\\U0001f600": 2}, b'{"\\\\\xf0\x9f\x98\x80":2,"\\\\\xef\xbf\xbf":1}'),
        ({'\uffff"': 1, '\U0001f600"': 2}, b'{"\xf0\x9f\x98\x80\\"":2,"\xef\xbf\xbf\\"":1}'),
        ({"\uffff\n": 1, "\U0001f600\n": 2}, b'{"\xf0\x9f\x98\x80\\n":2,"\xef\xbf\xbf\\n":1}'),
    ],
)
def test_keys_with_escapes_around_a_character_beyond_u_ffff_sort_by_utf16_code_units(value, expected):
    assert canonical_json(value) == expected


def test_rfc8785_section_3_2_2_example_gives_the_bytes_of_section_3_2_4():
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    section_3_2_4 = """
        7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
        75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
        5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
        65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
        5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
        30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d
    """
    out = canonical_json(json.loads(text))
    assert out == bytes.fromhex(section_3_2_4)
    assert (
        out
        == (
            '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
            '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
        ).encode()
    )


def test_strings_escape_only_quote_backslash_and_control_characters():
    value = {"s": '\x00\x08\t\n\x0b\x0c\r\x1f "\\/\x7f\u2028\u2029é中\U0001f600'}
    assert canonical_json(value) == (
        b'{"s":"\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f \\"\\\\/'  # short escapes, else \u00xx in lowercase
        b"\x7f\xe2\x80\xa8\xe2\x80\xa9"  # DEL, U+2028 and U+2029 as they are
        b'\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"}'  # UTF-8, never \u escapes
    )


@pytest.mark.parametrize("n", [2**53 - 1, -(2**53 - 1), 0, -1])
def test_integers_within_the_i_json_range_are_written_whole(n):
    assert canonical_json({"n": n, "m": [n]}) == f'{{"m":[{n}],"n":{n}}}'.encode()


@pytest.mark.parametrize(
    "value",
    [
        {"n": 2**53},  # beyond what a double holds exactly
        {"n": [-(2**53)]},
        {"n": 10**30},
        {"s": "lone \ud800 surrogate"},
        {"lone \udfff": 1},
        {"n": float("nan")},
        {"n": [float("inf")]},
        {"n": -float("inf")},
        {1: "a key that is not a string"},
        {"d": b"bytes"},
        float("nan"),
    ],
)
def test_what_jcs_has_no_form_for_is_a_value_error(value):
    with pytest.raises(ValueError):
        canonical_json(value)


def test_canonical_json_sorts_keys_drops_spaces_and_keeps_chinese_as_utf8():
    value = {"b": [1, 2], "a": "中文", "c": {"y": None, "x": True}}
    assert canonical_json(value) == '{"a":"中文","b":[1,2],"c":{"x":true,"y":null}}'.encode()


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


def test_event_hash_is_sha256_of_the_canonical_bytes():
    assert event_hash({"seq": 1, "actor": "w-zhang"}) == sha('{"actor":"w-zhang","seq":1}')
    assert event_hash({"seq": 1.0, "at": 1e21}) == sha('{"at":1e+21,"seq":1}')


# --- sealing ----------------------------------------------------------------------------------------


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
        # floats in JCS's form
        (
            {"seq": 1, "ratio": 1.0, "big": 1e21},
            '{"big":1e+21,"ratio":1,"seq":1}',
            '{"big":1e+21,"hash":"%s","ratio":1,"seq":1}',
        ),
        # keys beyond U+FFFF sort by their UTF-16 code units, before U+FB33; "hash" before both
        (
            {"\ufb33": 2, "\U0001f600": 1},
            '{"\U0001f600":1,"\ufb33":2}',
            '{"hash":"%s","\U0001f600":1,"\ufb33":2}',
        ),
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


def test_seal_refuses_what_jcs_has_no_form_for():
    for fields in ({"n": float("nan")}, {"n": 2**53}, {"s": "\ud800"}):
        with pytest.raises(ValueError):
            seal(fields)


# --- the body check ---------------------------------------------------------------------------------


def test_a_sealed_body_checks_clean():
    stored, digest = seal({"seq": 1, "actor": "w", "data": {"說明": "中文，全形標點"}})
    obj, problems = check_body(stored)
    assert problems == []
    assert obj == {"seq": 1, "actor": "w", "data": {"說明": "中文，全形標點"}, "hash": digest}


def test_a_body_with_spaces_is_not_canonical_but_its_hash_still_matches():
    digest = sha('{"a":1}')
    obj, problems = check_body(f'{{"a": 1, "hash": "{digest}"}}'.encode())
    assert obj == {"a": 1, "hash": digest}
    assert problems == [NOT_CANONICAL]


def test_a_body_in_pythons_number_form_is_not_canonical():
    digest = sha('{"a":1}')  # 1.0 is the number 1: JCS writes it 1, Python's json 1.0
    obj, problems = check_body(f'{{"a":1.0,"hash":"{digest}"}}'.encode())
    assert obj == {"a": 1.0, "hash": digest}
    assert problems == [NOT_CANONICAL]


def test_a_body_with_keys_in_code_point_order_is_not_canonical():
    digest = sha('{"\U0001f600":1,"\ufb33":2}')
    body = f'{{"hash":"{digest}","\ufb33":2,"\U0001f600":1}}'.encode()  # U+FB33 < U+1F600 by code point
    assert check_body(body)[1] == [NOT_CANONICAL]
    assert check_body(f'{{"hash":"{digest}","\U0001f600":1,"\ufb33":2}}'.encode())[1] == []


def test_an_edited_value_breaks_the_hash():
    digest = sha('{"a":1}')
    _, problems = check_body(f'{{"a":2,"hash":"{digest}"}}'.encode())
    assert problems == [HASH_MISMATCH]


def test_a_missing_hash_is_a_mismatch():
    _, problems = check_body(b'{"a":1}')
    assert problems == [HASH_MISMATCH]


def test_a_float_of_2_to_the_60_reads_back_as_the_double_it_is():
    # JCS writes the double 2^60 as an integer token, which Python's parser reads as an exact int; a
    # verifier elsewhere reads the double again, and so does the check
    stored, digest = seal({"n": 2.0**60})
    assert stored == f'{{"hash":"{digest}","n":1152921504606847000}}'.encode()
    assert digest == sha('{"n":1152921504606847000}')
    assert check_body(stored) == ({"hash": digest, "n": 1152921504606847000}, [])


def test_an_integer_a_double_cannot_hold_is_not_canonical():
    # 2^53 + 1 reads as the double 2^53 anywhere but in Python: its JCS form is 9007199254740992
    digest = sha('{"n":9007199254740992}')
    obj, problems = check_body(f'{{"hash":"{digest}","n":9007199254740993}}'.encode())
    assert obj["n"] == 9007199254740993
    assert problems == [NOT_CANONICAL]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_body_holding_what_json_has_no_number_for_is_neither_canonical_nor_hashed(token):
    # Python's parser takes NaN and Infinity (and 1e400 as Infinity); JSON and JCS have no such number
    _, problems = check_body(f'{{"a":{token},"hash":"{sha("{}")}"}}'.encode())
    assert problems == [NOT_CANONICAL, HASH_MISMATCH]


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

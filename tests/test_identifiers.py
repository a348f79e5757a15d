"""Applicants' identifiers: GB 11643 resident id numbers and GB 32100 credit codes, normalised and
checked at the bus API for every channel, before the daily quota counts them."""

from __future__ import annotations

import json

import pytest
from nats.aio.client import Client
from prometheus_client import generate_latest

from conftest import sample
from unstuck.broker import Broker
from unstuck.schemas.identifiers import identifier_problem, normalised_identifier, phone_problem
from unstuck.testing import ApiError, api_call

# GB 11643-1999's own example. Weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 over 1101051949123100 2:
# 7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167; 167 mod 11 = 2, and 2 maps to X.
STANDARD_EXAMPLE = "11010519491231002X"
# Unified social credit codes as published on business licences (GB 32100 check character last).
PUBLISHED_CODES = ["914403001922038216", "9144030071526726XG", "91330100716105852F"]


def test_the_standard_example_and_published_credit_codes_pass():
    assert identifier_problem("citizen", STANDARD_EXAMPLE) is None
    for code in PUBLISHED_CODES:
        assert identifier_problem("enterprise", code) is None, code


@pytest.mark.parametrize(
    ("kind", "value", "says"),
    [
        ("citizen", "11010519491231002" + "1", "校驗位"),  # one check digit off
        ("citizen", "11010519491231012X", "校驗位"),  # one digit of the sequence changed
        ("citizen", "110105194902300026", "出生日期"),  # 30 February
        ("citizen", "x", "18 位"),
        ("citizen", "1" * 30_000, "18 位"),
        ("citizen", "11010519491231002Y", "17 位數字"),
        ("enterprise", "914403001922038217", "校驗位"),
        ("enterprise", "9144030019220O8216", "O"),  # the letter O is never used
        ("enterprise", "91440300192203821", "18 位"),
    ],
)
def test_a_wrong_identifier_is_named_with_what_is_wrong(kind, value, says):
    problem = identifier_problem(kind, value)
    assert problem is not None and says in problem.zh and problem.en


def test_a_resident_id_number_is_not_taken_for_a_credit_code_nor_the_other_way():
    assert identifier_problem("enterprise", STANDARD_EXAMPLE) is not None
    assert identifier_problem("citizen", PUBLISHED_CODES[0]) is not None


@pytest.mark.parametrize(
    "typed",
    [
        "11010519491231002x",  # a lower-case x
        " 110105 19491231 002X ",  # spaces, as read out in groups
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width, from a Chinese input method
        "110105\u200b19491231002X",  # a zero-width space pasted from a web page
    ],
)
def test_typed_spellings_normalise_to_the_one_number(typed):
    assert normalised_identifier(typed) == STANDARD_EXAMPLE


@pytest.mark.parametrize(
    ("phone", "ok"),
    [
        ("13812345678", True),
        ("0415-1234567", True),
        ("+8613812345678", True),
        ("1381234567８", False),
        ("138 1234", False),
        ("call me", False),
        ("12", False),
    ],
)
def test_a_phone_number_is_digits(phone, ok):
    assert (phone_problem(phone.replace(" ", "x")) is None) is ok


async def test_the_api_refuses_a_wrong_check_digit_in_chinese_and_english_without_echoing_it(
    broker: Broker, nats_client: Client
):
    body = sample("03")  # a citizen
    good = body["applicant"]["id_number"]
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    body["applicant"]["id_number"] = wrong
    with pytest.raises(ApiError) as refused:
        await api_call(nats_client, "case.open", body)
    error = refused.value.error
    assert (error["code"], error["field"]) == ("invalid_request", "applicant.id_number")
    assert "GB 11643" in error["message"] and "校驗位" in error["message_zh"]
    assert wrong not in json.dumps(error, ensure_ascii=False)
    assert "document" in error["fix"]
    scraped = generate_latest(broker.metrics.registry).decode()
    assert 'unstuck_api_errors_total{reason="invalid_request"} 1.0' in scraped
    assert (await api_call(nats_client, "case.list", {}))["cases"] == []  # nothing stored


async def test_the_api_stores_the_normalised_number(broker: Broker, nats_client: Client):
    body = sample("03")
    plain = body["applicant"]["id_number"]
    body["applicant"]["id_number"] = " " + "".join(chr(ord(c) + 0xFEE0) for c in plain) + "\u200b"
    opened = await api_call(nats_client, "case.open", body)
    shown = await api_call(
        nats_client,
        "case.get",
        {"case_id": opened["case_id"], "reveal": True, "reveal_reason": "核對", "actor": "w-li"},
    )
    assert shown["state"]["intake"]["applicant"]["id_number"] == plain

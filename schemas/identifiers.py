"""Applicants' identifiers as the national standards define them, normalised and checked.

- A resident id number (居民身份證號碼, GB 11643-1999): 17 digits and a check digit (0-9 or X); digits
  7-14 are the date of birth.
- A unified social credit code (統一社會信用代碼, GB 32100-2015): 18 characters from
  ``0-9 A-H J-N P-R T U W-Y`` (no I, O, S, V, Z), the last a check character.

Typed or pasted values are normalised first (full-width characters folded by NFKC, spaces and
zero-width characters removed, upper case), so one applicant is one key however the number was
written; then the check digit decides. Every channel meets the same rule at the bus API, and the
daily quota per applicant counts the normalised number.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import NamedTuple

_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}

RESIDENT_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2^(17-i) mod 11
RESIDENT_CHECK = "10X98765432"  # the check character for the weighted sum mod 11

CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: I, O, S, V, Z are never used
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)  # 3^i mod 31


class Problem(NamedTuple):
    """What is wrong with an identifier: in Chinese for staff and applicants, in English for the API."""

    zh: str
    en: str


def normalised_identifier(value: str) -> str:
    """``value`` as one key: NFKC (full-width digits and letters become ASCII), every space and
    zero-width character removed, upper case."""
    folded = unicodedata.normalize("NFKC", value)
    return "".join(ch for ch in folded if not ch.isspace() and ch not in _INVISIBLE).upper()


def resident_check_character(first17: str) -> str:
    """The GB 11643 check character of 17 digits."""
    total = sum(int(ch) * w for ch, w in zip(first17, RESIDENT_WEIGHTS, strict=True))
    return RESIDENT_CHECK[total % 11]


def credit_check_character(first17: str) -> str:
    """The GB 32100 check character of 17 characters of the code's alphabet."""
    total = sum(CREDIT_ALPHABET.index(ch) * w for ch, w in zip(first17, CREDIT_WEIGHTS, strict=True))
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


def resident_id_problem(value: str) -> Problem | None:
    """What is wrong with a normalised resident id number; None when valid."""
    if len(value) != 18:
        return Problem(
            f"居民身份證號碼應為 18 位，現為 {len(value)} 位",
            f"a resident id number has 18 characters, not {len(value)}",
        )
    if not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
        return Problem(
            "居民身份證號碼應為 17 位數字加 1 位校驗碼（數字或 X）",
            "a resident id number is 17 digits and a check digit (0-9 or X)",
        )
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return Problem(
            "居民身份證號碼第 7-14 位應為出生日期，現在不是有效日期",
            "characters 7-14 of a resident id number are the date of birth: these are no date",
        )
    if born.year < 1900:
        return Problem(
            "居民身份證號碼第 7-14 位應為出生日期，現在早於 1900 年",
            "characters 7-14 of a resident id number are the date of birth: before 1900",
        )
    if resident_check_character(value[:17]) != value[17]:
        return Problem(
            "居民身份證號碼校驗位不符（GB 11643），請逐位核對",
            "the check digit does not match (GB 11643): check the number digit by digit",
        )
    return None


def credit_code_problem(value: str) -> Problem | None:
    """What is wrong with a normalised unified social credit code; None when valid."""
    if len(value) != 18:
        return Problem(
            f"統一社會信用代碼應為 18 位，現為 {len(value)} 位",
            f"a unified social credit code has 18 characters, not {len(value)}",
        )
    wrong = sorted({ch for ch in value if ch not in CREDIT_ALPHABET})
    if wrong:
        return Problem(
            f"統一社會信用代碼不含字符 {'、'.join(wrong)}（只用數字和除 I、O、S、V、Z 以外的大寫字母）",
            f"a unified social credit code has no {', '.join(wrong)} (digits and capitals except I, O, S, V, Z)",
        )
    if credit_check_character(value[:17]) != value[17]:
        return Problem(
            "統一社會信用代碼校驗位不符（GB 32100），請逐位核對",
            "the check character does not match (GB 32100): check the code character by character",
        )
    return None


def identifier_problem(kind: str, value: str) -> Problem | None:
    """What is wrong with a normalised applicant identifier of ``kind`` (citizen: a resident id
    number; enterprise: a unified social credit code); None when it is valid."""
    if kind == "enterprise":
        return credit_code_problem(value)
    return resident_id_problem(value)


def phone_problem(value: str) -> Problem | None:
    """What is wrong with a normalised phone number (digits, ``-``, a leading ``+``); None when valid."""
    digits = value.removeprefix("+").replace("-", "")
    if not digits.isascii() or not digits.isdigit() or not 5 <= len(digits) <= 20:
        return Problem(
            "聯繫電話只能由 5 到 20 位數字組成（可含「-」，開頭可為「+」）",
            "a phone number is 5 to 20 digits, with - between them and perhaps a leading +",
        )
    return None


def with_check_character(first17: str, kind: str = "citizen") -> str:
    """``first17`` completed by its check character: a resident id number for a ``citizen``, a
    unified social credit code for an ``enterprise``. For test data and generated workloads; an
    applicant's number is checked, never completed."""
    if kind == "enterprise":
        return first17 + credit_check_character(first17)
    return first17 + resident_check_character(first17)

"""Personal data, in one place: which fields are personal, and how a value, a record or a text is masked.

An applicant's resident ID number and phone number are personal. They are stored in the record (the
case must name its applicant) but shown masked everywhere by default: API answers, the CLI, the
audit dossier, validation errors (even a wrong value in an unknown field), and the free text of
notifications (a clerk may paste a number into a note). ``--reveal`` is the only way round it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PERSONAL_FIELDS = frozenset({"id_number", "phone", "email"})
"""The keys whose values are personal wherever they occur in a record."""

# an 18-character resident ID number (the last may be X) or an 11-digit mainland mobile number, standing
# alone (not part of a longer run of letters or digits, such as a hash or a ULID)
_NUMBERS_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|1[3-9]\d{9})(?![0-9A-Za-z])")


def mask_identifier(value: str) -> str:
    """Mask an id number or phone number, keeping only enough to recognise it: ``2106********1234``."""
    if len(value) <= 4:
        return "*" * len(value)
    keep_head = 4 if len(value) >= 12 else 1
    return value[:keep_head] + "*" * (len(value) - keep_head - 4) + value[-4:]


def mask_email(value: str) -> str:
    """Mask an email address, keeping its first character and its domain: ``l*******@example.com``."""
    local, at, domain = value.partition("@")
    if not at:
        return mask_identifier(value)
    return (local[:1] + "*" * max(len(local) - 1, 1)) + "@" + domain


def mask_field(key: str, value: str) -> str:
    """A personal field's value masked as its kind is."""
    return mask_email(value) if key == "email" else mask_identifier(value)


def mask_text(text: str) -> str:
    """``text`` with every ID-number or phone-number pattern in it masked."""
    return _NUMBERS_IN_TEXT.sub(lambda m: mask_identifier(m.group()), text)


def mask_personal(value: Any) -> Any:
    """A copy of ``value`` (a record, a list, a text) with every personal field and every ID or phone
    number in its text masked."""
    if isinstance(value, Mapping):
        return {
            k: (mask_field(k, str(v)) if k in PERSONAL_FIELDS and v else mask_personal(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_personal(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value

"""The online channel's side of the broker: receipt codes, and finding a case by one.

An applicant who reports through the portal gets a receipt code (回執碼) ``<case id>-<secret>``:
the secret is 16 characters of Crockford's base 32 (80 random bits, too many to try even against
the digest), and the record keeps only its SHA-256 (``case.receipt_issued``), which no reply shows. A lookup or an online rating names the code and the last four
digits of the phone given at intake; a wrong secret, wrong digits or an unknown case all get the
same ``not_found``, so an answer tells nothing about which part was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from unstuck import lifecycle as lc
from unstuck.schemas.labels import label

from .casebook import CaseBook
from .errors import ApiFailure

RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: no I, L, O, U
SECRET_LENGTH = 16  # 80 bits


def new_secret() -> str:
    return "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(SECRET_LENGTH))


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def receipt_of(case_id: str, secret: str) -> str:
    return f"{case_id}-{secret}"


def not_found() -> ApiFailure:
    return ApiFailure(
        "not_found",
        "no case has this receipt code and phone number",
        field="receipt",
        fix="check the receipt code and the last 4 digits of the phone given when reporting",
        message_zh="找不到對應的案件：請核對回執碼和反映時所留電話的後 4 位",
    )


async def case_by_receipt(book: CaseBook, receipt: str, phone_last4: str) -> lc.CaseState:
    """The case a receipt code and the phone's last four digits open, or ``not_found``."""
    case_id, _, secret = receipt.strip().upper().rpartition("-")
    if not case_id or len(secret) != SECRET_LENGTH:
        raise not_found()
    await book.ensure(case_id)
    state = book.state_of(case_id)
    phone = str(((state.intake or {}).get("applicant") or {}).get("phone") or "")
    digest_ok = state.receipt_digest is not None and hmac.compare_digest(
        digest_of(secret), state.receipt_digest
    )
    phone_ok = len(phone) >= 4 and hmac.compare_digest(phone[-4:], phone_last4)
    if not (state.exists and digest_ok and phone_ok):
        raise not_found()
    return state


def status_for_applicant(state: lc.CaseState, today: Any) -> dict[str, Any]:
    """What the applicant's status page shows: the case's progress, nothing personal."""
    closing = state.closing or {}
    evaluation = state.evaluation or {}
    return {
        "case_id": state.case_id,
        "state": str(state.state),
        "state_zh": label("state", str(state.state)),
        "matter_title": (state.intake or {}).get("matter_title"),
        "department": (state.intake or {}).get("department"),
        "opened_at": state.opened_at.isoformat() if state.opened_at else None,
        "due_date": state.due_date.isoformat() if state.due_date else None,
        "overdue": bool(state.due_date and not closing and state.due_date < today),
        "closed_at": closing.get("at"),
        "outcome": closing.get("outcome"),
        "outcome_zh": label("outcome", closing["outcome"]) if closing.get("outcome") else None,
        "explanation": closing.get("explanation"),
        "rating": evaluation.get("level"),
        "can_rate": state.state == lc.CLOSED,
    }

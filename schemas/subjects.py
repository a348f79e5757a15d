"""The subject table of the contract (DESIGN.md, "Subjects and streams")."""

from __future__ import annotations

from .common import check_subject_token

STREAM = "UNSTUCK_CASES"
HEADS_BUCKET = "UNSTUCK_HEADS"
IDS_BUCKET = "UNSTUCK_IDS"
CASE_PREFIX = "unstuck.case"
API_PREFIX = "unstuck.api"
NOTIFY_PREFIX = "unstuck.notify"
BROKER_QUEUE = "unstuck.broker"


def case_subject(case_id: str) -> str:
    return f"{CASE_PREFIX}.{check_subject_token(case_id, 'case_id')}"


def coordinate_subject(department: str) -> str:
    return f"unstuck.dept.{check_subject_token(department, 'department')}.coordinate"


def department_queue(department: str) -> str:
    return f"unstuck.dept.{check_subject_token(department, 'department')}"


def api_subject(verb: str) -> str:
    return f"{API_PREFIX}.{verb}"


def notify_subject(audience: str) -> str:
    return f"{NOTIFY_PREFIX}.{check_subject_token(audience, 'audience')}"

"""A case's state as the ledger's rows: pure functions, no database.

``case_row`` gives the row of ``ledger_cases``, ``coordination_rows`` and ``accountability_rows`` the
case's current rows of the other tables (rewritten whole on every change of the case), ``rating_row``
the row one ``case.evaluated`` event adds. Free text that may carry an id or phone number (an
accountability finding) is masked like every other display (``schemas.privacy``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from unstuck import lifecycle as lc
from unstuck.clock import local_date
from unstuck.schemas import mask_personal

from .applicants import applicant_key, display


def case_row(state: lc.CaseState, stream_seq: int, key: bytes, personal_data: bool = False) -> dict[str, Any]:
    """The ``ledger_cases`` row of a case that exists (``state.opened_at`` is set)."""
    assert state.opened_at is not None, f"case {state.case_id} has no case.opened"
    intake = state.intake
    applicant = intake.get("applicant") or {}
    id_number = applicant.get("id_number")
    closing = state.closing or {}
    evaluation = state.evaluation or {}
    return {
        "case_id": state.case_id,
        "opened_at": state.opened_at,
        "opened_day": local_date(state.opened_at),
        "state": str(state.state),
        "category": state.category,
        "department": intake.get("department"),
        "departments": json.dumps(state.departments),
        "owner": state.owner,
        "matter_title": intake.get("matter_title"),
        "matter": intake.get("matter"),
        "applicant": display(applicant),
        "applicant_key": applicant_key(key, str(id_number)) if id_number else None,
        "applicant_name": applicant.get("name") if personal_data else None,
        "applicant_id_number": id_number if personal_data else None,
        "due_date": state.due_date,
        "overdue": state.overdue,
        "escalation_level": max((lv for lv, _ in state.escalations.values()), default=0),
        "closed_at": datetime.fromisoformat(closing["at"]) if closing.get("at") else None,
        "outcome": closing.get("outcome"),
        "rating": evaluation.get("rating"),
        "last_stream_seq": stream_seq,
        "client_ref": intake.get("client_ref"),
    }


def coordination_rows(state: lc.CaseState) -> list[dict[str, Any]]:
    """Every coordination of the case, all rounds."""
    return [
        {
            "case_id": state.case_id,
            "request_id": c.request_id,
            "department": c.department,
            "round": c.round,
            "status": str(c.status),
            "outcome": str(c.outcome) if c.outcome is not None else None,
            "attempts": c.attempts,
            "requested_at": c.requested_at,
            "deadline": c.deadline,
            "rerouted_from": c.rerouted_from,
        }
        for c in state.coordinations.values()
    ]


def accountability_rows(state: lc.CaseState, personal_data: bool = False) -> list[dict[str, Any]]:
    """The case's accountability records (問責), in the order recorded."""
    rows = []
    for ordinal, entry in enumerate(state.accountability, start=1):
        shown = dict(entry) if personal_data else mask_personal(dict(entry))
        rows.append(
            {
                "case_id": state.case_id,
                "ordinal": ordinal,
                "department": state.intake.get("department"),
                "staff": shown["staff"],
                "section": shown["section"],
                "leader_in_charge": shown["leader_in_charge"],
                "finding": shown["finding"],
                "measures": json.dumps(list(shown["measures"])),
                "fault_tolerance": bool(shown["fault_tolerance"]),
                "at": shown["at"],
            }
        )
    return rows


def rating_row(case_id: str, event_seq: int, at: datetime, data: Any) -> dict[str, Any]:
    """The row a ``case.evaluated`` event adds (the case's earlier ratings stay)."""
    return {
        "case_id": case_id,
        "event_seq": event_seq,
        "rating": data.rating,
        "at": at,
        "department_at_fault": data.department_at_fault,
    }

"""The ledger's queries, as plain functions of a database connection (the ``Ledger`` runs them off the
event loop). Each answers in the form the broker's API gives: ``list_cases`` rows with exactly the
keys the API documents for ``case.list`` (docs/ledger.md), ``list_accountability`` the records of ``accountability.list``.

A case is overdue in a list when its ``case.overdue`` is recorded, or when it is still open and the
local date of ``now`` is past its due date (the lifecycle's own rule, which the deadline watcher
records on its next tick): the ledger does not lag the watcher.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, not_, or_, select

from unstuck import lifecycle as lc
from unstuck.clock import CHINA, local_date
from unstuck.schemas import api, label

from .applicants import applicant_key
from .errors import InvalidFilter
from .tables import accountability, cases, coordinations, ratings

OPEN = sorted(str(s) for s in lc.OPEN_STATES)


def overdue_on(today: date | None) -> ColumnElement[bool]:
    """Whether a case row is overdue: recorded so, or open and past its due date on ``today``."""
    if today is None:
        return cases.c.overdue.is_(True)
    late = and_(cases.c.state.in_(OPEN), cases.c.due_date.is_not(None), cases.c.due_date < today)
    return or_(cases.c.overdue.is_(True), late)


def local_midnight(day: date) -> datetime:
    """The instant a local (Asia/Shanghai) day begins."""
    return datetime.combine(day, time.min, tzinfo=CHINA)


def case_filters(req: api.ListCases, key: bytes, today: date) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``req``; InvalidFilter for a value that would silently match nothing."""
    c = cases.c
    where: list[ColumnElement[bool]] = []
    if req.state is not None:
        if req.state not in lc.STATES:
            raise InvalidFilter("state", f"unknown state {req.state!r}", f"use one of {', '.join(lc.STATES)}")
        where.append(c.state == req.state)
    if req.category is not None:
        where.append(c.category == req.category.value)
    if req.department is not None:
        asked = exists().where(
            coordinations.c.case_id == c.case_id, coordinations.c.department == req.department
        )
        where.append(or_(c.department == req.department, asked))
    if req.overdue:  # the two ways of being late, each found through its own index
        flagged = select(c.case_id).where(c.overdue.is_(True))
        past_due = select(c.case_id).where(c.state.in_(OPEN), c.due_date < today)
        where.append(c.case_id.in_(flagged.union(past_due)))
    elif req.overdue is not None:
        where.append(not_(overdue_on(today)))
    if req.applicant_id_number is not None:
        where.append(c.applicant_key == applicant_key(key, req.applicant_id_number.get_secret_value()))
    if req.matter is not None:
        where.append(or_(c.matter == req.matter, c.matter_title.contains(req.matter, autoescape=True)))
    if req.client_ref is not None:
        where.append(c.client_ref == req.client_ref)
    # local dates as instants, so the range is read in opening order from (opened_at, case_id)
    if req.opened_from is not None:
        where.append(c.opened_at >= local_midnight(req.opened_from))
    if req.opened_to is not None:
        where.append(c.opened_at < local_midnight(req.opened_to + timedelta(days=1)))
    return where


def list_cases(conn: Connection, req: api.ListCases, key: bytes, now: datetime) -> dict[str, Any]:
    """``case.list``: the cases matching every filter, by opening time then case id."""
    today = local_date(now)
    query = (
        select(cases, overdue_on(today).label("late"))
        .where(*case_filters(req, key, today))
        .order_by(cases.c.opened_at, cases.c.case_id)
        .limit(req.limit)
    )
    rows = [_case_out(r._mapping) for r in conn.execute(query)]
    return {"cases": rows, "count": len(rows)}


def _case_out(r: Any) -> dict[str, Any]:
    """A row of ``case.list`` (those keys and no other)."""
    category = r["category"]
    return {
        "case_id": r["case_id"],
        "opened_at": r["opened_at"].isoformat(),
        "state": r["state"],
        "category": category,
        "category_label": label("category", category) if category else None,
        "department": r["department"],
        "departments": json.loads(r["departments"]),
        "owner": r["owner"],
        "matter_title": r["matter_title"],
        "applicant": r["applicant"],
        "due_date": r["due_date"].isoformat() if r["due_date"] else None,
        "overdue": bool(r["late"]),
        "on_time": _on_time(r["closed_at"], r["due_date"]),
        "escalation_level": r["escalation_level"],
    }


def _on_time(closed_at: datetime | None, due: date | None) -> bool | None:
    """Closed by the due date (as ``case.closed`` records it: the local day of the closing), or None
    while the case is open."""
    if closed_at is None:
        return None
    return due is None or local_date(closed_at) <= due


def list_accountability(conn: Connection, req: api.ListAccountability) -> dict[str, Any]:
    """``accountability.list``: records by staff and/or the case's department, cases in opening order."""
    a = accountability.c
    query = select(accountability).join(cases, cases.c.case_id == a.case_id)
    if req.department is not None:
        query = query.where(a.department == req.department)
    if req.staff is not None:
        query = query.where(a.staff == req.staff)
    query = query.order_by(cases.c.opened_at, a.case_id, a.ordinal)
    rows = [
        {
            "case_id": r.case_id,
            "department": r.department,
            "staff": r.staff,
            "section": r.section,
            "leader_in_charge": r.leader_in_charge,
            "finding": r.finding,
            "measures": json.loads(r.measures),
            "fault_tolerance": bool(r.fault_tolerance),
            "at": r.at,
        }
        for r in conn.execute(query)
    ]
    return {"records": rows, "count": len(rows)}


def totals(conn: Connection, now: datetime | None = None) -> dict[str, Any]:
    """Case counts for the status report: all, open, and open overdue by category (as recorded, or with
    ``now`` also those past their due date)."""
    c = cases.c
    total = conn.execute(select(func.count()).select_from(cases)).scalar_one()
    open_cases = conn.execute(select(func.count()).where(c.state.in_(OPEN))).scalar_one()
    late = overdue_on(local_date(now) if now is not None else None)
    category = func.coalesce(c.category, "unclassified")
    by_category = conn.execute(
        select(category, func.count()).where(c.state.in_(OPEN), late).group_by(category)
    ).all()
    overdue = {str(cat): int(n) for cat, n in sorted(by_category)}
    return {
        "cases": int(total),
        "open_cases": int(open_cases),
        "overdue_cases": sum(overdue.values()),
        "overdue_by_category": overdue,
    }


def row_counts(conn: Connection) -> dict[str, int]:
    """How many rows each table holds (``unstuck ledger status``)."""
    out = {}
    for table in (cases, coordinations, accountability, ratings):
        out[table.name.removeprefix("ledger_")] = int(
            conn.execute(select(func.count()).select_from(table)).scalar_one()
        )
    return out

"""The ledger (台賬), a leader's inbox and the departments that stall: the screens that list."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from unstuck import lifecycle as lc
from unstuck.web.busclient import BusError

from . import forms
from .context import Console
from .text import local_time
from .web import console_of, render, staff_of


def ledger_filters(console: Console, q: Any) -> tuple[dict[str, Any], str, list[str]]:
    """The ``case.list`` filters of the query string, the owner to keep (no verb filters by owner), and a
    message for each filter that is not one of the choices."""
    filters: dict[str, Any] = {}
    problems = []
    for name, label, choices in (
        ("state", "状态", lc.STATES),
        ("category", "分类", forms.CATEGORIES),
        ("department", "部门", console.departments()),
    ):
        if q.get(name):
            if q[name] in choices:
                filters[name] = q[name]
            else:
                problems.append(f"{label}：请从列表中选择")
    if q.get("overdue") in ("yes", "no"):
        filters["overdue"] = q["overdue"] == "yes"
    owner = q.get("owner") or ""
    if owner and owner not in console.config.staff:
        problems.append("承办人：请从列表中选择")
        owner = ""
    return filters, owner, problems


async def ledger(request: Request) -> Response:
    console = console_of(request)
    staff = staff_of(request)
    filters, owner, problems = ledger_filters(console, request.query_params)
    rows: list[dict[str, Any]] = []
    problem = "；".join(problems) or None
    try:
        result = await console.call("case.list", staff, {**filters, "limit": 1000})
        today = await console.today(staff)
        for row in result.get("cases", []):
            if owner and row.get("owner") != owner:
                continue
            open_case = row.get("on_time") is None
            rows.append(
                {
                    **row,
                    "opened": local_time(row.get("opened_at"), console.zone),
                    "days_left": console.days_left(row.get("due_date"), today) if open_case else None,
                }
            )
    except BusError as exc:
        problem = exc.message
    return render(
        request,
        "ledger.html",
        nav="cases",
        rows=rows,
        q=dict(request.query_params),
        problem=problem,
        states=lc.STATES,
        categories=forms.CATEGORIES,
        departments=console.department_choices(),
        staff_ids=sorted(console.config.staff),
    )


async def open_states(console: Console, staff: str) -> list[dict[str, Any]]:
    """Every open case's state. No verb lists pending extensions, bounces or escalations, so the open
    cases of the ledger are read one by one (``case.get`` without events), a few at a time."""
    listed: list[dict[str, Any]] = []
    for state in sorted(lc.OPEN_STATES):
        listed += (await console.call("case.list", staff, {"state": state, "limit": 1000})).get("cases", [])
    gate = asyncio.Semaphore(16)

    async def one(case_id: str) -> dict[str, Any] | None:
        async with gate:
            try:
                got = await console.call("case.get", staff, {"case_id": case_id, "events": False})
            except BusError:
                return None
            return dict(got["state"])

    return [s for s in await asyncio.gather(*(one(r["case_id"]) for r in listed)) if s]


async def inbox(request: Request) -> Response:
    """A leader's work: extensions to approve, bounces to rule on (the duty leader), 督辦 reaching a leader."""
    console = console_of(request)
    staff = staff_of(request)
    leader = console.config.rank(staff) >= lc.LEADER_RANK
    extensions, bounces, escalations = [], [], []
    problem = None
    try:
        states = await open_states(console, staff)
    except BusError as exc:
        states, problem = [], exc.message
    for s in states:
        pending = s.get("pending_extension")
        if pending:
            mine = pending.get("requested_by") == staff
            extensions.append({"case": s, "pending": pending, "mine": mine, "can": leader and not mine})
        if s.get("bounce_ruling_needed"):
            bounces.append({"case": s, "can": staff == s.get("duty_leader")})
        high = sorted(
            (d, e) for d, e in (s.get("escalations") or {}).items() if e.get("level", 0) >= lc.LEADER_RANK
        )
        if high:
            levels = [(d, e["level"], local_time(e.get("at"), console.zone)) for d, e in high]
            escalations.append({"case": s, "levels": levels})
    return render(
        request,
        "inbox.html",
        nav="inbox",
        extensions=extensions,
        bounces=bounces,
        escalations=escalations,
        problem=problem,
        is_leader=leader,
    )


async def department_rows(console: Console, staff: str) -> dict[str, Any]:
    try:
        report = dict(await console.call("status", staff))
    except BusError as exc:
        return {"rows": [], "report": {}, "problem": exc.message}
    rows = [{**r, "name": console.department_name(r["department"])} for r in report.get("departments", [])]
    report["at_local"] = local_time(report.get("at"), console.zone)
    return {"rows": rows, "report": report, "problem": None}


async def departments(request: Request) -> Response:
    """Who stalls now: the ``status`` verb's ranking, worst first; the table refreshes itself (htmx)."""
    found = await department_rows(console_of(request), staff_of(request))
    return render(request, "departments.html", nav="departments", **found)


async def departments_table(request: Request) -> Response:
    found = await department_rows(console_of(request), staff_of(request))
    return render(request, "_departments_table.html", **found)

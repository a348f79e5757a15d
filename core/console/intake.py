"""Signing in, the ticket queue (叫號) and the intake form: the first two of the three steps (三步辦結)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from unstuck.web.busclient import BusError
from unstuck.web.forms import posted

from . import forms
from .text import zh_label
from .web import back_to, console_of, current_staff, flash, render, safe_next, staff_of


async def login_page(request: Request) -> Response:
    return render(
        request, "login.html", next=safe_next(request.query_params.get("next")), error=None, username=""
    )


def _refusal(reason: str, wait_seconds: float) -> str:
    if reason == "limited":
        return f"登录失败次数过多：请 {max(1, round(wait_seconds / 60))} 分钟后再试，或联系管理员"
    if reason == "empty":
        return "请填写工号和密码"
    return "工号或密码不正确"


async def login(request: Request) -> Response:
    console = console_of(request)
    form = await posted(request)
    username = str(form.get("username") or "")[:64]
    password = str(form.get("password") or "")[:256]
    address = request.client.host if request.client else "-"
    outcome = await asyncio.to_thread(console.auth.sign_in, username, password, address)
    target = safe_next(form.get("next"))
    if outcome.staff_id is None:
        status = 429 if outcome.reason == "limited" else 401
        error = _refusal(outcome.reason, outcome.wait_seconds)
        return render(request, "login.html", status=status, next=target, error=error, username=username)
    request.session.clear()  # a new session: nothing from before signing in carries over
    request.session.update(
        staff=outcome.staff_id,
        csrf=secrets.token_urlsafe(32),
        sid=secrets.token_urlsafe(16),
        at=int(time.time()),
    )
    return back_to(target)


async def logout(request: Request) -> Response:
    await posted(request)
    sid = request.session.get("sid")
    if isinstance(sid, str):
        console_of(request).signed_out.add(sid)
    request.session.clear()
    return back_to("/login")


async def home(request: Request) -> Response:
    return back_to("/queue")


async def queue(request: Request) -> Response:
    return render(request, "queue.html", nav="queue", tickets=console_of(request).tickets.today())


async def take_ticket(request: Request) -> Response:
    await posted(request)
    ticket = console_of(request).tickets.take()
    flash(request, f"已取号 {ticket.number}")
    return back_to("/queue")


async def call_next(request: Request) -> Response:
    await posted(request)
    ticket = console_of(request).tickets.call_next(staff_of(request))
    if ticket is None:
        flash(request, "没有等候的号", "error")
        return back_to("/queue")
    return back_to(f"/intake?ticket={ticket.number}")


async def intake_page(request: Request) -> Response:
    number = request.query_params.get("ticket", "")
    ticket = console_of(request).tickets.find(number) if number else None
    values = {"channel": "window", "applicant_kind": "citizen"}
    return await _intake_form(request, values, {}, ticket.number if ticket else "")


async def _intake_form(
    request: Request,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    ticket: str,
    status: int = 200,
    problem: str | None = None,
) -> Response:
    console = console_of(request)
    today = await console.today(staff_of(request))
    category = str(values.get("category") or "")
    due = console.due_for(category, today) if category in forms.CATEGORIES else None
    categories = [(c, zh_label("category", c), console.working_days(c)) for c in forms.CATEGORIES]
    return render(
        request,
        "intake.html",
        status=status,
        nav="intake",
        values=values,
        errors=errors,
        ticket=ticket,
        problem=problem,
        departments=console.department_choices(),
        categories=categories,
        due=due,
        today=today,
    )


async def intake_due(request: Request) -> Response:
    """The due date for the category chosen (htmx, as soon as it is chosen), counted as the broker will."""
    console = console_of(request)
    category = request.query_params.get("category", "")
    today = await console.today(current_staff(request) or "")
    due = console.due_for(category, today) if category in forms.CATEGORIES else None
    return render(request, "_due.html", due=due, today=today)


async def open_case(request: Request) -> Response:
    console = console_of(request)
    form = await posted(request)
    raw = {k: str(v) for k, v in form.items() if k != "csrf"}
    number = raw.get("ticket", "")
    ticket = console.tickets.find(number) if number else None
    fields = forms.intake_fields(console.departments())
    values, errors = forms.check(form, fields)
    if errors:
        return await _intake_form(request, raw, errors, number, status=422)
    body = forms.intake_body(values, ticket.ref if ticket else None)
    try:
        result = await console.call("case.open", staff_of(request), body)
    except BusError as exc:
        named = forms.refusal(fields, exc.field, exc.message)
        return await _intake_form(request, raw, named, number, status=422, problem=exc.message)
    case_id = str(result["case_id"])
    if ticket is not None:
        console.tickets.done(ticket.number, case_id)
    due = result.get("due_date")
    flash(
        request, f"已受理 {case_id}" + (f"，办结期限 {due}：请告知申请人" if due else "：分类后确定办结期限")
    )
    return back_to(f"/cases/{case_id}")

"""The case page (timeline, answers, the actions this user may take, the reveal form) and the
evaluation screen turned to the applicant (好差評): the third step."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from itsdangerous import BadSignature
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from unstuck.web.busclient import APPLICANT, BusError
from unstuck.web.forms import posted, read_form

from . import forms
from .context import STAFF_VERBS, Console, actions_for, simplified_verb
from .text import describe, iso_date, local_time, zh_label
from .web import back_to, console_of, current_staff, flash, render, render_bare, staff_of

RATING_MINUTES = 30  # the evaluation screen's link stays valid this long


def case_id_of(request: Request) -> str:
    case_id = str(request.path_params["case_id"])
    if not forms.valid_case_id(case_id):
        raise HTTPException(404, "案件编号格式不对：应为字母、数字和连字符，例如 DD-20261127-0001")
    return case_id


async def fetch_case(console: Console, staff: str, case_id: str, **extra: Any) -> dict[str, Any]:
    try:
        return dict(await console.call("case.get", staff, {"case_id": case_id, **extra}))
    except BusError as exc:
        if exc.code == "not_found":
            raise HTTPException(404, f"案件 {case_id} 不存在：请核对案件编号") from exc
        raise


def timeline(console: Console, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "at": local_time(e.get("at"), console.zone),
            "label": zh_label("event", e["type"]),
            "actor": e.get("actor"),
            "auth": e.get("auth"),
            "text": describe(e["type"], e.get("data") or {}),
        }
        for e in events
    ]


def coordinations(
    console: Console, state: Mapping[str, Any], events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each department asked, with its answer in full (message, legal basis, materials) from the record."""
    replies = {e["data"]["request_id"]: e["data"] for e in events if e["type"] == "coordination.replied"}
    return [
        {**c, "name": console.department_name(c["department"]), "reply": replies.get(c["request_id"])}
        for c in state.get("coordinations", [])
    ]


async def case_page(request: Request) -> Response:
    return await show_case(request, case_id_of(request))


async def show_case(
    request: Request,
    case_id: str,
    *,
    revealed: dict[str, Any] | None = None,
    open_action: str | None = None,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    console = console_of(request)
    staff = staff_of(request)
    got = revealed or await fetch_case(console, staff, case_id)
    state, events = got["state"], got.get("events", [])
    today = iso_date(got.get("today")) or await console.today(staff)
    return render(
        request,
        "case.html",
        status=status,
        nav="cases",
        case=state,
        case_id=case_id,
        timeline=timeline(console, events),
        coordinations=coordinations(console, state, events),
        actions=actions_for(state, staff, console.config.rank(staff)),
        revealed=revealed is not None,
        today=today,
        days_left=console.days_left(state.get("due_date"), today),
        open_action=open_action,
        values=values or {},
        errors=errors or {},
        problem=problem,
        departments=console.department_choices(),
        staff_ids=sorted(console.config.staff),
    )


async def reveal(request: Request) -> Response:
    """The unmasked id number and phone, once, with a reason the broker records (case.personal_data_revealed)."""
    case_id = case_id_of(request)
    form = await posted(request)
    raw = {k: str(v) for k, v in form.items() if k != "csrf"}
    values, errors = forms.check(form, [forms.Field("reveal_reason", "查看理由")])
    if errors:
        return await show_case(request, case_id, open_action="reveal", values=raw, errors=errors, status=422)
    console = console_of(request)
    try:
        got = await fetch_case(
            console, staff_of(request), case_id, reveal=True, reveal_reason=values["reveal_reason"]
        )
    except BusError as exc:
        return await show_case(
            request, case_id, open_action="reveal", values=raw, problem=exc.message, status=422
        )
    return await show_case(request, case_id, revealed=got)


async def act(request: Request) -> Response:
    """One action of the case page, as the signed-in staff member; the form comes back with its message."""
    case_id = case_id_of(request)
    action = str(request.path_params["action"])
    if action not in STAFF_VERBS:
        raise HTTPException(404, "没有这项操作")
    console = console_of(request)
    form = await posted(request)
    raw = {k: str(v) for k, v in form.items() if k != "csrf"}
    fields = forms.action_fields(action, console.departments(), sorted(console.config.staff))
    values, errors = forms.check(form, fields)
    if errors:
        return await show_case(request, case_id, open_action=action, values=raw, errors=errors, status=422)
    try:
        result = await console.call(
            STAFF_VERBS[action], staff_of(request), forms.action_body(action, case_id, values)
        )
    except BusError as exc:
        if exc.code == "not_found":
            raise HTTPException(404, f"案件 {case_id} 不存在：请核对案件编号") from exc
        named = forms.refusal(fields, exc.field, exc.message)
        return await show_case(
            request, case_id, open_action=action, values=raw, errors=named, problem=exc.message, status=422
        )
    due = result.get("due_date") if isinstance(result, dict) else None
    flash(request, f"{simplified_verb(action)}：已办理" + (f"；办结期限 {due}" if due else ""))
    return back_to(f"/cases/{case_id}")


# --- 好差評: the evaluation screen, turned to the applicant ------------------------------------------


async def rating_link(request: Request) -> Response:
    """Staff open the evaluation screen of a closed case: a signed link, valid for RATING_MINUTES."""
    case_id = case_id_of(request)
    await posted(request)
    token = console_of(request).rating_links.dumps({"case": case_id, "n": secrets.token_urlsafe(8)})
    return back_to(f"/rate/{token}")


def rating_case(request: Request) -> tuple[str, str]:
    token = str(request.path_params["token"])
    try:
        data = console_of(request).rating_links.loads(token, max_age=RATING_MINUTES * 60)
    except BadSignature as exc:
        raise HTTPException(404, "评价链接无效或已过期：请工作人员重新打开评价屏") from exc
    case_id = data.get("case") if isinstance(data, dict) else None
    if not isinstance(case_id, str) or not forms.valid_case_id(case_id):
        raise HTTPException(404, "评价链接无效：请工作人员重新打开评价屏")
    return token, case_id


async def rating_page(request: Request) -> Response:
    token, case_id = rating_case(request)
    console = console_of(request)
    staff = current_staff(request)
    departments: list[tuple[str, str]] = []
    if staff is not None:  # the departments asked, for a bad rating's 哪個部門 (read as the staff member)
        try:
            got = await fetch_case(console, staff, case_id, events=False)
            asked = dict.fromkeys(c["department"] for c in got["state"].get("coordinations", []))
            departments = [(c, console.department_name(c)) for c in asked]
        except (BusError, HTTPException):
            departments = []
    return render_bare(
        request, "rate.html", token=token, case_id=case_id, departments=departments, error=None
    )


async def rate(request: Request) -> Response:
    """The applicant's rating, sent as the applicant's own channel (``unstuck.api.web.applicant.case.evaluate``)."""
    token, case_id = rating_case(request)
    console = console_of(request)
    form = await read_form(request, max_fields=20)
    fields = [
        forms.Field("rating", "评价", "choice", choices=("good", "bad")),
        forms.Field("comment", "意见", "comment", required=False),
        forms.Field(
            "department_at_fault",
            "哪个部门的问题",
            "choice",
            required=False,
            choices=tuple(console.departments()),
        ),
    ]
    values, errors = forms.check(form, fields)
    problem = "；".join(errors.values()) if errors else None
    if problem is None:
        try:
            await console.call("case.evaluate", APPLICANT, {"case_id": case_id, **values})
        except BusError as exc:
            problem = exc.message
    if problem is not None:
        return render_bare(
            request, "rate.html", status=422, token=token, case_id=case_id, departments=[], error=problem
        )
    return render_bare(request, "rated.html", rating=values["rating"])

"""What every handler uses: who is signed in, the CSRF token, flash messages, rendering a template."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from unstuck import lifecycle as lc
from unstuck.web.forms import csrf_token

from .context import Console, simplified_verb
from .text import days_left_text, simplified, zh_label

log = logging.getLogger("unstuck.console")

Handler = Callable[[Request], Awaitable[Response]]


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("unstuck.console", "templates"),
        autoescape=True,  # every template, whatever its name
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["zh"] = lambda value: simplified(str(value)) if value is not None else "-"
    env.globals.update(zh_label=zh_label, verb_label=simplified_verb, days_left_text=days_left_text)
    return env


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def current_staff(request: Request) -> str | None:
    """The staff member this request's session signed in, while they are in ``[staff]`` and have not
    signed out; None otherwise."""
    console = console_of(request)
    staff = request.session.get("staff")
    if not isinstance(staff, str) or staff not in console.config.staff:
        return None
    if request.session.get("sid") in console.signed_out:
        return None
    return staff


def staff_of(request: Request) -> str:
    """The signed-in staff member of a handler behind ``signed_in``."""
    staff = current_staff(request)
    if staff is None:
        raise HTTPException(403, "请先登录")
    return staff


def flash(request: Request, text: str, kind: str = "ok") -> None:
    request.session["flash"] = [*request.session.get("flash", []), {"kind": kind, "text": text}]


def signed_in(handler: Handler) -> Handler:
    """``handler`` for a signed-in member of staff; anyone else is sent to sign in first."""

    async def guarded(request: Request) -> Response:
        if current_staff(request) is None:
            request.session.pop("staff", None)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
        return await handler(request)

    guarded.__name__ = handler.__name__
    return guarded


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    console = console_of(request)
    staff = current_staff(request)
    base = {
        "request": request,
        "staff": staff,
        "role": console.role(staff) if staff else "",
        "csrf": csrf_token(request),
        "flash": request.session.pop("flash", []) if staff else [],
        "nav": context.pop("nav", ""),
        "leader": staff is not None and console.config.rank(staff) >= lc.LEADER_RANK,
    }
    env: jinja2.Environment = request.app.state.templates
    return HTMLResponse(env.get_template(template).render({**base, **context}), status_code=status)


def render_bare(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page with no staff controls at all (the evaluation screen turned to the applicant)."""
    env: jinja2.Environment = request.app.state.templates
    return HTMLResponse(
        env.get_template(template).render({"request": request, **context}), status_code=status
    )


def back_to(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def safe_next(value: Any) -> str:
    """Where to go after signing in: a path of this site only."""
    text = value if isinstance(value, str) else ""
    return text if text.startswith("/") and not text.startswith("//") and "\\" not in text else "/queue"

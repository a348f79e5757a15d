"""The applicant's online channel: 反映 (report a matter a window could not do), 查询 (the case's
progress by receipt code and the phone's last 4 digits) and 评价 (rate it once it is closed).

Every page acts through the bus API as the NATS principal ``portal`` (``unstuck.api.as.portal.<verb>``);
the portal keeps nothing of a case itself. Pages are rendered on the server and need no JavaScript.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import jinja2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from unstuck.web.busclient import BusError
from unstuck.web.forms import csrf_ok, csrf_token, read_form
from unstuck.web.middleware import BodyLimit, SecurityHeaders
from unstuck.web.text import simplified

from . import forms
from .context import Portal

log = logging.getLogger("unstuck.portal")

SESSION_COOKIE = "unstuck_portal"
STATUS_TEXT = {404: "找不到这个页面", 405: "不支持这种请求方式", 403: "请求被拒绝", 400: "请求有误"}
LIMITED = "操作太频繁了：为防止他人冒用，请过一段时间再试"
NOT_FOUND = "找不到对应的案件：请核对回执码和反映时所留电话的后 4 位"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("unstuck.portal", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["zh"] = lambda value: simplified(str(value)) if value is not None else "-"
    return env


def portal_of(request: Request) -> Portal:
    return request.app.state.portal  # type: ignore[no-any-return]


def render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    env: jinja2.Environment = request.app.state.templates
    page = env.get_template(template).render({"request": request, "csrf": csrf_token(request), **context})
    return HTMLResponse(page, status_code=code)


def address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def refused(request: Request, page: str, outcome: str, message: str, status: int) -> HTMLResponse:
    portal_of(request).requests.labels(page, outcome).inc()
    return render(request, "error.html", status, message=message)


async def submitted(request: Request, page: str) -> Any:
    """The form of a POST to ``page`` once its CSRF token and the address's limit allow it; or the
    refusal to send back (a response)."""
    form = await read_form(request)
    if not csrf_ok(request, form):
        log.warning("portal: a POST to %s without the session's CSRF token was refused", page)
        return refused(request, page, "csrf", "页面已过期或请求缺少防伪令牌：请返回、刷新页面后重新提交", 403)
    if not portal_of(request).limiter.pages.take(address(request)):
        return refused(request, page, "limited", LIMITED, 429)
    return form


def counted_errors(request: Request, page: str, errors: dict[str, str]) -> None:
    portal = portal_of(request)
    portal.requests.labels(page, "invalid").inc()
    for name in errors:
        portal.form_errors.labels(name).inc()


# --- 反映 ------------------------------------------------------------------------------------------


async def report_page(request: Request) -> Response:
    if not portal_of(request).limiter.pages.take(address(request)):
        return refused(request, "report", "limited", LIMITED, 429)
    departments = await portal_of(request).departments()
    return render(request, "report.html", departments=departments, values={}, errors={}, nav="report")


async def report(request: Request) -> Response:
    form = await submitted(request, "report")
    if isinstance(form, Response):
        return form
    portal = portal_of(request)
    departments = await portal.departments()
    body, errors = forms.check_report(form, [code for code, _ in departments])
    if errors:
        counted_errors(request, "report", errors)
        values = {k: form.get(k) for k in forms.REPORT_LABELS if isinstance(form.get(k), str)}
        return render(
            request, "report.html", 400, departments=departments, values=values, errors=errors, nav="report"
        )
    limiter = portal.limiter
    if not limiter.reports_address.allows(address(request)) or not limiter.reports_phone.take(
        body["applicant"]["phone"]
    ):
        return refused(request, "report", "limited", LIMITED, 429)
    limiter.reports_address.take(address(request))
    result = await portal.call("case.open", body)
    portal.requests.labels("report", "ok").inc()
    return render(request, "receipt.html", receipt=result["receipt"], nav="report")


# --- 查询 and 评价 ---------------------------------------------------------------------------------


async def lookup_page(request: Request) -> Response:
    if not portal_of(request).limiter.pages.take(address(request)):
        return refused(request, "lookup", "limited", LIMITED, 429)
    return render(request, "lookup.html", values={}, errors={}, nav="lookup")


def case_key(receipt: str) -> str:
    return receipt.rpartition("-")[0] or receipt


async def checked_lookup(request: Request, page: str, keys: dict[str, str]) -> Any:
    """The case's status for ``keys`` (receipt, phone_last4), or the refusal: too many tries, or 找不到
    (which counts against the address and the case, harder than a lookup that finds)."""
    portal = portal_of(request)
    limiter = portal.limiter
    who, case = address(request), case_key(keys["receipt"])
    if not (limiter.failed_address.allows(who) and limiter.failed_case.allows(case)):
        return refused(request, page, "limited", LIMITED, 429)
    if not limiter.lookups.take(who):
        return refused(request, page, "limited", LIMITED, 429)
    try:
        return await portal.call("case.lookup", keys)
    except BusError as exc:
        if exc.code not in ("not_found", "invalid_request"):
            raise
        limiter.failed_address.take(who)
        limiter.failed_case.take(case)
        return refused(request, page, "not_found", NOT_FOUND, 404)


async def lookup(request: Request) -> Response:
    form = await submitted(request, "lookup")
    if isinstance(form, Response):
        return form
    keys, errors = forms.check_lookup(form)
    if errors:
        counted_errors(request, "lookup", errors)
        return render(request, "lookup.html", 400, values=keys, errors=errors, nav="lookup")
    status = await checked_lookup(request, "lookup", keys)
    if isinstance(status, Response):
        return status
    portal_of(request).requests.labels("lookup", "ok").inc()
    return await status_page(request, keys, status, {}, {})


async def status_page(
    request: Request,
    keys: dict[str, str],
    status: dict[str, Any],
    values: dict[str, str],
    errors: dict[str, str],
) -> Response:
    names = dict(await portal_of(request).departments())
    department = names.get(str(status.get("department")), status.get("department"))
    return render(
        request,
        "status.html",
        400 if errors else 200,
        keys=keys,
        status=status,
        department=department,
        levels=forms.LEVELS,
        values=values,
        errors=errors,
        nav="lookup",
    )


async def rate(request: Request) -> Response:
    form = await submitted(request, "rate")
    if isinstance(form, Response):
        return form
    keys, errors = forms.check_lookup(form)
    if errors:
        counted_errors(request, "rate", errors)
        return render(request, "lookup.html", 400, values=keys, errors=errors, nav="lookup")
    status = await checked_lookup(request, "rate", keys)
    if isinstance(status, Response):
        return status
    rating, errors = forms.check_rating(form)
    if errors:
        counted_errors(request, "rate", errors)
        return await status_page(request, keys, status, rating, errors)
    await portal_of(request).call("case.evaluate", {**keys, **rating})
    portal_of(request).requests.labels("rate", "ok").inc()
    label = dict(forms.LEVELS)[rating["level"]]
    return render(request, "rated.html", level=label, keys=keys, nav="lookup")


# --- the rest --------------------------------------------------------------------------------------


async def http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else ""
    text = detail if detail and not detail.isascii() else STATUS_TEXT.get(code, "请求有误")
    return render(request, "error.html", code, message=text)


async def bus_error(request: Request, exc: Exception) -> Response:
    """The broker's refusal in its own Chinese words (``message_zh``), or that the bus is away."""
    message = exc.message if isinstance(exc, BusError) else "系统暂时不可用"
    unavailable = isinstance(exc, BusError) and exc.code in ("unavailable", "timeout")
    portal_of(request).requests.labels(request.url.path.strip("/") or "report", "bus_error").inc()
    return render(request, "error.html", 503 if unavailable else 400, message=message)


async def server_error(request: Request, exc: Exception) -> Response:
    """Whatever went wrong stays in the log; the page says so in Chinese, never with a traceback."""
    log.error("portal: %s %s failed", request.method, request.url.path, exc_info=exc)
    return render(request, "error.html", 500, message="系统出错了：请稍后再试，或到窗口现场反映")


async def healthz(request: Request) -> Response:
    bus = portal_of(request).bus
    ok = bus is not None and bus.nc.is_connected
    return PlainTextResponse("ok\n" if ok else "bus not connected\n", status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(portal_of(request).registry), media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/", report_page, methods=["GET"]),
    Route("/report", report, methods=["POST"]),
    Route("/lookup", lookup_page, methods=["GET"]),
    Route("/lookup", lookup, methods=["POST"]),
    Route("/rate", rate, methods=["POST"]),
    Route("/healthz", healthz),
    Route("/metrics", metrics),
]


def create_app(portal: Portal, secure_cookies: bool = False) -> Starlette:
    """The portal's ASGI app over ``portal`` (whose ``bus`` the server connects)."""
    static = StaticFiles(directory=str(resources.files("unstuck.portal") / "static"))
    app = Starlette(
        debug=False,
        routes=[*ROUTES, Mount("/static", app=static, name="static")],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(BodyLimit, limit=16 * 1024),
            Middleware(
                SessionMiddleware,
                secret_key=portal.secret,
                session_cookie=SESSION_COOKIE,
                max_age=2 * 3600,
                same_site="strict",
                https_only=secure_cookies,
            ),
        ],
        exception_handlers={HTTPException: http_error, BusError: bus_error, Exception: server_error},
    )
    app.state.portal = portal
    app.state.templates = templates()
    return app

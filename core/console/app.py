"""The window console: a server-rendered web app (Starlette, Jinja2 templates, htmx for the live parts).

Every screen acts through the bus API as the staff member signed in (``busclient``); the console keeps
nothing of a case itself. Its own files: passwords, the session secret, the ticket queue and the
record of sign-in attempts (``store``). The screens: ``intake`` (sign-in, 叫號, intake), ``casepage``
(a case, the evaluation screen), ``lists`` (the ledger, the inbox, the departments).
"""

from __future__ import annotations

import logging
from importlib import resources

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from unstuck.web.busclient import BusError
from unstuck.web.middleware import BodyLimit, SecurityHeaders

from . import casepage, intake, lists
from .context import Console
from .web import console_of, render, signed_in, templates

log = logging.getLogger("unstuck.console")

SESSION_COOKIE = "unstuck_console"
STATUS_TEXT = {404: "找不到这个页面", 405: "不支持这种请求方式", 403: "请求被拒绝", 400: "请求有误"}


async def http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else ""
    text = detail if detail and not detail.isascii() else STATUS_TEXT.get(code, "请求有误")
    return render(request, "error.html", status=code, message=text)


async def bus_error(request: Request, exc: Exception) -> Response:
    message = exc.message if isinstance(exc, BusError) else "总线暂时不可用"
    return render(request, "error.html", status=503, message=message)


async def server_error(request: Request, exc: Exception) -> Response:
    """Whatever went wrong stays in the log; the page says so in Chinese, never with a traceback."""
    log.error("console: %s %s failed", request.method, request.url.path, exc_info=exc)
    return render(
        request,
        "error.html",
        status=500,
        message="系统出错了：操作可能没有完成，请刷新页面查看，或联系运维人员",
    )


async def healthz(request: Request) -> Response:
    bus = console_of(request).bus
    ok = bus is not None and bus.nc.is_connected
    return PlainTextResponse("ok\n" if ok else "bus not connected\n", status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    """The console's own counters (sign-in attempts by outcome), for Prometheus."""
    return Response(generate_latest(console_of(request).registry), media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/", signed_in(intake.home)),
    Route("/login", intake.login_page, methods=["GET"]),
    Route("/login", intake.login, methods=["POST"]),
    Route("/logout", intake.logout, methods=["POST"]),
    Route("/queue", signed_in(intake.queue)),
    Route("/queue/take", signed_in(intake.take_ticket), methods=["POST"]),
    Route("/queue/call", signed_in(intake.call_next), methods=["POST"]),
    Route("/intake", signed_in(intake.intake_page), methods=["GET"]),
    Route("/intake", signed_in(intake.open_case), methods=["POST"]),
    Route("/intake/due", signed_in(intake.intake_due)),
    Route("/cases", signed_in(lists.ledger)),
    Route("/cases/{case_id}", signed_in(casepage.case_page)),
    Route("/cases/{case_id}/reveal", signed_in(casepage.reveal), methods=["POST"]),
    Route("/cases/{case_id}/rate", signed_in(casepage.rating_link), methods=["POST"]),
    Route("/cases/{case_id}/act/{action}", signed_in(casepage.act), methods=["POST"]),
    Route("/rate/{token}", casepage.rating_page, methods=["GET"]),
    Route("/rate/{token}", casepage.rate, methods=["POST"]),
    Route("/inbox", signed_in(lists.inbox)),
    Route("/departments", signed_in(lists.departments)),
    Route("/departments/table", signed_in(lists.departments_table)),
    Route("/healthz", healthz),
    Route("/metrics", metrics),
]


def create_app(console: Console) -> Starlette:
    """The console's ASGI app over ``console`` (whose ``bus`` the server connects)."""
    c = console.config.console
    static = StaticFiles(directory=str(resources.files("unstuck.console") / "static"))
    app = Starlette(
        debug=False,
        routes=[*ROUTES, Mount("/static", app=static, name="static")],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(BodyLimit),
            Middleware(
                SessionMiddleware,
                secret_key=console.secret,
                session_cookie=SESSION_COOKIE,
                max_age=c.session_minutes * 60,
                same_site="strict",
                https_only=c.secure_cookies,
            ),
        ],
        exception_handlers={HTTPException: http_error, BusError: bus_error, Exception: server_error},
    )
    app.state.console = console
    app.state.templates = templates()
    return app

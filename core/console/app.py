"""The window console: a server-rendered web app (Starlette, Jinja2 templates, htmx for the live parts).

Every screen acts through the bus API as the staff member signed in (``busclient``); the console keeps
nothing of a case itself. Its own files: passwords, the session secret, the ticket queue and the
record of sign-in attempts (``store``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from itsdangerous import BadSignature, URLSafeTimedSerializer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from unstuck import lifecycle as lc
from unstuck.clock import CHINA
from unstuck.config import Config, display_zone
from unstuck.plugins.manager import make_plugin_manager
from unstuck.schemas.common import Category
from unstuck.workcalendar import WorkingCalendar

from . import forms
from .auth import Authenticator, load_provider
from .busclient import APPLICANT, BusClient, BusError
from .store import LoginLog, PasswordStore, TicketQueue, session_secret
from .text import days_left_text, describe, iso_date, local_time, simplified, zh_label

log = logging.getLogger("unstuck.console")

SESSION_COOKIE = "unstuck_console"
MAX_BODY_BYTES = 64 * 1024  # a form larger than this is refused before it is read
RATING_MINUTES = 30  # the evaluation screen's link stays valid this long
STAFF_VERBS = {  # the actions of the case page and the API verb each calls
    "classify": "case.classify",
    "handover": "case.handover",
    "extend": "case.extend",
    "approve_extension": "case.approve_extension",
    "guide": "case.guide",
    "close": "case.close",
    "reopen": "case.reopen",
    "escalate": "case.escalate",
    "rule_bounce": "case.rule_bounce",
    "accountability": "accountability.record",
    "review_notice": "case.review_notice",
    "review_conclude": "case.review_conclude",
}
OWNER_OR_LEADER = frozenset({"handover", "close", "guide"})
LEADERS_ONLY = frozenset({"reopen", "accountability"})


def simplified_verb(verb: str) -> str:
    return simplified(lc.VERB_LABELS.get(verb, verb))


def actions_for(state: Mapping[str, Any], staff_id: str, rank: int) -> list[str]:
    """What ``staff_id`` may do to the case now: the state's verbs (``lifecycle.ALLOWED``) that the
    broker would let this member of staff give (their role, the owner, the duty leader, the requester)."""
    leader = rank >= lc.LEADER_RANK
    pending = state.get("pending_extension") or None
    out = []
    for verb in lc.ALLOWED.get(state.get("state") or "", ()):
        if verb not in STAFF_VERBS:  # record: the department's own; evaluate: the applicant's; system verbs
            continue
        if verb in OWNER_OR_LEADER and not (staff_id == state.get("owner") or leader):
            continue
        if verb in LEADERS_ONLY and not leader:
            continue
        if verb == "approve_extension" and not (leader and pending and pending.get("requested_by") != staff_id):
            continue
        if verb == "extend" and (pending or not state.get("due_date")):
            continue
        if verb == "rule_bounce" and not (state.get("bounce_ruling_needed") and staff_id == state.get("duty_leader")):
            continue
        if verb in ("review_notice", "review_conclude") and not state.get("reviews"):
            continue
        out.append(verb)
    return out


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses a request body larger than ``limit`` bytes (by its Content-Length, or as it streams in)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        text = (
            f"<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>提交的内容过大</title></head>"
            f"<body><main><h1>提交的内容过大</h1><p>一次提交最多 {self.limit // 1024} KB："
            "请精简情况说明等长文字后重新提交（已保存的内容不受影响）。</p>"
            "<p><a href=\"/\">返回</a></p></main></body></html>"
        )
        await HTMLResponse(text, status_code=413)(scope, receive, send)


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass
class Console:
    """Everything the screens share: the configuration, the console's files, the bus."""

    config: Config
    data_dir: Path
    bus: BusClient | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        c = self.config.console
        self.zone = display_zone(self.config.display.timezone)
        self.passwords = PasswordStore(self.data_dir)
        self.tickets = TicketQueue(self.data_dir)
        self.secret = session_secret(self.data_dir)
        self.auth = Authenticator(
            dict(self.config.staff),
            self.passwords,
            LoginLog(self.data_dir),
            self.registry,
            provider=load_provider(c.identity_provider),
            per_account=c.login_attempts_per_account,
            per_address=c.login_attempts_per_address,
            window_seconds=c.login_window_minutes * 60,
        )
        self.calendar = WorkingCalendar(self.config.deadlines.calendar_override)
        self.pm = make_plugin_manager(self.config.deadlines.working_days, self.config.escalation_chains())
        self.rating_links = URLSafeTimedSerializer(self.secret, salt="unstuck-console-rating")
        self.signed_out: set[str] = set()  # sessions ended by signing out, refused until they expire
        self._today: tuple[float, date] | None = None

    # --- what the screens need ---------------------------------------------------------------------

    def departments(self) -> list[str]:
        return self.config.department_codes()

    def department_name(self, code: str) -> str:
        name = self.config.department(code).name
        return simplified(name) if name else code

    def role(self, staff_id: str) -> str:
        return zh_label("role", self.config.staff.get(staff_id, "clerk"))

    def working_days(self, category: str) -> int | None:
        days = self.pm.hook.unstuck_deadline_working_days(category=Category(category))
        return int(days) if days is not None else None

    def due_for(self, category: str, today: date) -> tuple[int, date] | None:
        """As the broker counts it (core/broker/rules.py ``deadline``): the category's working days
        (1-3-5, or the configuration's and plugins' own) after ``today`` on the working calendar."""
        days = self.working_days(category)
        if days is None:
            return None
        return days, self.calendar.add_working_days(today, days)

    def days_left(self, due: Any, today: date) -> int | None:
        day = iso_date(due)
        return None if day is None else self.calendar.working_days_between(today, day)

    async def today(self, staff_id: str) -> date:
        """The local date on the broker's case clock (``status`` answers its ``at``), asked at most
        every few seconds; the wall clock's date when the broker cannot say."""
        now = time.monotonic()
        if self._today and now - self._today[0] < 5:
            return self._today[1]
        try:
            at = (await self.call("status", staff_id)).get("at")
            day = datetime.fromisoformat(at).astimezone(CHINA).date()
        except (BusError, TypeError, ValueError, AttributeError):
            day = datetime.now(CHINA).date()
        self._today = (now, day)
        return day

    async def call(self, verb: str, principal: str, body: dict[str, Any] | None = None) -> Any:
        if self.bus is None:
            raise BusError("控制台尚未连接总线：请稍后重试", "unavailable")
        return await self.bus.call(verb, principal, body)


# --- the app ---------------------------------------------------------------------------------------


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("unstuck.console", "templates"),
        autoescape=True,  # every template, whatever its name
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["zh"] = lambda value: simplified(str(value)) if value is not None else "-"
    env.globals.update(zh_label=zh_label, verb_label=simplified_verb, days_left_text=days_left_text)
    return env


Handler = Callable[[Request], Awaitable[Response]]


def create_app(console: Console) -> Starlette:
    env = _templates()

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
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
        html = env.get_template(template).render({**base, **context})
        return HTMLResponse(html, status_code=status)

    def current_staff(request: Request) -> str | None:
        staff = request.session.get("staff")
        if not isinstance(staff, str) or staff not in console.config.staff:
            return None
        if request.session.get("sid") in console.signed_out:
            return None
        return staff

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return token

    def flash(request: Request, text: str, kind: str = "ok") -> None:
        request.session["flash"] = [*request.session.get("flash", []), {"kind": kind, "text": text}]

    async def posted(request: Request) -> FormData:
        """The form of a POST, refused (403) unless it carries this session's CSRF token."""
        try:
            form = await request.form(max_files=0, max_fields=100, max_part_size=MAX_BODY_BYTES)
        except BodyTooLarge:
            raise
        except Exception as exc:
            raise HTTPException(400, "提交的表单无法读取：请从页面上的表单重新提交") from exc
        expected = request.session.get("csrf")
        given = form.get("csrf")
        if not isinstance(expected, str) or not isinstance(given, str) or not secrets.compare_digest(expected, given):
            log.warning("console: a POST to %s without this session's CSRF token was refused", request.url.path)
            raise HTTPException(403, "请求缺少有效的防伪令牌（CSRF）：请刷新页面后从表单重新提交")
        return form

    def signed_in(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if current_staff(request) is None:
                request.session.pop("staff", None)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
            return await handler(request)

        return guarded

    def back_to(target: str) -> RedirectResponse:
        return RedirectResponse(target, status_code=303)

    def safe_next(value: Any) -> str:
        text = value if isinstance(value, str) else ""
        return text if text.startswith("/") and not text.startswith("//") and "\\" not in text else "/queue"

    # --- signing in ---------------------------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        return render(request, "login.html", next=safe_next(request.query_params.get("next")), error=None, username="")

    async def login(request: Request) -> Response:
        form = await posted(request)
        username = str(form.get("username") or "")[:64]
        password = str(form.get("password") or "")[:256]
        address = request.client.host if request.client else "-"
        outcome = await asyncio.to_thread(console.auth.sign_in, username, password, address)
        target = safe_next(form.get("next"))
        if outcome.staff_id is None:
            if outcome.reason == "limited":
                minutes = max(1, round(outcome.wait_seconds / 60))
                error = f"登录失败次数过多：请 {minutes} 分钟后再试，或联系管理员"
            elif outcome.reason == "empty":
                error = "请填写工号和密码"
            else:
                error = "工号或密码不正确"
            return render(request, "login.html", status=401 if outcome.reason != "limited" else 429,
                          next=target, error=error, username=username)  # fmt: skip
        request.session.clear()  # a new session: nothing from before signing in carries over
        request.session.update(
            staff=outcome.staff_id, csrf=secrets.token_urlsafe(32), sid=secrets.token_urlsafe(16), at=int(time.time())
        )
        return back_to(target)

    async def logout(request: Request) -> Response:
        await posted(request)
        sid = request.session.get("sid")
        if isinstance(sid, str):
            console.signed_out.add(sid)
        request.session.clear()
        return back_to("/login")

    # --- 叫號 and intake ----------------------------------------------------------------------------

    async def home(request: Request) -> Response:
        return back_to("/queue")

    async def queue(request: Request) -> Response:
        return render(request, "queue.html", nav="queue", tickets=console.tickets.today())

    async def take_ticket(request: Request) -> Response:
        await posted(request)
        ticket = console.tickets.take()
        flash(request, f"已取号 {ticket.number}")
        return back_to("/queue")

    async def call_next(request: Request) -> Response:
        await posted(request)
        ticket = console.tickets.call_next(current_staff(request) or "")
        if ticket is None:
            flash(request, "没有等候的号", "error")
            return back_to("/queue")
        return back_to(f"/intake?ticket={ticket.number}")

    async def intake_page(request: Request) -> Response:
        number = request.query_params.get("ticket", "")
        ticket = console.tickets.find(number) if number else None
        values = {"channel": "window", "applicant_kind": "citizen"}
        return await intake_form(request, values, {}, ticket.number if ticket else "")

    async def intake_form(
        request: Request, values: Mapping[str, Any], errors: Mapping[str, str], ticket: str, status: int = 200,
        problem: str | None = None,
    ) -> Response:  # fmt: skip
        staff = current_staff(request) or ""
        today = await console.today(staff)
        category = str(values.get("category") or "")
        due = console.due_for(category, today) if category in forms.CATEGORIES else None
        return render(
            request, "intake.html", status=status, nav="intake", values=values, errors=errors, ticket=ticket,
            problem=problem, departments=[(c, console.department_name(c)) for c in console.departments()],
            categories=[(c, zh_label("category", c), console.working_days(c)) for c in forms.CATEGORIES],
            due=due, today=today,
        )  # fmt: skip

    async def intake_due(request: Request) -> Response:
        category = request.query_params.get("category", "")
        today = await console.today(current_staff(request) or "")
        due = console.due_for(category, today) if category in forms.CATEGORIES else None
        return render(request, "_due.html", due=due, today=today)

    async def open_case(request: Request) -> Response:
        form = await posted(request)
        raw = {k: str(v) for k, v in form.items() if k != "csrf"}
        ticket_number = raw.get("ticket", "")
        ticket = console.tickets.find(ticket_number) if ticket_number else None
        values, errors = forms.check(form, forms.intake_fields(console.departments()))
        if errors:
            return await intake_form(request, raw, errors, ticket_number, status=422)
        body = forms.intake_body(values, ticket.ref if ticket else None)
        try:
            result = await console.call("case.open", current_staff(request) or "", body)
        except BusError as exc:
            errors = {exc.field: exc.message} if exc.field and exc.field in raw else {}
            return await intake_form(request, raw, errors, ticket_number, status=422, problem=exc.message)
        case_id = str(result["case_id"])
        if ticket is not None:
            console.tickets.done(ticket.number, case_id)
        due = result.get("due_date")
        flash(request, f"已受理 {case_id}" + (f"，办结期限 {due}：请告知申请人" if due else "：分类后确定办结期限"))
        return back_to(f"/cases/{case_id}")

    # --- a case ---------------------------------------------------------------------------------------

    def case_id_of(request: Request) -> str:
        case_id = str(request.path_params["case_id"])
        if not forms.valid_case_id(case_id):
            raise HTTPException(404, "案件编号格式不对：应为字母、数字和连字符，例如 DD-20261127-0001")
        return case_id

    async def fetch_case(staff: str, case_id: str, **extra: Any) -> dict[str, Any]:
        try:
            return dict(await console.call("case.get", staff, {"case_id": case_id, **extra}))
        except BusError as exc:
            if exc.code == "not_found":
                raise HTTPException(404, f"案件 {case_id} 不存在：请核对案件编号") from exc
            raise

    async def case_page(request: Request) -> Response:
        return await show_case(request, case_id_of(request))

    async def show_case(
        request: Request, case_id: str, *, reveal: dict[str, Any] | None = None, open_action: str | None = None,
        values: Mapping[str, Any] | None = None, errors: Mapping[str, str] | None = None,
        problem: str | None = None, status: int = 200,
    ) -> Response:  # fmt: skip
        staff = current_staff(request) or ""
        got = reveal or await fetch_case(staff, case_id)
        state = got["state"]
        today = iso_date(got.get("today")) or await console.today(staff)
        replies: dict[str, dict[str, Any]] = {}
        timeline = []
        for e in got.get("events", []):
            if e["type"] == "coordination.replied":
                replies[e["data"]["request_id"]] = e["data"]
            timeline.append(
                {
                    "at": local_time(e.get("at"), console.zone),
                    "label": zh_label("event", e["type"]),
                    "actor": e.get("actor"),
                    "auth": e.get("auth"),
                    "text": describe(e["type"], e.get("data") or {}),
                }
            )
        coordinations = [
            {**c, "name": console.department_name(c["department"]), "reply": replies.get(c["request_id"])}
            for c in state.get("coordinations", [])
        ]
        allowed = actions_for(state, staff, console.config.rank(staff))
        return render(
            request, "case.html", status=status, nav="cases", case=state, case_id=case_id, timeline=timeline,
            coordinations=coordinations, actions=allowed, revealed=reveal is not None, today=today,
            days_left=console.days_left(state.get("due_date"), today), open_action=open_action,
            values=values or {}, errors=errors or {}, problem=problem,
            departments=[(c, console.department_name(c)) for c in console.departments()],
            staff_ids=sorted(console.config.staff), all_departments=console.departments(),
        )  # fmt: skip

    async def reveal(request: Request) -> Response:
        case_id = case_id_of(request)
        form = await posted(request)
        values, errors = forms.check(form, [forms.Field("reveal_reason", "查看理由")])
        if errors:
            return await show_case(request, case_id, open_action="reveal", values=dict(form), errors=errors, status=422)
        staff = current_staff(request) or ""
        try:
            got = await fetch_case(staff, case_id, reveal=True, reveal_reason=values["reveal_reason"])
        except BusError as exc:
            return await show_case(request, case_id, open_action="reveal", values=dict(form), problem=exc.message, status=422)
        return await show_case(request, case_id, reveal=got)

    async def act(request: Request) -> Response:
        case_id = case_id_of(request)
        action = str(request.path_params["action"])
        if action not in STAFF_VERBS:
            raise HTTPException(404, "没有这项操作")
        form = await posted(request)
        raw = {k: str(v) for k, v in form.items() if k != "csrf"}
        staff = current_staff(request) or ""
        fields = forms.action_fields(action, console.departments(), sorted(console.config.staff))
        values, errors = forms.check(form, fields)
        if errors:
            return await show_case(request, case_id, open_action=action, values=raw, errors=errors, status=422)
        try:
            result = await console.call(STAFF_VERBS[action], staff, forms.action_body(action, case_id, values))
        except BusError as exc:
            if exc.code == "not_found":
                raise HTTPException(404, f"案件 {case_id} 不存在：请核对案件编号") from exc
            bad = {exc.field: exc.message} if exc.field and exc.field in raw else {}
            return await show_case(
                request, case_id, open_action=action, values=raw, errors=bad, problem=exc.message, status=422
            )
        due = result.get("due_date") if isinstance(result, dict) else None
        flash(request, f"{simplified_verb(action)}：已办理" + (f"；办结期限 {due}" if due else ""))
        return back_to(f"/cases/{case_id}")

    # --- 好差評: the evaluation screen, turned to the applicant -----------------------------------------

    async def rating_link(request: Request) -> Response:
        case_id = case_id_of(request)
        await posted(request)
        token = console.rating_links.dumps({"case": case_id, "n": secrets.token_urlsafe(8)})
        return back_to(f"/rate/{token}")

    def rating_case(token: str) -> str:
        try:
            data = console.rating_links.loads(token, max_age=RATING_MINUTES * 60)
        except BadSignature as exc:
            raise HTTPException(404, "评价链接无效或已过期：请工作人员重新打开评价屏") from exc
        case_id = data.get("case") if isinstance(data, dict) else None
        if not isinstance(case_id, str) or not forms.valid_case_id(case_id):
            raise HTTPException(404, "评价链接无效：请工作人员重新打开评价屏")
        return case_id

    async def rating_page(request: Request) -> Response:
        token = str(request.path_params["token"])
        case_id = rating_case(token)
        staff = current_staff(request)
        departments: list[tuple[str, str]] = []
        if staff is not None:  # the departments asked, for a bad rating's 哪個部門 (a staff read)
            try:
                got = await fetch_case(staff, case_id, events=False)
                seen = dict.fromkeys(c["department"] for c in got["state"].get("coordinations", []))
                departments = [(c, console.department_name(c)) for c in seen]
            except (BusError, HTTPException):
                departments = []
        return render_rating(request, "rate.html", token=token, case_id=case_id, departments=departments, error=None)

    def render_rating(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render({"request": request, **context})
        return HTMLResponse(html, status_code=status)

    async def rate(request: Request) -> Response:
        token = str(request.path_params["token"])
        case_id = rating_case(token)
        try:
            form = await request.form(max_files=0, max_fields=20, max_part_size=MAX_BODY_BYTES)
        except BodyTooLarge:
            raise
        except Exception as exc:
            raise HTTPException(400, "提交的表单无法读取") from exc
        values, errors = forms.check(
            form,
            [
                forms.Field("rating", "评价", "choice", choices=("good", "bad")),
                forms.Field("comment", "意见", "comment", required=False),
                forms.Field("department_at_fault", "哪个部门的问题", "choice", required=False,
                            choices=tuple(console.departments())),
            ],
        )  # fmt: skip
        if errors:
            return render_rating(request, "rate.html", status=422, token=token, case_id=case_id, departments=[],
                                 error="；".join(errors.values()))  # fmt: skip
        try:
            await console.call("case.evaluate", APPLICANT, {"case_id": case_id, **values})
        except BusError as exc:
            return render_rating(request, "rate.html", status=422, token=token, case_id=case_id, departments=[],
                                 error=exc.message)  # fmt: skip
        return render_rating(request, "rated.html", rating=values["rating"])

    # --- the ledger, the inbox, the departments ----------------------------------------------------------

    async def ledger(request: Request) -> Response:
        staff = current_staff(request) or ""
        q = request.query_params
        filters: dict[str, Any] = {}
        problems = []
        if q.get("state"):
            if q["state"] in lc.STATES:
                filters["state"] = q["state"]
            else:
                problems.append("状态：请从列表中选择")
        if q.get("category"):
            if q["category"] in forms.CATEGORIES:
                filters["category"] = q["category"]
            else:
                problems.append("分类：请从列表中选择")
        if q.get("department"):
            if q["department"] in console.departments():
                filters["department"] = q["department"]
            else:
                problems.append("部门：请从列表中选择")
        if q.get("overdue") in ("yes", "no"):
            filters["overdue"] = q["overdue"] == "yes"
        owner = q.get("owner") or ""
        if owner and owner not in console.config.staff:
            problems.append("承办人：请从列表中选择")
            owner = ""
        rows: list[dict[str, Any]] = []
        problem = "；".join(problems) or None
        try:
            result = await console.call("case.list", staff, {**filters, "limit": 1000})
            today = await console.today(staff)
            for row in result.get("cases", []):
                if owner and row.get("owner") != owner:
                    continue
                rows.append({**row, "opened": local_time(row.get("opened_at"), console.zone),
                             "days_left": console.days_left(row.get("due_date"), today)
                             if row.get("on_time") is None else None})  # fmt: skip
        except BusError as exc:
            problem = exc.message
        return render(
            request, "ledger.html", nav="cases", rows=rows, q=dict(q), problem=problem, states=lc.STATES,
            categories=forms.CATEGORIES, departments=[(c, console.department_name(c)) for c in console.departments()],
            staff_ids=sorted(console.config.staff),
        )  # fmt: skip

    async def inbox(request: Request) -> Response:
        """A leader's work: extensions to approve, bounces to rule on (the duty leader), 督辦 reaching
        a leader. No verb lists them, so the open cases are read one by one (``case.get``)."""
        staff = current_staff(request) or ""
        rank = console.config.rank(staff)
        problem = None
        extensions, bounces, escalations = [], [], []
        try:
            listed = []
            for state in sorted(lc.OPEN_STATES):
                listed += (await console.call("case.list", staff, {"state": state, "limit": 1000})).get("cases", [])
            gate = asyncio.Semaphore(16)

            async def one(case_id: str) -> dict[str, Any] | None:
                async with gate:
                    try:
                        return dict((await console.call("case.get", staff, {"case_id": case_id, "events": False}))["state"])
                    except BusError:
                        return None

            states = [s for s in await asyncio.gather(*(one(r["case_id"]) for r in listed)) if s]
            for s in states:
                pending = s.get("pending_extension")
                if pending:
                    extensions.append({"case": s, "pending": pending, "mine": pending.get("requested_by") == staff,
                                       "can": rank >= lc.LEADER_RANK and pending.get("requested_by") != staff})  # fmt: skip
                if s.get("bounce_ruling_needed"):
                    bounces.append({"case": s, "can": staff == s.get("duty_leader")})
                high = {d: e for d, e in (s.get("escalations") or {}).items() if e.get("level", 0) >= lc.LEADER_RANK}
                if high:
                    escalations.append({"case": s, "levels": [(d, e["level"], local_time(e.get("at"), console.zone))
                                                              for d, e in sorted(high.items())]})  # fmt: skip
        except BusError as exc:
            problem = exc.message
        return render(
            request, "inbox.html", nav="inbox", extensions=extensions, bounces=bounces, escalations=escalations,
            problem=problem, is_leader=rank >= lc.LEADER_RANK,
        )  # fmt: skip

    async def department_rows(staff: str) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
        try:
            report = dict(await console.call("status", staff))
        except BusError as exc:
            return [], {}, exc.message
        rows = [{**r, "name": console.department_name(r["department"])} for r in report.get("departments", [])]
        report["at_local"] = local_time(report.get("at"), console.zone)
        return rows, report, None

    async def departments(request: Request) -> Response:
        rows, report, problem = await department_rows(current_staff(request) or "")
        return render(request, "departments.html", nav="departments", rows=rows, report=report, problem=problem)

    async def departments_table(request: Request) -> Response:
        rows, report, problem = await department_rows(current_staff(request) or "")
        return render(request, "_departments_table.html", rows=rows, report=report, problem=problem)

    # --- errors, health, metrics ---------------------------------------------------------------------------

    async def http_error(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else ""
        messages = {404: "找不到这个页面", 405: "不支持这种请求方式", 403: "请求被拒绝", 400: "请求有误"}
        text = detail if detail and not detail.isascii() else messages.get(code, "请求有误")
        return render(request, "error.html", status=code, message=text)

    async def bus_error(request: Request, exc: Exception) -> Response:
        message = exc.message if isinstance(exc, BusError) else "总线暂时不可用"
        return render(request, "error.html", status=503, message=message)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("console: %s %s failed", request.method, request.url.path, exc_info=exc)
        return render(request, "error.html", status=500, message="系统出错了：操作可能没有完成，请刷新页面查看，或联系运维人员")

    async def healthz(request: Request) -> Response:
        ok = console.bus is not None and console.bus.nc.is_connected
        return PlainTextResponse("ok\n" if ok else "bus not connected\n", status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(console.registry), media_type=CONTENT_TYPE_LATEST)

    static = StaticFiles(directory=str(resources.files("unstuck.console") / "static"))
    routes = [
        Route("/", signed_in(home)),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/queue", signed_in(queue)),
        Route("/queue/take", signed_in(take_ticket), methods=["POST"]),
        Route("/queue/call", signed_in(call_next), methods=["POST"]),
        Route("/intake", signed_in(intake_page), methods=["GET"]),
        Route("/intake", signed_in(open_case), methods=["POST"]),
        Route("/intake/due", signed_in(intake_due)),
        Route("/cases", signed_in(ledger)),
        Route("/cases/{case_id}", signed_in(case_page)),
        Route("/cases/{case_id}/reveal", signed_in(reveal), methods=["POST"]),
        Route("/cases/{case_id}/rate", signed_in(rating_link), methods=["POST"]),
        Route("/cases/{case_id}/act/{action}", signed_in(act), methods=["POST"]),
        Route("/rate/{token}", rating_page, methods=["GET"]),
        Route("/rate/{token}", rate, methods=["POST"]),
        Route("/inbox", signed_in(inbox)),
        Route("/departments", signed_in(departments)),
        Route("/departments/table", signed_in(departments_table)),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Mount("/static", app=static, name="static"),
    ]
    c = console.config.console
    app = Starlette(
        debug=False,
        routes=routes,
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
        exception_handlers={
            HTTPException: http_error,
            BusError: bus_error,
            Exception: server_error,
        },
    )
    app.state.console = console
    return app

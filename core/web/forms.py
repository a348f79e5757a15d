"""Forms posted to the web apps: read within the body limit, and refused without the session's CSRF token."""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from .middleware import MAX_BODY_BYTES, BodyTooLarge

log = logging.getLogger("unstuck.web")

_HTML = re.compile(r"<\s*[A-Za-z!/?]")


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use), for the hidden ``csrf`` field of every form."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def read_form(request: Request, max_fields: int = 100) -> FormData:
    try:
        return await request.form(max_files=0, max_fields=max_fields, max_part_size=MAX_BODY_BYTES)
    except BodyTooLarge:
        raise
    except Exception as exc:
        raise HTTPException(400, "提交的表单无法读取：请从页面上的表单重新提交") from exc


def csrf_ok(request: Request, form: FormData) -> bool:
    expected = request.session.get("csrf")
    given = form.get("csrf")
    return isinstance(expected, str) and isinstance(given, str) and secrets.compare_digest(expected, given)


async def posted(request: Request) -> FormData:
    """The form of a POST, refused (403) unless it carries this session's CSRF token."""
    form = await read_form(request)
    if not csrf_ok(request, form):
        log.warning("a POST to %s without this session's CSRF token was refused", request.url.path)
        raise HTTPException(403, "请求缺少有效的防伪令牌（CSRF）：请刷新页面后从表单重新提交")
    return form


def text_problem(label: str, value: str, limit: int) -> str | None:
    """What is wrong with free text for field ``label`` (in Chinese): too long, control characters or
    escape sequences, HTML. None when it may be sent; the pages show text as text in any case."""
    if len(value) > limit:
        return f"{label}：最多 {limit} 个字，现有 {len(value)} 个，请精简"
    for ch in value:
        if ch in "\n\r\t":
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") and ch not in "\u200d":
            return f"{label}：含有控制字符或转义序列（U+{ord(ch):04X}），请删去后重新输入"
    if _HTML.search(value):
        return f"{label}：请勿输入 HTML 标记（如 <b>、<script>），请用文字描述"
    return None

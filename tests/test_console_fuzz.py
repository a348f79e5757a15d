"""Fuzzing the window console's forms and pages over HTTP with hypothesis.

The console runs on uvicorn against a real nats-server, broker and the built-in adapters
(``test_console_helpers.ConsoleBus``), and every form and page of it is sent what a browser never
sends: arbitrary text (control characters, escape sequences, HTML and script, template syntax,
strings over the limits, rare unicode), non-UTF-8 bytes, numbers where text belongs, fields missing,
given twice or unknown, bodies over the limit, odd content types (JSON, plain text, multipart with a
file or without a boundary, another charset), and addresses with odd case ids, actions and tokens
(``../``, percent escapes, unicode, other methods). Each request is made signed in as a clerk or as a
leader with the session's CSRF token (so the handlers are reached), and without it, and with no, a
fresh or a forged session.

Every answer must have:

- a status below 500, and no traceback or internal name (a Python exception, a source path, a NATS
  subject) in the page;
- for a refusal, a Chinese page whose every message is in Chinese, and whose message beside a field
  starts with that field's Chinese label (``标签：…``);
- where the form was checked (signed in, the CSRF token, a body the console can read), every field
  the fuzzer made plainly bad (a required one missing, one over its limit, a control character, HTML,
  a value not among the choices) named in a 422 page: nothing bad is accepted;
- what the fuzzer sent shown as text, never as markup: the page parses to the templates' own tags and
  attributes only, its only script is htmx from /static, and a redirect stays on the console's site.

The console's log must show no traceback. ``make test`` runs a small reproducible number of examples
per endpoint; ``make fuzz`` sets UNSTUCK_FUZZ_EXAMPLES and explores at random (docs/console.md).
The tests after the fuzzers are the examples it found, each fixed in the console.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import socket
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_console_helpers import INTAKE, PASSWORD, ConsoleBus, csrf_of

from unstuck.console import forms
from unstuck.console.app import SESSION_COOKIE
from unstuck.console.context import STAFF_VERBS
from unstuck.testing import resident_id
from unstuck.web.middleware import MAX_BODY_BYTES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("UNSTUCK_FUZZ_EXAMPLES", "40"))
FULL_RUN = "UNSTUCK_FUZZ_EXAMPLES" in os.environ
RESULTS = ROOT / "reliability-results" / "fuzz.json"

fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not FULL_RUN,  # make test: the same examples every run; make fuzz: new ones
    database=None,
    suppress_health_check=list(HealthCheck),
)

CLERK, LEADER = "w-zhang", "leader-gao"
SIGNED_IN = ("clerk", "leader")
SESSIONS = ("clerk", "clerk", "leader", "leader", "anonymous", "none", "forged")
CSRF_MODES = ("valid", "valid", "valid", "missing", "forged", "empty", "twice")

# --- what a page may contain: the templates' own markup, nothing the fuzzer sent --------------------

TEMPLATES = ROOT / "core" / "console" / "templates"
_MARKUP = "\n".join(p.read_text(encoding="utf-8") for p in sorted(TEMPLATES.glob("*.html")))
_MARKUP += (ROOT / "core" / "web" / "middleware.py").read_text(encoding="utf-8")  # the 413 page
TAGS = frozenset(re.findall(r"</?([a-z][a-z0-9]*)[\s>]", _MARKUP))
ATTRIBUTES = frozenset(re.findall(r"[\s%}]([a-z][a-z-]*)=[\"']", _MARKUP)) | {
    "required", "selected", "open", "defer", "novalidate", "checked",
}  # fmt: skip
ADDRESSES = frozenset({"href", "src", "action", "hx-get"})  # attributes a browser follows
VOID = frozenset({"meta", "link", "input", "br", "img", "hr"})
CJK = re.compile(r"[\u4e00-\u9fff]")
HTML_MARK = "<fz"  # the fuzzer's own HTML: never in a page as markup
# what a page never shows unless the fuzzer typed it: a traceback, Python's names, NATS subjects
INTERNALS = (
    "Traceback", 'File "', ".py", "site-packages", "starlette", "jinja2", "uvicorn", "Exception",
    "KeyError", "ValueError", "TypeError", "AttributeError", "Internal Server Error", "internal error",
    "unstuck.api", "_INBOX", "$JS", "{'", "pydantic",
)  # fmt: skip


class Page(HTMLParser):
    """A page's tags and attributes, and the text of its messages (class problem or error) by id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.messages: list[tuple[str, str]] = []
        self._depth = 0
        self._open: list[tuple[int, str, list[str]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.tags.append((tag, named))
        if tag in VOID:
            return
        self._depth += 1
        if {"problem", "error"} & set((named.get("class") or "").split()):
            self._open.append((self._depth, named.get("id") or "", []))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self._open and self._open[-1][0] == self._depth:
            _, ident, parts = self._open.pop()
            self.messages.append((ident, "".join(parts).strip()))
            if self._open:
                self._open[-1][2].extend(parts)
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)

    def shown(self) -> str:
        return "\n".join(text for _, text in self.messages)


# --- the console under fuzz -----------------------------------------------------------------------


class Captured(logging.Handler):
    """The console's log (its own loggers, uvicorn's that serves it, Starlette's): every record with a
    traceback or at ERROR. The bus's own components log elsewhere."""

    SOURCES = ("unstuck.console", "uvicorn", "starlette")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(self.SOURCES):
            return
        if record.exc_info or record.levelno >= logging.ERROR or "Traceback" in record.getMessage():
            self.records.append(record)

    def assert_clean(self) -> None:
        assert not self.records, [
            f"{r.name}: {r.getMessage()}\n{self.format(r) if r.exc_info else ''}" for r in self.records[:3]
        ]


@dataclass
class Session:
    cookie: str | None  # the unstuck_console cookie
    csrf: str


@dataclass
class Fuzzed:
    bus: ConsoleBus
    web: httpx.Client
    sessions: dict[str, Session]
    cases: list[str]  # open cases
    closed: list[str]  # closed cases, for the evaluation screen
    tokens: list[str]  # rating links of the closed cases
    log: Captured
    statuses: Counter[str] = field(default_factory=Counter)

    def send(
        self, method: str, target: str, session: Session, body: Any = b"", content_type: str | None = None
    ) -> httpx.Response:
        headers = {"cookie": f"{SESSION_COOKIE}={session.cookie}"} if session.cookie else {}
        if content_type is not None:
            headers["content-type"] = content_type
        self.web.cookies.clear()  # each request carries the session drawn for it, nothing the last one set
        return self.web.request(method, target, content=body, headers=headers)


def session_of(bus: ConsoleBus, staff: str | None) -> Session:
    """A fresh session: signed in as ``staff`` over /login, or only visited /login (None)."""
    with httpx.Client(base_url=bus.url, timeout=30) as web:
        token = csrf_of(web.get("/login").text)
        if staff is None:
            return Session(web.cookies[SESSION_COOKIE], token)
        done = web.post("/login", data={"csrf": token, "username": staff, "password": PASSWORD, "next": "/"})
        assert done.status_code == 303, done.text[:300]
        return Session(web.cookies[SESSION_COOKIE], csrf_of(web.get("/queue").text))


def open_case(fc: Fuzzed, closed: bool = False) -> str:
    """A case opened in the console by the clerk (for an applicant of its own: the daily quota counts
    per applicant), closed when asked."""
    clerk = fc.sessions["clerk"]
    applicant = {"applicant_kind": "citizen", "id_number": resident_id(uuid.uuid4().int % 10**7)}
    form = urlencode({**INTAKE, **applicant, "csrf": clerk.csrf, "ticket": ""})
    opened = fc.send("POST", "/intake", clerk, form, "application/x-www-form-urlencoded")
    assert opened.status_code == 303, opened.text[:500]
    case_id = opened.headers["location"].rsplit("/", 1)[1]
    if closed:
        close = urlencode({"csrf": clerk.csrf, "outcome": "withdrawn", "explanation": "申請人撤回"})
        done = fc.send(
            "POST", f"/cases/{case_id}/act/close", clerk, close, "application/x-www-form-urlencoded"
        )
        assert done.status_code == 303, done.text[:500]
    return case_id


def rating_token(fc: Fuzzed, case_id: str) -> str:
    clerk = fc.sessions["clerk"]
    link = fc.send("POST", f"/cases/{case_id}/rate", clerk, urlencode({"csrf": clerk.csrf}),
                   "application/x-www-form-urlencoded")  # fmt: skip
    assert link.status_code == 303, link.text[:300]
    return str(link.headers["location"]).removeprefix("/rate/")


@pytest.fixture(scope="module")
def fc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """The console on a real bus, a clerk's, a leader's and an anonymous session, cases open and closed."""
    bus = ConsoleBus(tmp_path_factory.mktemp("console-fuzz")).start()
    log = Captured()
    watched = [logging.getLogger(), logging.getLogger("uvicorn")]  # uvicorn's logger does not propagate
    web = httpx.Client(base_url=bus.url, timeout=60, follow_redirects=False)
    try:
        sessions = {
            "clerk": session_of(bus, CLERK),
            "leader": session_of(bus, LEADER),
            "anonymous": session_of(bus, None),
            "none": Session(None, "no-session"),
        }
        fuzzed = Fuzzed(bus, web, sessions, [], [], [], log)
        fuzzed.cases += [open_case(fuzzed) for _ in range(3)]
        fuzzed.closed += [open_case(fuzzed, closed=True) for _ in range(2)]
        fuzzed.tokens += [rating_token(fuzzed, case_id) for case_id in fuzzed.closed]
        for logger in watched:
            logger.addHandler(log)
        started = time.perf_counter()
        yield fuzzed
        log.assert_clean()
        _record_figures(fuzzed.statuses, time.perf_counter() - started)
    finally:
        for logger in watched:
            logger.removeHandler(log)
        web.close()
        bus.stop()


def _record_figures(statuses: Counter[str], seconds: float) -> None:
    if not FULL_RUN:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    codes = {int(k): v for k, v in statuses.items() if k.isdigit()}
    data["console"] = {
        "examples": statuses["examples"],
        "per_endpoint": EXAMPLES,
        "endpoints": sum(1 for name in globals() if name.startswith("test_fuzzed_")),
        "crashes": sum(v for k, v in codes.items() if k >= 500),
        "invalid_accepted": 0,  # a plainly bad field accepted fails the run
        "accepted": sum(v for k, v in codes.items() if k < 400),
        "refused": {str(k): v for k, v in sorted(codes.items()) if k >= 400},
        "seconds": round(seconds, 1),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    RESULTS.write_text(
        json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


# --- what the fuzzer sends ------------------------------------------------------------------------

PAYLOADS = (
    "<script>alert(1)</script>", '"><svg onload=alert(1)>', "'><img src=x onerror=alert(1)>",
    "javascript:alert(1)", "{{ 7*7 }}", "{% for x in y %}", "${7*7}", "\x1b[31m红\x1b[0m",
    "\x1b]0;标题\x07", "\u202e反转", "\ufeff前", "零\u200b宽", "\x00", "\r\n\r\n", "\t", "../../etc/passwd",
    "%2e%2e%2f", "' OR 1=1 --", "¹²³", "²", "٣", "１２３", "　", "𠀋𡈽", "🙂", "ﷺ", "null", "None", "true",
    "-1", "0", "1e309", "NaN", "[]", "{}", "&lt;b&gt;", "&#60;fz&#62;", "floor=2\nfloor=3", "a=b=c",
    "shop_sign", "window", "citizen", "good", "DD-20260928-0001", "w-li", "director-ma",
    HTML_MARK + ">标记</fz>", '"><fz onmouseover=alert(1)>', "'><fz/x>", "</textarea><fz>",
    HTML_MARK.upper() + " x>", "<\nfz>",
)  # fmt: skip
LONG = (199, 200, 201, 2000, 2001, 4000, 4001, 9000)


def padded(n: int, unit: str) -> str:
    return unit * n


nasty = st.one_of(
    st.text(max_size=30),  # anything: control characters, rare scripts, lone combining marks
    st.sampled_from(PAYLOADS),
    st.lists(st.sampled_from(PAYLOADS) | st.text(max_size=5), min_size=2, max_size=4).map("".join),
    st.builds(padded, st.sampled_from(LONG), st.sampled_from(["長", "a", " ", "\n", "\u0301"])),
    st.integers().map(str),
    st.floats().map(str),
)


@dataclass
class Draft:
    session: str
    csrf: str
    pairs: list[tuple[str, str]]
    encoding: str


ENCODINGS = (
    *["urlencoded"] * 6, *["multipart"] * 3, "with_file", "latin1_bytes", "gbk", "json", "text", "none",
    "no_boundary", "too_many_fields", "huge", "huge_chunked",
)  # fmt: skip
READABLE = frozenset({"urlencoded", "multipart"})  # the encodings whose fields the console reads as sent


@st.composite
def drafts(
    draw: st.DrawFn, fields: dict[str, st.SearchStrategy[str]], sessions: Sequence[str] = SESSIONS
) -> Draft:
    """A form: the fields valid, one wrong or each anything (missing, twice, nasty), unknown fields
    (``actor`` and ``owner`` among them), a session and a CSRF mode, and how the body is encoded."""
    how = draw(
        st.sampled_from(["one_wrong", "anything", "one_wrong", "valid"])
    )  # hypothesis favours the first
    wrong = draw(st.sampled_from(sorted(fields))) if fields and how == "one_wrong" else None
    pairs: list[tuple[str, str]] = []
    for name, valid in fields.items():
        kind = "valid"
        if how == "anything" or name == wrong:
            kind = draw(st.sampled_from(["nasty", "nasty", "missing", "twice", "valid"]))
        if kind == "valid":
            pairs.append((name, draw(valid)))
        elif kind == "nasty":
            pairs.append((name, draw(nasty)))
        elif kind == "twice":
            pairs += [(name, draw(nasty | valid)), (name, draw(nasty | valid))]
    names = st.sampled_from(["actor", "owner", "case_id", "do", "reveal", "staff"]) | st.text(max_size=12)
    pairs += draw(st.lists(st.tuples(names, nasty), max_size=2))
    pairs = draw(st.permutations(pairs))
    return Draft(draw(st.sampled_from(sessions)), draw(st.sampled_from(CSRF_MODES)), pairs,
                 draw(st.sampled_from(ENCODINGS)))  # fmt: skip


def with_csrf(pairs: list[tuple[str, str]], mode: str, token: str) -> list[tuple[str, str]]:
    given = {
        "valid": [("csrf", token)],
        "missing": [],
        "forged": [("csrf", token[:-4] + "AAAA")],
        "empty": [("csrf", "")],
        "twice": [("csrf", "forged"), ("csrf", token)],  # the console reads the last
    }[mode]
    return [*given, *pairs]


def multipart(pairs: list[tuple[str, str]], file_at: int | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks = []
    for n, (name, value) in enumerate(pairs):
        safe = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        filename = '; filename="a.txt"' if n == file_at else ""
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{safe}"{filename}\r\n\r\n'.encode()
            + value.encode("utf-8", "surrogatepass")
            + b"\r\n"
        )
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def encode(pairs: list[tuple[str, str]], how: str) -> tuple[Any, str | None]:
    """The body and its content type, as ``how`` says."""
    form = "application/x-www-form-urlencoded"
    if how == "urlencoded":
        return urlencode(pairs).encode(), form
    if how == "multipart":
        return multipart(pairs)
    if how == "with_file":
        return multipart([*pairs, ("upload", "文件内容")], file_at=len(pairs))
    if how == "latin1_bytes":  # raw bytes that are no UTF-8, and broken percent escapes
        return urlencode(pairs).encode() + b"&description=\xff\xfe\x80%ff%C3%28%zz&x\x00=\xe9", form
    if how == "gbk":
        return urlencode(pairs, encoding="gbk", errors="replace").encode(), f"{form}; charset=gbk"
    if how == "json":
        return json.dumps(dict(pairs), ensure_ascii=False).encode(), "application/json"
    if how == "text":
        return "\n".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "replace"), "text/plain; charset=utf-8"
    if how == "none":
        return urlencode(pairs).encode(), None
    if how == "no_boundary":
        return multipart(pairs)[0], "multipart/form-data"
    if how == "too_many_fields":
        return urlencode([*pairs, *((f"f{n}", "x") for n in range(150))]).encode(), form
    if how == "huge":
        return urlencode([*pairs, ("description", "長" * 30000)]).encode(), form
    assert how == "huge_chunked"  # no Content-Length: counted as it streams in
    body = urlencode([*pairs, ("description", "a" * (MAX_BODY_BYTES + 10))]).encode()
    return (body[i : i + 8192] for i in range(0, len(body), 8192)), form


# --- judging an answer ----------------------------------------------------------------------------


def judge(fc: Fuzzed, response: httpx.Response, sent: str) -> Page | None:
    """What every answer must satisfy; the parsed page when it is HTML."""
    status = response.status_code
    fc.statuses[str(status)] += 1
    fc.statuses["examples"] += 1
    where = f"{response.request.method} {response.request.url.raw_path.decode()[:200]} -> {status}"
    assert status < 500, (where, sent[:800], response.text[:800])
    fc.log.assert_clean()
    if 300 <= status < 400:
        location = response.headers["location"].removeprefix(
            fc.bus.url
        )  # Starlette's slash redirects are absolute
        assert location.startswith("/") and not location.startswith("//"), (where, location)
        assert not re.search(r"[\x00-\x20\\]", location), (where, location)
    if response.request.method == "HEAD" or not response.headers.get("content-type", "").startswith(
        "text/html"
    ):
        return None
    body = response.text
    page = Page(body)
    for tag, attrs in page.tags:
        assert tag in TAGS, (where, tag, sent[:500])
        for name, value in attrs.items():
            assert name in ATTRIBUTES, (where, tag, name, sent[:500])
            if name in ADDRESSES:
                assert not (value or "").strip().lower().startswith("javascript:"), (where, tag, name, value)
        if tag == "script":
            assert attrs.get("src") == "/static/htmx.min.js", (where, attrs)
    assert HTML_MARK not in body.lower(), (where, sent[:500])
    text = html.unescape(body)
    leaked = [m for m in INTERNALS if m in text and m not in sent]
    assert not leaked, (where, leaked, sent[:500], body[:2000])
    if status >= 400:
        assert 'lang="zh-CN"' in body, where
        if status == 413:
            assert "提交的内容过大" in body
        else:
            assert page.messages, (where, body[:1500])
            assert all(CJK.search(message) for _, message in page.messages), (where, page.messages)
    return page


def named_by_label(page: Page, labels: dict[str, str], prefix: str) -> None:
    """Each message beside a field starts with that field's Chinese label."""
    for ident, message in page.messages:
        if ident.startswith("e-" + prefix):
            name = ident.removeprefix("e-" + prefix)
            assert name in labels and message.startswith(labels[name] + "："), (ident, message)


def plainly_bad(f: forms.Field, value: str | None) -> bool:
    """Whether ``value`` for ``f`` is one no reading of the form accepts (a second opinion on forms.check)."""
    text = (value or "").strip().replace("\r\n", "\n")
    if not text:
        return f.required
    limit = {"long": forms.LONG, "facts": forms.LONG, "comment": forms.COMMENT}.get(f.kind, forms.SHORT)
    control = any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in text)
    return (
        len(text) > limit or control or HTML_MARK in text.lower() or bool(f.choices and text not in f.choices)
    )


@dataclass
class Sent:
    response: httpx.Response
    pairs: dict[str, str] | None  # the fields as the console read them; None when it could not
    checked: bool  # signed in, the session's CSRF token, a body the console reads: the form was checked


def submit(fc: Fuzzed, method: str, target: str, draft: Draft, csrf: bool = True) -> Sent:
    session = fc.sessions.get(draft.session) or Session("x" * 40 + ".forged", "forged")
    pairs = with_csrf(draft.pairs, draft.csrf, session.csrf) if csrf else draft.pairs
    body, content_type = encode(pairs, draft.encoding)
    response = fc.send(method, target, session, body, content_type)
    readable = draft.encoding in READABLE and len(urlencode(pairs)) < MAX_BODY_BYTES // 2
    final = dict(pairs) if readable else None  # the last of a field given twice counts
    checked = (
        final is not None and draft.session in SIGNED_IN and (not csrf or final.get("csrf") == session.csrf)
    )
    sent = f"{target}\n" + "\n".join(f"{k}={v}" for k, v in pairs)
    judge(fc, response, sent)
    return Sent(response, final, checked)


def check_form(fc: Fuzzed, sent: Sent, fields: list[forms.Field], prefix: str = "") -> None:
    """Every message beside a field names it; every plainly bad field is named and nothing is accepted."""
    response = sent.response
    page = Page(response.text) if response.headers.get("content-type", "").startswith("text/html") else None
    if page is not None:
        named_by_label(page, {f.name: f.label for f in fields}, prefix)
    if not sent.checked or sent.pairs is None:
        return
    bad = [f for f in fields if plainly_bad(f, sent.pairs.get(f.name))]
    if bad:
        assert response.status_code == 422 and page is not None, (response.status_code, sent.pairs, bad)
        unnamed = [f.label for f in bad if f"{f.label}：" not in page.shown()]
        assert not unnamed, (unnamed, sent.pairs, page.messages)


def valid_for(f: forms.Field) -> st.SearchStrategy[str]:
    """A value the console accepts for ``f`` (so that an example reaches the broker)."""
    if f.choices:
        return st.sampled_from(f.choices)
    if f.kind == "days":
        return st.integers(f.low, f.high).map(str)
    if f.kind in ("long", "comment"):
        return st.sampled_from(["已电话联系申请人，说明需补充的材料。", "部门答复不能办：依据见附件。"])
    return st.sampled_from(["按规定办理", "电话", "二楼窗口", "王丽"])


def case_ids(fc: Fuzzed) -> st.SearchStrategy[str]:
    """Mostly cases that exist; else odd ids, escaped for the address (``..``, ``%2F``, unicode)."""
    odd = st.sampled_from(
        ["DD-20990101-9999", "..", ".", "%2e%2e", "..%2F..%2Fetc", "%00", "DD%20x", "a" * 65]
    )
    return (
        st.sampled_from(fc.cases + fc.closed)
        | odd
        | st.text(min_size=1, max_size=20).map(lambda s: quote(s, safe=""))
    )


# --- the fuzzers: one per endpoint ----------------------------------------------------------------


def test_fuzzed_intake_forms_are_checked_field_by_field(fc: Fuzzed) -> None:
    fields = forms.intake_fields(fc.bus.config.department_codes())
    valid = {f.name: st.just(str(INTAKE[f.name])) for f in fields if f.name in INTAKE}
    valid["id_number"] = st.integers(0, 10**7).map(resident_id) | st.just(INTAKE["id_number"])
    valid["category"] = st.sampled_from(["", *forms.CATEGORIES])
    valid["ticket"] = st.sampled_from(["", "A001", "A999"])

    @fuzz_settings
    @given(drafts(valid))
    def check(draft: Draft) -> None:
        sent = submit(fc, "POST", "/intake", draft)
        check_form(fc, sent, fields)

    check()


def test_fuzzed_case_actions_are_checked_field_by_field(fc: Fuzzed) -> None:
    departments, staff = fc.bus.config.department_codes(), sorted(fc.bus.config.staff)
    actions = st.sampled_from(sorted(STAFF_VERBS)) | st.sampled_from(
        ["record", "evaluate", "..", "%2e", "关闭"]
    )

    @st.composite
    def requests(draw: st.DrawFn) -> tuple[str, str, list[forms.Field], Draft]:
        case_id, action = draw(case_ids(fc)), draw(actions)
        fields = forms.action_fields(action, departments, staff) if action in STAFF_VERBS else []
        return case_id, action, fields, draw(drafts({f.name: valid_for(f) for f in fields}))

    @fuzz_settings
    @given(requests())
    def check(request: tuple[str, str, list[forms.Field], Draft]) -> None:
        case_id, action, fields, draft = request
        sent = submit(fc, "POST", f"/cases/{case_id}/act/{quote(action, safe='%')}", draft)
        sent.checked = sent.checked and case_id in fc.cases + fc.closed and action in STAFF_VERBS
        check_form(fc, sent, fields, prefix=f"{action}-")

    check()


def test_fuzzed_reveal_reasons_are_checked(fc: Fuzzed) -> None:
    fields = [forms.Field("reveal_reason", "查看理由")]

    @fuzz_settings
    @given(case_ids(fc), drafts({"reveal_reason": st.just("核对申请人身份")}))
    def check(case_id: str, draft: Draft) -> None:
        sent = submit(fc, "POST", f"/cases/{case_id}/reveal", draft)
        sent.checked = sent.checked and case_id in fc.cases + fc.closed
        check_form(fc, sent, fields, prefix="reveal-")

    check()


def test_fuzzed_ratings_on_the_evaluation_screen(fc: Fuzzed) -> None:
    fields = [
        forms.Field("rating", "评价", "choice", choices=("good", "bad")),
        forms.Field("comment", "意见", "comment", required=False),
        forms.Field("department_at_fault", "哪个部门的问题", "choice", required=False,
                    choices=tuple(fc.bus.config.department_codes())),
    ]  # fmt: skip
    valid = {f.name: valid_for(f) for f in fields}
    tokens = (
        st.sampled_from(fc.tokens)
        | st.sampled_from(fc.tokens).map(lambda t: t[:-3] + "AAA")
        | st.text(min_size=1, max_size=60).map(lambda s: quote(s, safe=""))
    )

    @fuzz_settings
    @given(tokens, st.sampled_from(["GET", "POST"]), drafts(valid))
    def check(token: str, method: str, draft: Draft) -> None:
        sent = submit(fc, method, f"/rate/{token}", draft, csrf=False)
        sent.checked = method == "POST" and token in fc.tokens and sent.pairs is not None
        check_form(fc, sent, fields)

    check()


def test_fuzzed_posts_without_fields(fc: Fuzzed) -> None:
    """叫號 (take a number, call the next), opening the evaluation screen: a CSRF token, nothing else."""
    targets = st.sampled_from(["/queue/take", "/queue/call"]) | case_ids(fc).map(lambda c: f"/cases/{c}/rate")

    @fuzz_settings
    @given(targets, drafts({}))
    def check(target: str, draft: Draft) -> None:
        submit(fc, "POST", target, draft)

    check()


LEDGER_FILTERS = {"state": "状态", "category": "分类", "department": "部门", "owner": "承办人"}


def test_fuzzed_query_strings_of_every_page(fc: Fuzzed) -> None:
    pages = st.sampled_from([
        "/", "/login", "/queue", "/intake", "/intake/due", "/cases", "/inbox", "/departments",
        "/departments/table", "/healthz", "/metrics", "/static/console.css",
    ]) | case_ids(fc).map(lambda c: f"/cases/{c}")  # fmt: skip
    names = st.sampled_from(["next", "ticket", "category", "state", "department", "owner", "overdue", "q"])
    short = nasty.filter(lambda v: len(v) < 600)  # a longer address is refused by uvicorn, before the console
    values = short | st.sampled_from(["closed", "cannot", "chengguan", "w-li", "yes", "no", "A001", "/cases"])
    queries = st.lists(st.tuples(names | st.text(max_size=8), values), max_size=5)

    @fuzz_settings
    @given(pages, queries, st.sampled_from(SESSIONS), st.booleans())
    def check(page: str, query: list[tuple[str, str]], who: str, raw_bytes: bool) -> None:
        target = page + "?" + urlencode(query) + ("&next=%ff%fe%C3%28&ticket=%zz" if raw_bytes else "")
        session = fc.sessions.get(who) or Session("forged-cookie", "")
        response = fc.send("GET", target, session)
        shown = judge(fc, response, target + "\n" + "\n".join(f"{k}={v}" for k, v in query))
        last = dict(query)
        if page == "/cases" and who in SIGNED_IN and shown is not None and not raw_bytes:
            for name, label in LEDGER_FILTERS.items():  # a filter that is not one of the choices is named
                if last.get(name) and last[name] not in ledger_choices(fc, name):
                    assert f"{label}：请从列表中选择" in shown.shown(), (name, last[name], shown.messages)

    check()


def ledger_choices(fc: Fuzzed, name: str) -> Sequence[str]:
    from unstuck import lifecycle as lc

    return {
        "state": lc.STATES,
        "category": forms.CATEGORIES,
        "department": fc.bus.config.department_codes(),
        "owner": list(fc.bus.config.staff),
    }[name]


# addresses as a client may write them on the wire: dot segments and escapes a client library would tidy
SEGMENTS = ("..", ".", "%2e%2e", "%2E%2e%2f", "%2F", "%00", "%ff", "%", "%zz", "%C3%28", "~", ";x=1", "")


def raw_request(fc: Fuzzed, method: str, target: str, session: Session) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with ``target`` exactly as given (httpx would normalise the dot segments)."""
    host, port = urlsplit(fc.bus.url).hostname, urlsplit(fc.bus.url).port
    cookie = f"Cookie: {SESSION_COOKIE}={session.cookie}\r\n" if session.cookie else ""
    request = f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{cookie}Content-Length: 0\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(request.encode("ascii"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_fuzzed_addresses_and_methods(fc: Fuzzed) -> None:
    """Case ids, actions and tokens with ``../``, escapes and unicode, on the wire; other methods."""
    segment = st.sampled_from(SEGMENTS) | st.text(max_size=12).map(lambda s: quote(s, safe="!$&'()*+,;=:@"))
    prefixes = st.sampled_from(
        ["/cases/", "/cases/DD-20260928-0001/act/", "/rate/", "/static/", "/", "/intake/"]
    )
    methods = st.sampled_from(["GET", "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "FUZZ"])

    @fuzz_settings
    @given(methods, prefixes, st.lists(segment, min_size=1, max_size=6), st.sampled_from(SESSIONS))
    def check(method: str, prefix: str, segments: list[str], who: str) -> None:
        target = prefix + "/".join(segments)
        session = fc.sessions.get(who) or Session("forged-cookie", "")
        status, headers, body = raw_request(fc, method, target, session)
        fake = httpx.Response(
            status, headers=headers, content=body, request=httpx.Request(method, fc.bus.url)
        )
        judge(fc, fake, target)

    check()


def test_fuzzed_sign_outs(fc: Fuzzed) -> None:
    """Signing out ends a session: each example that would end one gets a session of its own."""

    @fuzz_settings
    @given(drafts({}))
    def check(draft: Draft) -> None:
        own = dict(fc.sessions)
        if draft.session in SIGNED_IN and draft.csrf in ("valid", "twice"):
            fc.sessions = {
                **own,
                draft.session: session_of(fc.bus, CLERK if draft.session == "clerk" else LEADER),
            }
        try:
            submit(fc, "POST", "/logout", draft)
        finally:
            fc.sessions = own

    check()


def test_fuzzed_sign_ins(fc: Fuzzed) -> None:
    """The last fuzzer: failed sign-ins soon make this client address wait (429), as they should."""
    valid = {
        "username": st.sampled_from([CLERK, LEADER, "w-nobody", " w-zhang "]),
        "password": st.sampled_from([PASSWORD, "wrong password"]),
        "next": st.sampled_from(
            ["/queue", "/cases/DD-1", "//evil.example", "/\\evil", "https://evil.example"]
        ),
    }

    @fuzz_settings
    @given(drafts(valid, sessions=("anonymous", "anonymous", "clerk", "none", "forged")))
    def check(draft: Draft) -> None:
        submit(fc, "POST", "/login", draft)

    check()


# --- what the fuzzer found: each an example of its own, fixed in the console ------------------------


def post_form(fc: Fuzzed, who: str, target: str, **fields: str) -> httpx.Response:
    session = fc.sessions[who]
    form = urlencode({"csrf": session.csrf, **fields})
    return fc.send("POST", target, session, form, "application/x-www-form-urlencoded")


def attributes_of(page: str, element_id: str) -> dict[str, str | None]:
    return next(attrs for _, attrs in Page(page).tags if attrs.get("id") == element_id)


def test_working_days_a_digit_python_cannot_read_as_a_number_are_refused_by_name(fc: Fuzzed) -> None:
    """ "²" is a digit to str.isdigit but not a number to int(): it was a server error (500)."""
    values, errors = forms.check({"working_days": "²", "reason": "待材料"}, forms.ACTION_FIELDS["extend"])
    assert errors == {"working_days": "延期工作日数：请填 1 到 10 之间的整数"}
    values, errors = forms.check({"working_days": "１０", "reason": "待材料"}, forms.ACTION_FIELDS["extend"])
    assert (
        errors == {} and values["working_days"] == 10
    )  # full-width digits, as a Chinese input method types them
    page = post_form(fc, "clerk", f"/cases/{open_case(fc)}/act/extend", working_days="²", reason="待材料")
    assert page.status_code == 422 and "延期工作日数：请填 1 到 10 之间的整数" in page.text


def test_a_required_field_keeps_its_required_and_aria_attributes_beside_a_hint_or_an_error(
    fc: Fuzzed,
) -> None:
    """The macros glued ``required`` to the next attribute (``requiredaria-describedby="…"``), so a browser
    saw neither: the field was not required and its hint or message was not tied to it."""
    clerk = fc.sessions["clerk"]
    blank = fc.send("GET", "/intake", clerk).text
    assert attributes_of(blank, "f-id_number") | {"id": ""} == {
        "id": "", "name": "id_number", "type": "text", "value": "", "maxlength": "32", "autocomplete": "off",
        "required": None, "aria-describedby": "h-id_number",
    }  # fmt: skip
    bad = post_form(fc, "clerk", "/intake", **{**INTAKE, "id_number": "2106", "description": "<b>急</b>"})
    assert bad.status_code == 422
    for element, name in (("f-id_number", "id_number"), ("f-description", "description")):
        attrs = attributes_of(bad.text, element)
        assert (
            "required" in attrs
            and attrs["aria-invalid"] == "true"
            and attrs["aria-describedby"] == f"e-{name}"
        )


def test_an_error_in_a_field_the_case_page_does_not_show_is_named_above_it(fc: Fuzzed) -> None:
    """A clerk's 改定理由 (shown to leaders only), or a field of an action not offered to this person,
    came back as a 422 page with no message at all."""
    case_id = open_case(fc)
    page = post_form(fc, "clerk", f"/cases/{case_id}/act/close", outcome="withdrawn", explanation="申请人撤回",
                     override_reason="<b>领导同意</b>")  # fmt: skip
    assert page.status_code == 422
    assert "改定理由（领导）：请勿输入 HTML 标记" in Page(page.text).shown()
    page = post_form(fc, "clerk", f"/cases/{case_id}/act/reopen", reason="")  # reopening is a leader's
    assert page.status_code == 422 and "重办理由：必填，请填写" in Page(page.text).shown()


def test_a_handover_in_the_console_sends_the_new_owner(fc: Fuzzed) -> None:
    """The console dropped every ``owner`` from a request body, so 移交 was always refused, with the
    broker's English message and a Python dict in the page."""
    case_id = open_case(fc)
    page = post_form(fc, "clerk", f"/cases/{case_id}/act/handover", owner="w-li", reason="调岗")
    assert page.status_code == 303, Page(page.text).shown()
    [handed] = [e for e in fc.bus.events(case_id) if e["type"] == "case.owner_assigned"]
    assert (handed["actor"], handed["auth"], handed["data"]["owner"]) == (CLERK, "web", "w-li")


def test_a_refusal_by_the_broker_beside_a_field_names_the_field(fc: Fuzzed) -> None:
    """The broker's message beside the field it named did not say which field it was."""
    case_id = open_case(fc)  # classified 不能办 at intake
    page = post_form(fc, "clerk", f"/cases/{case_id}/act/classify", category="cannot", reason="复核分类")
    assert page.status_code == 422
    beside = dict(Page(page.text).messages)["e-classify-category"]
    assert beside.startswith("分类：") and "不能办" in beside

"""The conformance check (``unstuck adapters check CODE``): exercise a running adapter from outside.

It talks to the department only over NATS, as the broker does, so it checks an adapter written in
any language: discovery as a NATS micro service, a valid reply for a request of each category, the
same answer for a repeated ``request_id``, replies inside the department's reply timeout, errors
for malformed requests (and a valid answer afterwards), no answer after ``reply_by``, and silence on
other departments' subjects.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import nats.errors
from nats.aio.client import Client
from pydantic import ValidationError

from unstuck.schemas import AdapterError, Category, CoordinationReply, CoordinationRequest
from unstuck.schemas.coordination import OVERRAN_CODE
from unstuck.schemas.subjects import coordinate_subject, department_queue

SERVICE_ERROR_CODE_HEADER = "Nats-Service-Error-Code"
SERVICE_ERROR_HEADER = "Nats-Service-Error"
DEFAULT_MATTER = "general_enquiry"


@dataclass
class Check:
    """One line of the report."""

    name: str
    passed: bool
    detail: str


@dataclass
class ConformanceReport:
    department: str
    url: str
    timeout_seconds: float
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def add(self, name: str, passed: bool, detail: str) -> Check:
        check = Check(name, passed, detail)
        self.checks.append(check)
        return check

    def as_dict(self) -> dict[str, Any]:
        return {
            "department": self.department,
            "url": self.url,
            "timeout_seconds": self.timeout_seconds,
            "passed": self.passed,
            "checks": [c.__dict__ for c in self.checks],
        }


@dataclass
class Answer:
    """What came back for one request: a reply, an error, nothing (timeout) or no responder at all."""

    kind: str  # "reply" | "error" | "timeout" | "no_responders" | "invalid"
    seconds: float
    reply: CoordinationReply | None = None
    error: str = ""
    raw: bytes = b""
    code: str = ""  # the service error code of an error answer (400, 500, 504 ...)
    detail: str = ""  # the adapter's whole explanation, and its fix, when it gave them


def request_for(
    code: str, category: Category, matter: str, tag: str, reply_within: float, **fields: Any
) -> CoordinationRequest:
    """A realistic request as the broker would send it; ``tag`` keeps request ids apart between runs."""
    body: dict[str, Any] = {
        "request_id": f"CHECK-{tag}-{category.value}-c1",
        "case_id": f"CHECK-{tag}-{category.value}",
        "department": code,
        "category": category.value,
        "matter": matter,
        "matter_title": "一致性檢查",
        "facts": {},
        "question": f"一致性檢查：請按{category.value}類案件答覆（unstuck adapters check）",
        "deadline": date.today() + timedelta(days=7),
        "reply_by": datetime.now(UTC) + timedelta(seconds=reply_within),
        "attempt": 1,
    }
    body.update(fields)
    return CoordinationRequest.model_validate(body)


async def ask(nc: Client, subject: str, payload: bytes, timeout: float, code: str | None = None) -> Answer:
    """Send one request and classify the answer; ``code`` is the department the reply must name."""
    started = time.perf_counter()
    try:
        msg = await nc.request(subject, payload, timeout=timeout)
    except nats.errors.NoRespondersError:
        return Answer("no_responders", time.perf_counter() - started)
    except nats.errors.TimeoutError:
        return Answer("timeout", time.perf_counter() - started)
    seconds = time.perf_counter() - started
    headers = msg.headers or {}
    if SERVICE_ERROR_CODE_HEADER in headers:
        code = str(headers[SERVICE_ERROR_CODE_HEADER])
        problem = _adapter_error(msg.data)
        if problem is not None:
            return Answer(
                "error", seconds, error=problem.error, raw=msg.data, code=code, detail=_told(problem)
            )
        return Answer("error", seconds, error=headers.get(SERVICE_ERROR_HEADER, ""), raw=msg.data, code=code)
    try:
        reply = CoordinationReply.model_validate_json(msg.data)
    except ValidationError as exc:
        problem = _adapter_error(msg.data)
        if problem is not None:
            return Answer("error", seconds, error=problem.error, raw=msg.data, detail=_told(problem))
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
        )
        return Answer("invalid", seconds, error=where, raw=msg.data)
    if code is not None and reply.department != code:
        return Answer("invalid", seconds, reply, f"reply names department {reply.department!r}", msg.data)
    return Answer("reply", seconds, reply, raw=msg.data)


def _adapter_error(data: bytes) -> AdapterError | None:
    try:
        return AdapterError.model_validate_json(data)
    except ValidationError:
        return None


def _told(problem: AdapterError) -> str:
    """The adapter's own detail and fix, as one text (never cut: the report is where they are read)."""
    parts = [problem.detail or "", f"fix: {problem.fix}" if problem.fix else ""]
    return "; ".join(p for p in parts if p)


def _describe(answer: Answer) -> str:
    """One answer in words, whole: the report and its ``--json`` keep every character the adapter said."""
    ms = f"{answer.seconds * 1000:.0f}ms"
    told = f" ({answer.detail})" if answer.detail else ""
    match answer.kind:
        case "reply":
            assert answer.reply is not None
            return f"{answer.reply.outcome.value} in {ms}"
        case "error" if answer.code == OVERRAN_CODE:
            return f"blocked: {answer.error}{told}"
        case "error":
            return f"error{' ' + answer.code if answer.code else ''} in {ms}: {answer.error}{told}"
        case "timeout":
            return (
                f"no answer within {answer.seconds:.1f}s: nothing came back, not even an error; the adapter "
                "is down or blocked (a blocking call in an async def hook stops the loop that answers)"
            )
        case "no_responders":
            return "no responders on the subject"
        case _:
            return f"invalid reply in {ms}: {answer.error}"


async def service_info(nc: Client, code: str, timeout: float) -> list[dict[str, Any]]:
    """$SRV.INFO of every instance of ``unstuck-<code>`` that answers within ``timeout``."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    infos: list[dict[str, Any]] = []
    try:
        await nc.publish(f"$SRV.INFO.unstuck-{code}", b"", reply=inbox)
        await nc.flush()
        while True:
            try:
                # the first instance may take up to ``timeout``; further ones answer right after it
                msg = await sub.next_msg(timeout=timeout if not infos else min(timeout, 0.25))
            except nats.errors.TimeoutError:
                break
            if not msg.data:  # the server's 503 "no responders" status, not a service
                continue
            try:
                infos.append(json.loads(msg.data))
            except ValueError:
                infos.append({"invalid": msg.data[:80].decode(errors="replace")})
    finally:
        await sub.unsubscribe()
    return infos


def _matters(infos: Sequence[dict[str, Any]]) -> list[str]:
    for info in infos:
        raw = (info.get("metadata") or {}).get("matters", "")
        matters = [m.strip() for m in str(raw).split(",") if m.strip()]
        if matters:
            return matters
    return [DEFAULT_MATTER]


async def check_adapter(nc: Client, code: str, timeout_seconds: float, url: str = "") -> ConformanceReport:
    """Run every check against the adapter serving ``code`` on ``nc``'s server."""
    probe = _Probe(nc, code, ConformanceReport(code, url, timeout_seconds), timeout_seconds)
    matters = _matters(await probe.discovery())
    replies, first, first_answer = await probe.categories(matters)
    replies += await probe.repeat(first, first_answer)
    probe.timing(replies)
    await probe.malformed(matters)
    await probe.stale(matters)
    await probe.silence(matters)
    return probe.report


@dataclass
class _Probe:
    """The checks of one run against one department, each adding its lines to the report."""

    nc: Client
    code: str
    report: ConformanceReport
    timeout_seconds: float
    tag: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def subject(self) -> str:
        return coordinate_subject(self.code)

    @property
    def wait(self) -> float:
        return max(self.timeout_seconds * 2, 1.0)

    async def discovery(self) -> list[dict[str, Any]]:
        """A NATS micro service named unstuck-<code>, with only its own endpoint."""
        code, subject, queue = self.code, self.subject, department_queue(self.code)
        infos = await service_info(self.nc, code, timeout=min(self.wait, 1.0))
        if not infos:
            self.report.add("discoverable ($SRV.INFO)", False, f"no service unstuck-{code} answers $SRV.INFO")
            return infos
        self.report.add("discoverable ($SRV.INFO)", True, f"{len(infos)} instance(s) of unstuck-{code}")
        foreign = [
            f"{ep.get('subject')} (queue {ep.get('queue_group')})"
            for info in infos
            for ep in info.get("endpoints") or []
            if ep.get("subject") != subject or ep.get("queue_group", queue) != queue
        ]
        has_own = all(
            any(ep.get("subject") == subject for ep in info.get("endpoints") or []) for info in infos
        )
        self.report.add(
            "endpoint is its own subject only",
            has_own and not foreign,
            f"serves {subject} in queue {queue}"
            if has_own and not foreign
            else f"expected {subject} in queue {queue}; "
            + (f"also serves {', '.join(foreign)}" if foreign else "it lists no such endpoint"),
        )
        return infos

    async def categories(
        self, matters: list[str]
    ) -> tuple[list[Answer], CoordinationRequest | None, Answer | None]:
        """A valid reply for a request of each category; returns the replies and the first valid one."""
        replies: list[Answer] = []
        first: CoordinationRequest | None = None
        first_answer: Answer | None = None
        for i, category in enumerate(Category):
            request = request_for(self.code, category, matters[i % len(matters)], self.tag, self.wait)
            answer = await ask(
                self.nc, self.subject, request.model_dump_json().encode(), self.wait, self.code
            )
            ok = (
                answer.kind == "reply"
                and answer.reply is not None
                and answer.reply.request_id == request.request_id
            )
            detail = _describe(answer)
            if answer.kind == "reply" and not ok:
                detail = f"reply answers request_id {answer.reply.request_id if answer.reply else '?'}"
            self.report.add(f"category {category.value} ({request.matter})", ok, detail)
            if answer.kind == "reply":
                replies.append(answer)
            if ok and first is None:
                first, first_answer = request, answer
        return replies, first, first_answer

    async def repeat(self, first: CoordinationRequest | None, first_answer: Answer | None) -> list[Answer]:
        """A repeated request_id (a retry by the broker) gets the same answer."""
        if first is None or first_answer is None or first_answer.reply is None:
            self.report.add("repeated request_id", False, "no valid reply to repeat")
            return []
        again = first.model_copy(
            update={"attempt": 2, "reply_by": datetime.now(UTC) + timedelta(seconds=self.wait)}
        )
        answer = await ask(self.nc, self.subject, again.model_dump_json().encode(), self.wait, self.code)
        same = answer.kind == "reply" and answer.reply == first_answer.reply
        self.report.add(
            "repeated request_id",
            same,
            f"same {first_answer.reply.outcome.value} answer for {first.request_id}"
            if same
            else f"first {_describe(first_answer)}, then {_describe(answer)}",
        )
        return [answer] if answer.kind == "reply" else []

    def timing(self, replies: list[Answer]) -> None:
        """Every reply inside the department's reply timeout."""
        if not replies:
            self.report.add("replies inside the timeout", False, "no valid replies")
            return
        slowest = max(a.seconds for a in replies)
        self.report.add(
            "replies inside the timeout",
            slowest <= self.timeout_seconds,
            f"slowest {slowest * 1000:.0f}ms of {len(replies)}, timeout {self.timeout_seconds:g}s",
        )

    async def malformed(self, matters: list[str]) -> None:
        """Malformed requests are answered with an error, and the adapter keeps answering."""
        code, tag, wait = self.code, self.tag, self.wait
        valid = json.loads(request_for(code, Category.HARD, matters[0], tag + "m", wait).model_dump_json())
        valid.pop("request_id")
        misrouted = request_for(
            code, Category.HARD, matters[0], tag + "x", wait, department=_other_code(code)
        )
        malformed: list[tuple[str, bytes]] = [
            ("malformed: not JSON", b"{not json"),
            ("malformed: no request_id", json.dumps(valid).encode()),
            ("malformed: another department's request", misrouted.model_dump_json().encode()),
        ]
        for name, payload in malformed:
            answer = await ask(self.nc, self.subject, payload, wait, code)
            self.report.add(name, answer.kind == "error", _describe(answer))
        survivor = request_for(code, Category.GUIDED, matters[0], tag + "s", wait)
        answer = await ask(self.nc, self.subject, survivor.model_dump_json().encode(), wait, code)
        self.report.add("survives malformed requests", answer.kind == "reply", _describe(answer))

    async def stale(self, matters: list[str]) -> None:
        """A request whose reply_by has passed is dropped (the broker has stopped waiting)."""
        stale = request_for(
            self.code,
            Category.HARD,
            matters[0],
            self.tag + "e",
            self.wait,
            reply_by=datetime.now(UTC) - timedelta(seconds=5),
        )
        answer = await ask(
            self.nc, self.subject, stale.model_dump_json().encode(), min(self.timeout_seconds, 0.5), self.code
        )
        self.report.add(
            "drops a request after reply_by",
            answer.kind == "timeout",
            "not answered" if answer.kind == "timeout" else f"answered: {_describe(answer)}",
        )

    async def silence(self, matters: list[str]) -> None:
        """Nothing answered on other departments' subjects."""
        other = _other_code(self.code)
        probe = request_for(other, Category.HARD, matters[0], self.tag + "o", self.wait)
        answer = await ask(
            self.nc, coordinate_subject(other), probe.model_dump_json().encode(), min(self.wait, 1.0)
        )
        self.report.add(
            "silent on other departments' subjects",
            answer.kind == "no_responders",
            f"nobody answers {coordinate_subject(other)}"
            if answer.kind == "no_responders"
            else f"{coordinate_subject(other)} got {_describe(answer)}",
        )


def _other_code(code: str) -> str:
    """A department code nobody serves, so any answer on its subject comes from a wildcard listener."""
    return f"zzcheck{secrets.token_hex(3)}" if not code.startswith("zzcheck") else "zzother"


def render(report: ConformanceReport) -> str:
    """The pass/fail table the CLI prints."""
    from unstuck.texttable import table

    rows = [[c.name, "pass" if c.passed else "FAIL", c.detail] for c in report.checks]
    verdict = (
        f"{report.department}: all {len(report.checks)} checks passed"
        if report.passed
        else f"{report.department}: {len(report.failures)} of {len(report.checks)} checks failed"
    )
    return table(["check", "result", "detail"], rows) + "\n" + verdict

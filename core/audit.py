"""One case for an auditor: its stored events read from the stream, verified, told as a timeline,
and written out as a dossier (exact stored bodies, the replayed state, a self-contained HTML report).

Personal identifiers (an applicant's id number and phone) are masked in everything written for
people to read, unless the caller reveals them; the stored bodies are evidence and stay exact.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from unstuck import __version__
from unstuck.schemas import CATEGORY_LABELS, EVENT_LABELS, labels
from unstuck.schemas.privacy import mask_personal
from unstuck.schemas.subjects import HEADS_BUCKET, STREAM

from .clock import CHINA
from .replay import (
    Finding,
    Replayer,
    ReplayError,
    Report,
    check_format,
    decision_lines,
    read_head,
    read_ordered,
    recheck_heads,
    stream_prefix,
)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One stored event of the case: the message that holds it, its exact bytes (its line of that
    message), and its parsed fields."""

    stream_seq: int
    subject: str
    body: bytes
    fields: dict[str, Any]

    @property
    def seq(self) -> int | None:
        seq = self.fields.get("seq")
        return seq if type(seq) is int else None


@dataclass
class CaseRecord:
    """A case as the auditor sees it: stored events in stream order, the replay and its verification."""

    case_id: str
    stream: str
    records: list[StoredRecord]
    report: Report
    head: dict[str, Any] | None

    @property
    def state(self) -> Any:
        track = self.report.cases.get(self.case_id)
        return track.state if track else None

    @property
    def findings(self) -> list[Finding]:
        return self.report.findings

    @property
    def ok(self) -> bool:
        return self.report.ok


async def load_case(
    target: Client | JetStreamContext,
    case_id: str,
    stream: str = STREAM,
    heads_bucket: str = HEADS_BUCKET,
) -> CaseRecord:
    """Read one case straight from the stream and verify it (chain, schemas, recorded head)."""
    js = target if isinstance(target, JetStreamContext) else target.jetstream()
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError as exc:
        raise ReplayError(f"stream {stream} not found: check --stream and the server (NATS_URL)") from exc
    check_format(stream, info)
    prefix = stream_prefix(info.config.subjects)
    head = await read_head(js, heads_bucket, case_id)
    records: list[StoredRecord] = []

    def keep(subject: str, stream_seq: int, message: bytes) -> None:
        for body in decision_lines(message):
            try:
                fields = json.loads(body)
            except ValueError:
                fields = {}
            if not isinstance(fields, dict):
                fields = {}
            if fields.get("case_id", subject.rpartition(".")[2]) == case_id:
                records.append(StoredRecord(stream_seq, subject, body, fields))

    if prefix is not None:
        subject = f"{prefix}.{case_id}"
        seq = 0
        while True:
            try:
                msg = await js.get_msg(stream, seq=seq + 1, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                break
            seq = int(msg.seq or 0)
            keep(str(msg.subject or subject), seq, bytes(msg.data or b""))
    elif info.state.messages:
        await read_ordered(
            js, stream, ">", lambda m, s: keep(m.subject, s, m.data), end_seq=int(info.state.last_seq)
        )
    replayer = Replayer(stream, True, prefix, {case_id: head} if head else {}, case_id=case_id)
    for r in records:
        replayer.feed(r.subject, r.stream_seq, r.body)
    report = replayer.finish(_duplicates(records))
    await recheck_heads(js, heads_bucket, replayer)  # the broker records a head just after its append
    head = await read_head(js, heads_bucket, case_id) if report.moved_during_replay else head
    return CaseRecord(case_id, stream, records, report, head)


def _duplicates(records: list[StoredRecord]) -> list[list[tuple[int, str, str, int | None]]]:
    seen: dict[str, list[tuple[int, str, str, int | None]]] = {}
    for r in records:
        event_id = r.fields.get("event_id")
        if isinstance(event_id, str):
            seen.setdefault(event_id, []).append(
                (r.stream_seq, event_id, str(r.fields.get("case_id")), r.seq)
            )
    return [g for g in seen.values() if len(g) > 1]


# --- telling it -----------------------------------------------------------------------------------


def local_time(text: Any, zone: tzinfo = CHINA) -> str:
    """A stored UTC timestamp as the time in ``zone`` (by default the service centre's, UTC+8), to
    the second; text that is no timestamp as it is."""
    try:
        instant = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def label(event_type: str) -> tuple[str, str]:
    return EVENT_LABELS.get(event_type, (event_type, event_type))


class _Telling:
    """One event's data told in ``lang``: ``get`` a field, ``pick`` the Chinese or the English words,
    ``label`` a code, ``join`` a list."""

    def __init__(self, data: Mapping[str, Any], lang: str) -> None:
        self.data, self.zh = data, lang == "zh"
        self.lang = "zh" if self.zh else "en"

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def pick(self, zh: str, en: str) -> str:
        return zh if self.zh else en

    def label(self, kind: str, key: str) -> str:
        return labels.label(kind, self.get(key), self.lang)

    def join(self, items: Any, kind: str | None = None) -> str:
        shown = [labels.label(kind, i, self.lang) if kind else str(i) for i in items or []]
        return self.pick("、", ", ").join(shown)


def describe(event_type: str, data: Mapping[str, Any], lang: str = "en") -> str:
    """What an event says, in one line, in English or (``lang`` zh) in Chinese with its codes
    labelled (identifiers as given: mask ``data`` first for display)."""
    t = _Telling(data, lang)
    for part in (_told_at_intake, _told_of_coordination, _told_of_deadlines, _told_at_closing):
        text = part(event_type, t)
        if text is not None:
            return text
    return json.dumps(dict(data), ensure_ascii=False, sort_keys=True)[:200]


def _told_at_intake(event_type: str, t: _Telling) -> str | None:
    g, p = t.get, t.pick
    match event_type:
        case "case.opened":
            a = g("applicant") or {}
            who = f"{a.get('name', '')} {a.get('id_number', '')}".strip()
            where = p(f"（未辦成窗口：{g('window')}，", f" (failed at {g('window')}, ")
            return f"{who}{p('：', ': ')}{g('matter_title')}{where}{g('department')}{p('）', ')')}"
        case "case.classified":
            mode = p("引導辦理" if g("mode") == "guide" else "部門協調", str(g("mode")))
            depts = t.join(g("departments")) or p("無", "no department")
            return p(
                f"{t.label('category', 'category')}，{mode}，{g('working_days')}個工作日，"
                f"辦結期限 {g('due_date')}；協調部門：{depts}",
                f"{_category(g('category'))}, {mode}, {g('working_days')} working day(s), "
                f"due {g('due_date')}; {depts}",
            )
        case "case.reclassified":
            was, now = (
                (t.label("category", "previous"), t.label("category", "category"))
                if t.zh
                else (_category(g("previous")), _category(g("category")))
            )
            return f"{was} → {now}{p('：', ': ')}{g('reason')}{p('；辦結期限 ', '; due ')}{g('due_date')}"
        case "case.owner_assigned":
            return f"{g('previous_owner')} → {g('owner')}{p('：', ': ')}{g('reason')}"
        case "case.guided":
            return p(f"引導至{g('window')}：", f"to {g('window')}: ") + str(g("instructions"))
        case "case.reopened":
            return p(
                f"第{g('round')}輪：{g('reason')}；請{t.join(g('departments'))}協調，辦結期限 {g('due_date')}",
                f"round {g('round')}: {g('reason')}; asks {t.join(g('departments'))}, due {g('due_date')}",
            )
    return None


def _told_of_coordination(event_type: str, t: _Telling) -> str | None:
    g, p = t.get, t.pick
    match event_type:
        case "coordination.requested":
            was = g("rerouted_from")
            via = p(f"（由{was}轉來）", f" (rerouted from {was})") if was else ""
            return p(
                f"請{g('department')}協調{via}，{g('deadline')}前答覆（{g('request_id')}）",
                f"asks {g('department')}{via}, {g('request_id')}, answer by {g('deadline')}",
            )
        case "coordination.retried":
            failed = p(f"第{g('attempt')}次請求未成功：", f" attempt {g('attempt')} failed: ")
            return f"{g('department')}{failed}{g('reason')} {g('detail') or ''}".rstrip()
        case "coordination.replied":
            basis = p(f"［依據：{g('legal_basis')}］", f" [{g('legal_basis')}]") if g("legal_basis") else ""
            by = (
                p(f"（{g('recorded_by')}登記）", f" (recorded by {g('recorded_by')})")
                if g("recorded_by")
                else ""
            )
            outcome = t.label("outcome", "outcome") if t.zh else g("outcome")
            return f"{g('department')}{p('：', ': ')}{outcome}{p('：', ': ')}{g('message')}{basis}{by}"
        case "coordination.stalled":
            return p(
                f"{g('department')}{g('attempts')}次請求均未答覆：{g('last_reason')}",
                f"{g('department')} gave no answer in {g('attempts')} attempt(s): {g('last_reason')}",
            )
    return None


def _told_of_deadlines(event_type: str, t: _Telling) -> str | None:
    g, p = t.get, t.pick
    match event_type:
        case "case.escalated":
            level = p(f"第{g('level')}級", f"level {g('level')}")
            note = f"{p('：', ' ')}{g('note')}" if g("note") else ""
            why = f"{p('（', '(')}{t.label('reason', 'reason')}{p('）', ')')}"
            return f"{g('department')} {level} {t.label('role', 'role')} {g('target')}{p('', ' ')}{why}{note}"
        case "case.deadline_warned":
            about = {"review_notice": p("告知申請人", "notice"), "review": p("複核", "review")}.get(
                g("about")
            )
            whose = (
                p(f"{g('department')}不能辦之{about}：", f"{g('department')}'s cannot, {about}: ")
                if about
                else ""
            )
            return whose + p(
                f"期限 {g('due_date')}，剩餘{g('working_days_left')}個工作日",
                f"due {g('due_date')}, {g('working_days_left')} working day(s) left",
            )
        case "case.overdue":
            return p(f"辦結期限 {g('due_date')} 已過", f"due {g('due_date')} passed")
        case "case.extension_requested":
            return p(
                f"申請延長{g('working_days')}個工作日至 {g('proposed_due_date')}：{g('reason')}",
                f"+{g('working_days')} working day(s) to {g('proposed_due_date')}: {g('reason')}",
            )
        case "case.extended":
            return p(
                f"辦結期限延至 {g('due_date')}（延長{g('working_days')}個工作日，{g('approved_by')}批准）",
                f"due {g('due_date')} (+{g('working_days')}, approved by {g('approved_by')})",
            )
        case "case.review_requested" | "case.review_notice_given" | "case.review_concluded":
            return _told_of_review(event_type, t)
        case "case.intake_deadline_set":
            return p(f"{g('due_date')}前完成分類", f"classify by {g('due_date')}")
        case "case.due_date_revised":
            mark = p("（暫定）", " (provisional)") if g("due_date_provisional") else ""
            return p(
                f"辦結期限 {g('previous_due_date')} → {g('due_date')}{mark}：{g('reason')}",
                f"due {g('previous_due_date')} → {g('due_date')}{mark}: {g('reason')}",
            )
        case "case.bounce_ruled":
            return p(
                f"由{g('department')}辦理（{g('ruled_by')}裁定，已退單{g('bounces')}次）",
                f"{g('department')} must handle it (ruled by {g('ruled_by')} after {g('bounces')} bounce(s))",
            )
    return None


def _told_at_closing(event_type: str, t: _Telling) -> str | None:
    g, p = t.get, t.pick
    outcome = t.label("outcome", "outcome") if t.zh else g("outcome")
    match event_type:
        case "case.resolved":
            return f"{outcome}{p('：', ': ')}{g('summary')}"
        case "case.closed":
            kept = labels.label("on_time", "on_time" if g("on_time") else "late", t.lang)
            on_time = kept if "on_time" in t.data else ""
            override = (
                p(
                    f"；與部門答覆不一致，由{g('overridden_by')}改定：{g('override_reason')}",
                    f"; against the answers, overridden by {g('overridden_by')}: {g('override_reason')}",
                )
                if g("override_reason")
                else ""
            )
            return p(
                f"{outcome}，{on_time}：{g('explanation')}（{g('closed_by')}銷號{override}）",
                f"{outcome} {on_time}: {g('explanation')} (closed by {g('closed_by')}{override})",
            )
        case "case.evaluated":
            at_fault = g("department_at_fault")
            fault = p(f"，{at_fault}之責", f", fault of {at_fault}") if at_fault else ""
            rating = t.label("rating", "rating") if t.zh else g("rating")
            return f"{rating}{fault}{p('：', ': ')}{g('comment') or ''}".rstrip(": ：")
        case "case.personal_data_revealed":
            shown = t.join(g("fields"), None)
            return p(f"查看未遮蔽的{shown}：{g('reason')}", f"unmasked {shown} shown: {g('reason')}")
        case "accountability.recorded":
            tolerance = p("，容錯免責", ", 容錯免責") if g("fault_tolerance") else ""
            measures = t.join(g("measures"), "measure" if t.zh else None)
            return f"{g('staff')}{p('（', ' (')}{g('section')}{p('）：', '): ')}{measures}{tolerance}{p('：', ': ')}{g('finding')}"
    return None


def _told_of_review(event_type: str, t: _Telling) -> str:
    """The review of a `cannot`: requested, the applicant told, concluded."""
    g, p = t.get, t.pick
    if event_type == "case.review_notice_given":
        return p(
            f"已告知申請人{g('department')}的不能辦答覆及複核：{g('how')} {g('note') or ''}",
            f"applicant told of {g('department')}'s cannot: {g('how')} {g('note') or ''}",
        ).rstrip()
    if event_type == "case.review_concluded":
        kept = p(
            {"upheld": "維持", "overturned": "撤銷"}.get(str(g("outcome")), str(g("outcome"))),
            str(g("outcome")),
        )
        return p(
            f"{g('department')}的不能辦答覆經複核{kept}：{g('note')}",
            f"{g('department')}'s cannot {kept}: {g('note')}",
        )
    due = p(f"，{g('due_date')}前複核", f", review due {g('due_date')}") if g("due_date") else ""
    how = p("（經系統請求）", " (asked over the bus)") if g("request_id") else ""
    return p(
        f"{g('department')}答覆不能辦理［{g('legal_basis')}］，提請{g('higher_department')}{how}複核，"
        f"{g('notify_by')}前告知申請人{due}",
        f"{g('department')} → {g('higher_department')}{how} [{g('legal_basis')}], notify by {g('notify_by')}{due}",
    )


def _category(value: Any) -> str:
    return f"{value} {labels.label('category', value)}" if value in CATEGORY_LABELS else str(value)


def timeline(case: CaseRecord, reveal: bool = False) -> list[dict[str, Any]]:
    """Who did what when: one row per stored event in stream order, with what verification said of it."""
    by_stream_seq: dict[int, list[str]] = {}
    by_seq: dict[int, list[str]] = {}
    for finding in case.findings:
        if finding.stream_seq is not None:
            by_stream_seq.setdefault(finding.stream_seq, []).append(finding.code)
        elif finding.seq is not None:
            by_seq.setdefault(finding.seq, []).append(finding.code)
    rows = []
    for r in case.records:
        f = r.fields
        raw = f.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        shown: dict[str, Any] = data if reveal else mask_personal(data)
        event_type = str(f.get("type", "?"))
        zh, en = label(event_type)
        codes = by_stream_seq.get(r.stream_seq, []) + by_seq.get(r.seq or -1, [])
        rows.append(
            {
                "seq": r.seq,
                "stream_seq": r.stream_seq,
                "at": f.get("at"),
                "local_time": local_time(f.get("at")),
                "actor": f.get("actor"),
                "auth": f.get("auth"),  # how the actor was proven (None: the broker, or before identities)
                "type": event_type,
                "label_zh": zh,
                "label_en": en,
                "detail": describe(event_type, shown),
                "event_id": f.get("event_id"),
                "prev_hash": f.get("prev_hash"),
                "hash": f.get("hash"),
                "v": f.get("v", 1),
                "findings": codes,
            }
        )
    return rows


def state_view(case: CaseRecord, reveal: bool = False) -> dict[str, Any] | None:
    state = case.state
    if state is None:
        return None
    view = state.to_dict()
    return view if reveal else mask_personal(view)


def verification(case: CaseRecord) -> dict[str, Any]:
    track = case.report.cases.get(case.case_id)
    return {
        "ok": case.ok,
        "events": len(case.records),
        "findings": [f.to_dict() for f in case.findings],
        "recorded_head": case.head,
        "stream_head": {"seq": track.last_seq, "hash": track.last_hash} if track else None,
        "state_stopped": track.stopped if track else None,
    }


# --- the dossier ----------------------------------------------------------------------------------


def write_dossier(case: CaseRecord, out_dir: Path, reveal: bool = False) -> dict[str, Path]:
    """Write ``<id>.events.jsonl``, ``<id>.state.json``, ``<id>.html`` and ``SHA256SUMS`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    generated = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    paths = {
        "events": out_dir / f"{case.case_id}.events.jsonl",
        "state": out_dir / f"{case.case_id}.state.json",
        "html": out_dir / f"{case.case_id}.html",
    }
    paths["events"].write_bytes(b"".join(r.body + b"\n" for r in case.records))
    document = {
        "case_id": case.case_id,
        "stream": case.stream,
        "generated_at": generated,
        "generated_by": f"unstuck {__version__}",
        "identifiers": "revealed" if reveal else "masked",
        "state": state_view(case, reveal),
        "verification": verification(case),
        "timeline": timeline(case, reveal),
    }
    paths["state"].write_text(
        json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    paths["html"].write_text(render_html(case, reveal, generated), encoding="utf-8")
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in paths.values())
    paths["sums"] = out_dir / "SHA256SUMS"
    paths["sums"].write_text(sums, encoding="utf-8")
    return paths


_CSS = """
body{font-family:"Noto Sans CJK TC","PingFang TC","Microsoft JhengHei",system-ui,sans-serif;margin:2em;color:#1b1b1b}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;font-size:.9em}th,td{border:1px solid #d0d0d0;padding:.3em .5em;
text-align:left;vertical-align:top}th{background:#f2f2f2}code,.hash{font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:.85em;word-break:break-all}.ok{background:#e7f5e9;border:1px solid #6fbf73;padding:.8em}
.bad{background:#fdecea;border:1px solid #e57373;padding:.8em}.flag{color:#b00020;font-weight:bold}
.meta{color:#555;font-size:.9em}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}
"""


def render_html(case: CaseRecord, reveal: bool, generated: str) -> str:
    """A self-contained report (no scripts, no outside resources) an auditor can read and print."""
    e = html.escape
    state = state_view(case, reveal) or {}
    intake = state.get("intake") or {}
    rows = timeline(case, reveal)
    title = f"案件檔案 Case dossier {case.case_id}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-Hant"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">{e(str(intake.get("matter_title", "")))} · stream {e(case.stream)} · '
        f"generated {e(generated)} by unstuck {e(__version__)} · identifiers "
        f"{'revealed' if reveal else 'masked'}</p>",
        *_verdict_html(case),
        *_state_html(case, state),
        *_timeline_html(rows),
        *_chain_html(rows),
        *_head_html(case),
        *_recheck_html(case),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _verdict_html(case: CaseRecord) -> list[str]:
    """Intact, or the findings."""
    e = html.escape
    parts: list[str] = []
    if case.ok:
        head = case.head or {}
        parts.append(
            f'<div class="ok"><strong>記錄完整 Record intact.</strong> {len(case.records)} event(s); every '
            "event's canonical bytes match its hash, the chain links every event to the one before, "
            f"and the head the broker recorded outside the stream (seq {e(str(head.get('seq')))}, "
            f'<span class="hash">{e(str(head.get("hash", ""))[:16])}…</span>) is the last event.</div>'
        )
    else:
        parts.append(
            f'<div class="bad"><strong>記錄有誤 Record NOT intact:</strong> {len(case.findings)} finding(s).'
            " See the findings below and docs/audit.md for what each means.</div>"
        )
        parts.append(
            "<h2>核查發現 Findings</h2><table><tr><th>code</th><th>seq</th><th>stream seq</th><th>what</th></tr>"
        )
        for f in case.findings:
            parts.append(
                f'<tr><td class="flag">{e(f.code)}</td><td>{_cell(f.seq)}</td><td>{_cell(f.stream_seq)}</td>'
                f"<td>{e(f.message)}</td></tr>"
            )
        parts.append("</table>")
    return parts


def _state_html(case: CaseRecord, state: dict[str, Any]) -> list[str]:
    """The replayed state, fact by fact."""
    e = html.escape
    parts: list[str] = []
    intake = state.get("intake") or {}
    applicant = intake.get("applicant") or {}
    check = verification(case)
    parts.append("<h2>案件狀態 State (replayed from the stream)</h2><dl>")
    closing = state.get("closing") or {}
    evaluation = state.get("evaluation") or {}
    facts = [
        ("state", state.get("state")),
        (
            "applicant",
            f"{applicant.get('name', '')} {applicant.get('id_number', '')} ({applicant.get('kind', '')})",
        ),
        ("phone", applicant.get("phone")),
        ("failed at", f"{intake.get('window', '')} ({intake.get('department', '')})"),
        ("category", _category(state.get("category")) if state.get("category") else None),
        ("owner", state.get("owner")),
        ("due date", state.get("due_date")),
        ("overdue", "yes" if state.get("overdue") else "no"),
        ("departments", ", ".join(c["department"] for c in state.get("coordinations") or [])),
        ("closed", f"{closing.get('outcome')}: {closing.get('explanation')}" if closing else None),
        (
            "closed against the answers",
            f"{closing.get('overridden_by')}: {closing.get('override_reason')}"
            if closing and closing.get("override_reason")
            else None,
        ),
        ("evaluation", f"{evaluation.get('rating')} {evaluation.get('comment', '')}" if evaluation else None),
        ("last seq", state.get("seq")),
        ("state stopped", check["state_stopped"]),
    ]
    for name, value in facts:
        if value not in (None, ""):
            parts.append(f"<dt>{e(name)}</dt><dd>{e(str(value))}</dd>")
    parts.append("</dl>")
    return parts


AUTH_WORDS = {"nats": "本人憑證", "web": "控制台登錄", "online": "網上渠道回執碼", "claimed": "未驗證"}


def who(row: Mapping[str, Any]) -> str:
    """The actor of a timeline row and how the record proves it: w-zhang（本人憑證）, or unverified."""
    auth = row.get("auth")
    return f"{row['actor']}（{AUTH_WORDS.get(str(auth), str(auth))}）" if auth else str(row["actor"])


def _timeline_html(rows: list[dict[str, Any]]) -> list[str]:
    """Who did what when, in local time."""
    e = html.escape
    parts: list[str] = []
    parts.append(
        "<h2>經過 Timeline (UTC+8)</h2><table><tr><th>#</th><th>time</th><th>who</th><th>事件 event</th>"
        "<th>detail</th></tr>"
    )
    for r in rows:
        flag = f' <span class="flag">{e(", ".join(r["findings"]))}</span>' if r["findings"] else ""
        parts.append(
            f"<tr><td>{_cell(r['seq'])}</td><td>{e(r['local_time'])}</td><td>{e(who(r))}</td>"
            f"<td>{e(r['label_zh'])}<br>{e(r['label_en'])}</td><td>{e(r['detail'])}{flag}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _chain_html(rows: list[dict[str, Any]]) -> list[str]:
    """Each event's place in the hash chain."""
    e = html.escape
    parts: list[str] = []
    parts.append(
        "<h2>雜湊鏈 Hash chain</h2><table><tr><th>#</th><th>stream seq</th><th>type v</th><th>event id</th>"
        "<th>prev_hash</th><th>hash</th><th>check</th></tr>"
    )
    for r in rows:
        verdict = f'<span class="flag">{e(", ".join(r["findings"]))}</span>' if r["findings"] else "✓"
        parts.append(
            f"<tr><td>{_cell(r['seq'])}</td><td>{r['stream_seq']}</td><td>{e(r['type'])} v{e(str(r['v']))}</td>"
            f'<td class="hash">{e(str(r["event_id"]))}</td><td class="hash">{e(str(r["prev_hash"]))}</td>'
            f'<td class="hash">{e(str(r["hash"]))}</td><td>{verdict}</td></tr>'
        )
    parts.append("</table>")
    return parts


def _head_html(case: CaseRecord) -> list[str]:
    """The head the broker recorded outside the stream."""
    e = html.escape
    parts: list[str] = []
    recorded = case.head
    parts.append("<h2>記錄的案件頭 Head recorded outside the stream</h2>")
    if recorded:
        parts.append(
            f'<p>seq {e(str(recorded.get("seq")))}, hash <span class="hash">{e(str(recorded.get("hash")))}</span></p>'
        )
    else:
        parts.append("<p>none recorded</p>")
    return parts


def _recheck_html(case: CaseRecord) -> list[str]:
    """How an auditor repeats the checks."""
    e = html.escape
    parts: list[str] = []
    parts.append(
        "<h2>如何複核 How to re-check</h2><p><code>"
        f"{e(case.case_id)}.events.jsonl</code> holds the stored bodies, exactly, one per line. For each line, "
        "the hash is sha256 over the line's canonical JSON (RFC 8785, JCS) without its <code>hash</code> "
        "member, and the line is the canonical JSON of the whole event; each "
        "<code>prev_hash</code> is the hash of the line before (empty for the first). "
        f"<code>unstuck replay --verify --case {e(case.case_id)}</code> repeats every check against the "
        "live stream; docs/audit.md explains each finding.</p>"
    )
    return parts


def _cell(value: Any) -> str:
    return "" if value is None else html.escape(str(value))

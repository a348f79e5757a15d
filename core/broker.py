"""The broker: the thin shell around the pure lifecycle.

It serves the API on ``unstuck.api.>``, loads a case's state, asks the plugins and the calendar what
the command needs, calls ``decide``, appends the events, folds them in with ``evolve``, and then
acts on them: coordination requests, notifications, metrics. It follows the stream, so events
written by another broker replica reach its state too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import nats.errors
import nats.js.errors
import pluggy
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from unstuck.plugins.manager import make_plugin_manager
from unstuck.schemas import CATEGORY_LABELS, Category, CoordinationReply, CoordinationRequest, Envelope, api
from unstuck.schemas.common import mask_identifier
from unstuck.schemas.events import AccountabilityRecorded, EventSchemaError, parse_payload
from unstuck.schemas.subjects import API_PREFIX, BROKER_QUEUE, IDS_BUCKET, notify_subject

from . import lifecycle as lc
from .canonical import check_body
from .clock import WALL, Clock, WallClock, local_date
from .config import Config
from .coordinator import Coordinator
from .eventstore import AppendConflict, EventStore, StoredEvent, StoreUnavailable
from .limits import ClientRateLimiter, client_of
from .metrics import Metrics
from .tasks import cancel_and_wait
from .workcalendar import WorkingCalendar

log = logging.getLogger(__name__)

API_VERBS = tuple(api.API_REQUESTS)
UNSURE_HEAD_ROUNDS = 5  # health-watcher rounds (2 s each) a case's head is re-checked after a failed append


class ApiFailure(Exception):
    def __init__(self, code: str, message: str, field: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.error = api.ApiError(code=code, message=message, field=field, fix=fix)


PERSONAL_FIELDS = frozenset({"id_number", "phone"})


def validation_failure(exc: ValidationError, model: type[BaseModel]) -> ApiFailure:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    problem = err["msg"]
    given = err.get("input")
    if given is not None and any(str(p) in PERSONAL_FIELDS for p in err["loc"]):
        given = mask_identifier(str(given))  # an id number or phone is never echoed, even a wrong one
    shown = "" if isinstance(given, dict | list) or given is None else f" (got {str(given)[:40]!r})"
    count = len(exc.errors())
    more = f"; {count - 1} more problem(s)" if count > 1 else ""
    return ApiFailure(
        "invalid_request",
        f"{where}: {problem}{shown}{more}",
        field=where,
        fix=f"send a body matching schemas/json/api.{model.__name__}.json",
    )


class Broker:
    def __init__(
        self,
        nc: Client,
        config: Config,
        clock: Clock,
        calendar: WorkingCalendar | None = None,
        metrics: Metrics | None = None,
        plugins: pluggy.PluginManager | None = None,
        departments: dict[str, str] | None = None,
        wall: WallClock = WALL,
    ) -> None:
        """``departments``: code -> name of the departments the caller knows of (e.g. the installed adapters,
        ``unstuck.adapters.registry.installed_departments()``); every configured department is added.
        ``clock`` is the case clock (the record's times), ``wall`` the wall clock (latencies, last good reply)."""
        self.nc = nc
        self.js = nc.jetstream()
        self.config = config
        self.clock = clock
        self.wall = wall
        self.departments = dict(departments or {})
        for code in config.department_codes():
            self.departments.setdefault(code, config.department(code).name or code)
        self.metrics = metrics or Metrics(self.departments, API_VERBS, policy=config.retry_policy)
        self.metrics.use_clock(lambda: clock.now().timestamp())
        self.calendar = calendar or WorkingCalendar(
            config.deadlines.calendar_override, on_unknown_year=self.metrics.on_unknown_year
        )
        self.pm = plugins or make_plugin_manager(config.deadlines.working_days, config.escalation_chains())
        self.store = EventStore(self.js, stream=config.broker.stream, replicas=config.broker.replicas)
        self.store.on_completed = self._on_completed
        self.coordinator = Coordinator(nc, config, self.metrics, self, wall)
        self.states: dict[str, lc.CaseState] = {}
        self.stream_seqs: dict[str, int] = {}
        self.by_client_ref: dict[str, str] = {}
        self.stalled_counts: defaultdict[str, int] = defaultdict(int)
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_ids: dict[str, tuple[int, int]] = {}  # day prefix -> (counter, revision) written last
        self._own_seqs: set[int] = set()  # appended and applied here: the follower skips them
        self._opened_on: date | None = None  # the local day _opened_today indexes (for the quota)
        self._opened_today: dict[str, list[str]] = {}  # applicant id number -> cases opened that day
        self.applied_seq = 0
        self._caught_up = asyncio.Event()
        self._stopping = asyncio.Event()
        self._catch_up_to = 0
        self._subs: list[Any] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._api_slots = asyncio.Semaphore(config.broker.api_concurrency)
        self.rate_limiter = ClientRateLimiter(config.limits.api_requests_per_second, config.limits.api_burst)
        self.stream_ok = False
        self._ids: Any = None  # the case-id KV bucket, opened on first use
        self._unsure_heads: dict[str, int] = {}  # cases whose append failed without an answer -> rounds left
        self.follow_errors = 0
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "case.open": self.api_open,
            "case.get": self.api_get,
            "case.list": self.api_list,
            "case.classify": self.api_classify,
            "case.handover": self.api_handover,
            "case.extend": self.api_extend,
            "case.approve_extension": self.api_approve_extension,
            "case.record": self.api_record,
            "case.guide": self.api_guide,
            "case.close": self.api_close,
            "case.evaluate": self.api_evaluate,
            "case.reopen": self.api_reopen,
            "case.escalate": self.api_escalate,
            "case.rule_bounce": self.api_rule_bounce,
            "accountability.record": self.api_record_accountability,
            "accountability.list": self.api_list_accountability,
            "status": self.api_status,
            "admin.tick": self.api_tick,
        }

    # --- lifecycle of the broker -------------------------------------------------------------------

    async def start(self, serve_api: bool = True) -> None:
        await self.store.ensure()
        self.stream_ok = True
        self._catch_up_to = await self.store.last_seq()
        if self._catch_up_to == 0:
            self._caught_up.set()
        self._subs.append(await self.store.follow(self._on_stored, start_seq=1))
        await self._wait_caught_up()
        for code in self.departments:
            self.metrics.add_department(code)
        self.metrics.nats_connected.set(1)
        self.metrics.stream_ready.set(1)
        for state in self.states.values():
            self._resume(state)
        if serve_api:
            self._subs.append(await self.nc.subscribe(f"{API_PREFIX}.>", queue=BROKER_QUEUE, cb=self._on_api))
        self._spawn(self._watch_health())
        self._spawn(self._reconcile_heads())
        await self.nc.flush()

    async def _wait_caught_up(self, stall_seconds: float = 60.0) -> None:
        """Wait until the follower has applied the stream as it was at start; fail loudly if it stops moving."""
        last_progress = (self.applied_seq, asyncio.get_running_loop().time())
        while not self._caught_up.is_set():
            try:
                await asyncio.wait_for(self._caught_up.wait(), timeout=1.0)
            except TimeoutError:
                now = asyncio.get_running_loop().time()
                if self.applied_seq != last_progress[0]:
                    last_progress = (self.applied_seq, now)
                elif now - last_progress[1] > stall_seconds:
                    raise RuntimeError(
                        f"the broker stopped catching up with stream {self.store.stream} at message "
                        f"{self.applied_seq} of {self._catch_up_to}; check the NATS server and its log"
                    ) from None

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        self._subs.clear()
        self._stopping.set()
        await self.coordinator.stop()
        await cancel_and_wait(self._tasks)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watch_health(self) -> None:
        while not self._stopping.is_set():
            connected = self.nc.is_connected
            self.metrics.nats_connected.set(1 if connected else 0)
            try:
                await self.js.stream_info(self.store.stream)
                self.stream_ok = True
            except Exception:
                self.stream_ok = False
            self.metrics.stream_ready.set(1 if self.stream_ok else 0)
            if self.stream_ok and self._unsure_heads:
                await self._record_unsure_heads()
            await self._pause(2.0)

    async def _record_unsure_heads(self) -> None:
        """Record the heads of cases whose append failed without an answer, from what the follower applied.

        The follower may apply such events a little later (after a reconnect), so each case is checked
        for a few rounds of the health watcher; the event store never moves a recorded head backwards.
        """
        heads = {
            case_id: (state.seq, state.head_hash, self.stream_seqs.get(case_id, 0))
            for case_id in self._unsure_heads
            if (state := self.states.get(case_id)) is not None and state.seq > 0
        }
        try:
            await self.store.reconcile_heads(heads)
        except Exception as exc:
            log.warning("heads of %d case(s) not checked yet: %s", len(heads), exc)
            return
        for case_id in list(self._unsure_heads):
            self._unsure_heads[case_id] -= 1
            if self._unsure_heads[case_id] <= 0:
                del self._unsure_heads[case_id]

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the broker stops (a cancel can be swallowed inside a NATS request)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    def health(self) -> dict[str, object]:
        connected = self.nc.is_connected
        return {
            "ready": bool(connected and self.stream_ok and self._caught_up.is_set()),
            "nats_connected": connected,
            "stream": self.store.stream,
            "stream_ok": self.stream_ok,
            "cases": len(self.states),
            "applied_seq": self.applied_seq,
        }

    # --- state -----------------------------------------------------------------------------------

    def state_of(self, case_id: str) -> lc.CaseState:
        return self.states.get(case_id) or lc.CaseState(case_id=case_id)

    async def _on_stored(self, stream_seq: int, body: bytes) -> None:
        """The follower: apply events in stream order (ours were applied already; the seq check skips them)."""
        if stream_seq in self._own_seqs:
            # appended and applied by this broker already: no need to parse and check it again
            self._own_seqs.discard(stream_seq)
        else:
            try:
                fields, problems = check_body(body)
                if problems:  # not sealed by a broker (written into the stream by something else)
                    raise ValueError("; ".join(problems))
                self._apply(fields, stream_seq)
            except Exception as exc:
                self._rejected()
                log.error("stream message %s could not be applied: %s", stream_seq, exc)
        self.applied_seq = max(self.applied_seq, stream_seq)
        if not self._caught_up.is_set() and self.applied_seq >= self._catch_up_to:
            self._caught_up.set()

    def _rejected(self) -> None:
        """A stream message that was not applied; `unstuck replay --verify` says what is wrong with it."""
        self.follow_errors += 1
        self.metrics.stream_rejected.inc()

    def _apply(self, fields: dict[str, Any], stream_seq: int, data: Any = None) -> lc.CaseState | None:
        """Fold one stored event into its case; ``data`` is its payload model when the caller has it."""
        case_id = fields["case_id"]
        old = self.state_of(case_id)
        seq = int(fields["seq"])
        if seq <= old.seq:
            return None
        if seq != old.seq + 1 or fields.get("prev_hash") != old.head_hash:
            log.error(
                "case %s: event seq %s does not continue head %s; run `unstuck replay --verify`",
                case_id,
                seq,
                old.seq,
            )
            self._rejected()
            return None
        if data is None:
            data = parse_payload(fields["type"], fields["data"], int(fields.get("v", 1)))
        meta = lc.EventMeta(seq=seq, at=datetime.fromisoformat(fields["at"]), hash=fields["hash"])
        new = lc.evolve(old, fields["type"], data, meta)
        self.states[case_id] = new
        self.stream_seqs[case_id] = stream_seq
        self._account(old, new, fields["type"], data)
        return new

    def _account(self, old: lc.CaseState, new: lc.CaseState, event_type: str, data: Any) -> None:
        """Keep the case gauges in step with the states (a diff per event, no scans at scrape time)."""
        m = self.metrics
        was_open = old.exists and old.state in lc.OPEN_STATES
        is_open = new.state in lc.OPEN_STATES
        old_cat = old.category or "unclassified"
        new_cat = new.category or "unclassified"
        if (was_open, old_cat, was_open and old.overdue) != (is_open, new_cat, is_open and new.overdue):
            # most events leave a case open in its category: no gauge to move
            if was_open:
                m.open_cases.labels(old_cat).dec()
                if old.overdue:
                    m.overdue_cases.labels(old_cat).dec()
            if is_open:
                m.open_cases.labels(new_cat).inc()
                if new.overdue:
                    m.overdue_cases.labels(new_cat).inc()
        old_pending = _waiting(old) if was_open else {}
        new_pending = _waiting(new) if is_open else {}
        for rid, (dept, stalled) in old_pending.items():
            if new_pending.get(rid) != (dept, stalled):
                m.pending.labels(dept).dec()
                if stalled:
                    self._stall_count(dept, -1)
            if rid not in new_pending:
                m.waiting.forget(rid)
        for rid, (dept, stalled) in new_pending.items():
            if old_pending.get(rid) != (dept, stalled):
                m.pending.labels(dept).inc()
                if stalled:
                    self._stall_count(dept, +1)
            since = new.coordinations[rid].requested_at or new.last_event_at
            m.waiting.track(dept, rid, since.timestamp() if since else m.now())
        if event_type == "case.opened" and new.intake.get("client_ref"):
            self.by_client_ref[new.intake["client_ref"]] = new.case_id
        if not old.exists and new.exists and self._opened_on is not None:
            self._index_opened(new)

    def _index_opened(self, state: lc.CaseState) -> None:
        if state.opened_at is None or local_date(state.opened_at) != self._opened_on:
            return
        id_number = (state.intake.get("applicant") or {}).get("id_number")
        if isinstance(id_number, str):
            self._opened_today.setdefault(id_number, []).append(state.case_id)

    def _stall_count(self, dept: str, delta: int) -> None:
        self.stalled_counts[dept] += delta
        self.metrics.stalled.labels(dept).set(1 if self.stalled_counts[dept] > 0 else 0)

    # --- executing commands ------------------------------------------------------------------------

    async def execute(
        self,
        case_id: str,
        build: Callable[[lc.CaseState], object],
        actor_check: Callable[[lc.CaseState], None] | None = None,
    ) -> list[StoredEvent]:
        """Decide and append under the case's lock; on a conflict reload the case and decide again."""
        async with self.locks[case_id]:
            for _ in range(5):
                state = self.state_of(case_id)
                command = build(state)
                new_events = lc.decide(state, command)
                if not new_events:
                    return []
                started = self.wall.counter()
                try:
                    stored = await self.store.append(
                        case_id,
                        state.seq,
                        state.head_hash,
                        self.stream_seqs.get(case_id, 0),
                        new_events,
                        self.clock.now(),
                    )
                except AppendConflict:
                    self.metrics.append_conflicts.inc()
                    await self._reload(case_id)
                    continue
                except StoreUnavailable:
                    # the events may be stored all the same (an acknowledgement lost on the way back);
                    # the follower then applies them, and their head is recorded by _record_unsure_heads
                    self._unsure_heads[case_id] = UNSURE_HEAD_ROUNDS
                    raise
                self.metrics.append_seconds.observe(self.wall.counter() - started)
                for event, decided in zip(stored, new_events, strict=True):
                    # the decided payload is the stored one (validated when built): no re-parse
                    applied = self._apply(event.fields, event.stream_seq, decided.data)
                    if applied is not None and event.stream_seq > self.applied_seq:
                        self._own_seqs.add(event.stream_seq)  # the follower skips it
                    self.metrics.events.labels(event.type).inc()
                self._after(stored)
                return stored
            raise ApiFailure("conflict", f"case {case_id} kept changing under concurrent writers; try again")

    async def _reconcile_heads(self, window: int = 10_000) -> None:
        """After a crash, record the heads of the cases written last (a crash can fall between an
        append and its head); only cases with an event among the last ``window`` stream messages."""
        recent = {
            case_id: (self.states[case_id].seq, self.states[case_id].head_hash, stream_seq)
            for case_id, stream_seq in self.stream_seqs.items()
            if stream_seq > self._catch_up_to - window and case_id in self.states
        }
        try:
            behind = await self.store.reconcile_heads(recent)
        except Exception as exc:
            log.warning("heads not reconciled: %s", exc)
            return
        if behind:
            log.warning(
                "recorded the heads of %d case(s) the last writer appended but did not record", behind
            )

    def _on_completed(self, stored: list[StoredEvent]) -> None:
        """A half-written decision the event store completed later: fold it in and act on it."""
        for event in stored:
            self._apply(event.fields, event.stream_seq)
        self._after(stored)

    async def _reload(self, case_id: str) -> None:
        """Rebuild one case from the stream (after a conflict), with the follower's checks on every event."""
        events = await self.store.read_case(case_id)
        old = self.state_of(case_id)
        self.states.pop(case_id, None)
        self.stream_seqs.pop(case_id, None)
        for e in events:
            fields, problems = check_body(e.body)
            if problems:
                self._rejected()
                log.error("case %s: stream message %s not applied: %s", case_id, e.stream_seq, "; ".join(problems))
                continue
            self._apply_quietly(fields, e.stream_seq)
        if events:  # appends must name the subject's real last message, applied or not
            self.stream_seqs[case_id] = events[-1].stream_seq
        self._account(old, self.state_of(case_id), "reload", None)

    def _apply_quietly(self, fields: dict[str, Any], stream_seq: int) -> None:
        """Apply without moving the gauges (the caller accounts the whole change once)."""
        case_id = fields["case_id"]
        old = self.state_of(case_id)
        seq = int(fields["seq"])
        if seq != old.seq + 1 or fields.get("prev_hash") != old.head_hash:
            self._rejected()
            return
        try:
            data = parse_payload(fields["type"], fields["data"], int(fields.get("v", 1)))
        except EventSchemaError as exc:
            self._rejected()
            log.error("case %s: event %s not applied: %s", case_id, seq, exc)
            return
        meta = lc.EventMeta(seq=seq, at=datetime.fromisoformat(fields["at"]), hash=fields["hash"])
        self.states[case_id] = lc.evolve(old, fields["type"], data, meta)
        self.stream_seqs[case_id] = stream_seq

    def _after(self, stored: list[StoredEvent]) -> None:
        """Act on freshly stored events: coordinate, notify, count, tell the plugins."""
        for event in stored:
            f = event.fields
            state = self.state_of(event.case_id)
            data = f["data"]
            match event.type:
                case "coordination.requested":
                    coordination = state.coordinations.get(data["request_id"])
                    if coordination is not None:
                        self._coordinate(state, coordination)
                case "case.opened":
                    self.metrics.opened.labels(data.get("category") or "unclassified").inc()
                case "case.closed":
                    opened = local_date(state.opened_at or self.clock.now())
                    days = self.calendar.working_days_between(opened, local_date(self.clock.now()))
                    cat = state.category or "unclassified"
                    self.metrics.closed.labels(cat, str(bool(data.get("on_time"))).lower()).inc()
                    self.metrics.days_to_close.labels(cat).observe(max(days, 0))
                case "case.escalated":
                    self.metrics.escalations.labels(data["department"], data["role"]).inc()
                case "coordination.replied" if data.get("outcome") == "not_ours":
                    self.metrics.bounces.labels(data["department"]).inc()
            self._notify(event, state)
            if not self.pm.hook.unstuck_on_event.get_hookimpls():
                continue  # no plugin listens: no envelope to build
            try:
                self.pm.hook.unstuck_on_event(envelope=Envelope.model_validate(f))
            except Exception as exc:
                log.error("plugin failed in unstuck_on_event for %s: %s", event.type, exc)

    def _notify(self, event: StoredEvent, state: lc.CaseState) -> None:
        d = event.fields["data"]
        messages: list[tuple[str, str]] = []
        match event.type:
            case "case.escalated":
                messages.append(
                    (d["audience"], f"督辦：案件{state.case_id}已升級至{d['target']}（{d['reason']}）")
                )
            case "case.deadline_warned":
                messages.append(
                    (
                        "owner",
                        f"催辦：案件{state.case_id}將於{d['due_date']}到期，剩餘{d['working_days_left']}個工作日",
                    )
                )
            case "case.overdue":
                messages.append(("duty_leader", f"督辦：案件{state.case_id}已逾期（期限{d['due_date']}）"))
            case "case.extended":
                messages.append(
                    ("applicant", f"您的事項（案件{state.case_id}）已延期，新的辦結日期為{d['due_date']}")
                )
            case "case.review_requested":
                messages.append(
                    (
                        "applicant",
                        f"案件{state.case_id}：{d['department']}答覆不能辦理（依據：{d['legal_basis']}），"
                        f"已提請{d['higher_department']}複核，{d['notify_by']}前告知結果",
                    )
                )
            case "case.closed":
                messages.append(
                    ("applicant", f"案件{state.case_id}已辦結銷號，請對本次服務進行評價（好差評）")
                )
            case "case.bounce_ruled" | "coordination.stalled":
                messages.append(("duty_leader", f"案件{state.case_id}：{event.type}"))
        for audience, text in messages:
            body = json.dumps(
                {
                    "case_id": state.case_id,
                    "type": event.type,
                    "at": event.fields["at"],
                    "text": text,
                    "data": {k: v for k, v in d.items() if k not in ("applicant",)},
                },
                ensure_ascii=False,
            ).encode()
            self._spawn(self._publish_notify(audience, body))

    async def _publish_notify(self, audience: str, body: bytes) -> None:
        try:
            await self.nc.publish(notify_subject(audience), body)
        except Exception as exc:
            log.warning("notification to %s not sent: %s", audience, exc)

    # --- coordination ------------------------------------------------------------------------------

    def _resume(self, state: lc.CaseState) -> None:
        if state.state not in lc.OPEN_STATES:
            return
        for c in state.coordinations.values():
            if c.awaiting_reply:
                self._coordinate(state, c)

    def _coordinate(self, state: lc.CaseState, c: lc.Coordination) -> None:
        case_id = state.case_id

        def build(attempt: int, reply_by: datetime) -> CoordinationRequest:
            s = self.state_of(case_id)
            intake = s.intake
            return CoordinationRequest(
                request_id=c.request_id,
                case_id=case_id,
                department=c.department,
                category=Category(s.category or "hard"),
                matter=intake["matter"],
                matter_title=intake["matter_title"],
                facts=intake.get("facts", {}),
                question=c.question,
                deadline=s.due_date or c.deadline,
                reply_by=reply_by,
                attempt=attempt,
            )

        self.coordinator.ensure(case_id, c.request_id, c.department, c.attempts, c.status == "stalled", build)

    def still_awaiting(self, case_id: str, request_id: str) -> bool:
        state = self.states.get(case_id)
        if state is None or state.state not in lc.OPEN_STATES:
            return False
        c = state.coordinations.get(request_id)
        return c is not None and c.awaiting_reply

    async def _record(self, case_id: str, build: Callable[[lc.CaseState], object]) -> bool:
        while True:
            try:
                await self.execute(case_id, build)
                return True
            except lc.Refused as exc:
                log.info("coordination result for %s not recorded: %s", case_id, exc)
                return False
            except StoreUnavailable as exc:
                # nothing was stored; keep the result and try again when JetStream is back
                log.warning("case %s: %s; retrying in 1s", case_id, exc)
                await asyncio.sleep(1.0)

    async def attempt_failed(
        self, case_id: str, request_id: str, attempt: int, reason: str, detail: str
    ) -> bool:
        return await self._record(case_id, lambda s: lc.AttemptFailed(request_id, attempt, reason, detail))

    async def stalled(self, case_id: str, request_id: str, attempts: int, last_reason: str) -> bool:
        dept = self.state_of(case_id).coordinations[request_id].department
        try:
            self.pm.hook.unstuck_on_stall(department=dept, case_id=case_id, attempts=attempts)
        except Exception as exc:  # a broken plugin must not keep the stall off the record
            log.error("plugin failed in unstuck_on_stall for %s: %s", dept, exc)
        return await self._record(
            case_id, lambda s: lc.Stall(request_id, attempts, last_reason, self.chain(dept))
        )

    async def replied(self, case_id: str, reply: CoordinationReply, attempt: int) -> bool:
        return await self._record(case_id, lambda s: self._reply_command(s, reply, attempt, None))

    def _reply_command(
        self, state: lc.CaseState, reply: CoordinationReply, attempt: int, recorded_by: str | None
    ) -> lc.Reply:
        today = local_date(self.clock.now())
        return lc.Reply(
            reply=reply,
            attempt=attempt,
            today=today,
            review_notify_by=self.calendar.add_working_days(today, self.config.deadlines.review_notify_days),
            higher_department=self.config.department(reply.department).higher
            or f"{reply.department}的上級主管部門",
            max_bounces=self.config.deadlines.max_bounces,
            known_departments=frozenset(self.departments),
            recorded_by=recorded_by,
        )

    # --- rules the shell computes for the pure core ----------------------------------------------

    def chain(self, department: str) -> dict[str, str]:
        return self.pm.hook.unstuck_escalation_chain(department=department) or {}

    def deadline(self, category: Category, start: datetime) -> tuple[int, Any]:
        days = self.pm.hook.unstuck_deadline_working_days(category=category)
        if days is None:
            raise ApiFailure("internal", f"no plugin gives a deadline for category {category.value}")
        return days, self.calendar.add_working_days(local_date(start), days)

    def classification(
        self,
        intake: Any,
        category: Category | None,
        reason: str | None,
        departments: list[str] | None,
        start: datetime,
    ) -> lc.Classification | None:
        if category is None:
            suggestion = self.pm.hook.unstuck_classify(intake=intake)
            if suggestion is None:
                return None
            category, reason = suggestion
        if departments is None:
            routed: list[str] = []
            for result in reversed(self.pm.hook.unstuck_route(intake=intake, category=category)):
                for code in result or []:
                    if code not in routed:
                        routed.append(code)
            departments = routed
        for code in departments:
            self._known_department(code, "departments")
        days, due = self.deadline(category, start)
        return lc.Classification(
            category=category,
            reason=reason or "classified",
            working_days=days,
            due_date=due,
            departments=tuple(departments),
            duty_leader=self.config.window.duty_leader,
        )

    def _known_department(self, code: str, field: str) -> None:
        if code not in self.departments:
            raise ApiFailure(
                "invalid_request",
                f"{field}: unknown department {code!r}",
                field=field,
                fix=f"use one of {', '.join(sorted(self.departments))}, or configure [departments.{code}]",
            )

    # --- API ---------------------------------------------------------------------------------------

    async def _on_api(self, msg: Msg) -> None:
        await self._api_slots.acquire()
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._api_done)

    def _api_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._api_slots.release()

    async def _serve(self, msg: Msg) -> None:
        verb = msg.subject[len(API_PREFIX) + 1 :]
        if msg.reply and not msg.reply.startswith("_INBOX."):
            # answer only to an inbox: with reply subject unstuck.case.X the answer would land in the record
            self.metrics.api_errors.labels("not_allowed").inc()
            log.warning("API %s refused: reply subject %r is not an _INBOX", verb, msg.reply[:80])
            return
        reply = await self.handle(verb, msg.data, client_of(msg.headers, msg.reply))
        if msg.reply:
            try:
                await msg.respond(reply)
            except Exception as exc:
                log.warning("API reply for %s not sent: %s", verb, exc)

    async def handle(self, verb: str, data: bytes, client: str | None = None) -> bytes:
        """Answer one API request; never raises. ``client`` (see unstuck.limits) is rate limited."""
        handler = self.handlers.get(verb)
        try:
            if client is not None and (wait := self.rate_limiter.take(client)):
                limits = self.config.limits
                raise ApiFailure(
                    "rate_limited",
                    f"too many API requests from this client: the limit is {limits.api_requests_per_second:g} "
                    f"per second with bursts of {limits.api_burst}",
                    field="subject",
                    fix=f"retry after {wait:.2f}s and send fewer requests, "
                    "or raise [limits] api_requests_per_second",
                )
            if handler is None:
                raise ApiFailure(
                    "not_found",
                    f"unknown API verb {verb!r}",
                    field="subject",
                    fix=f"use unstuck.api.<verb> with one of: {', '.join(API_VERBS)}",
                )
            self.metrics.api_requests.labels(verb).inc()
            if len(data) > self.config.broker.max_payload_bytes:
                raise ApiFailure(
                    "payload_too_large",
                    f"request body is {len(data)} bytes; the maximum is "
                    f"{self.config.broker.max_payload_bytes}",
                    field="body",
                    fix="shorten the description or raise broker.max_payload_bytes",
                )
            try:
                body = json.loads(data) if data.strip() else {}
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiFailure(
                    "invalid_json",
                    f"request body is not JSON: {exc}",
                    field="body",
                    fix="send a UTF-8 JSON object",
                ) from exc
            if not isinstance(body, dict):
                raise ApiFailure(
                    "invalid_request",
                    "request body must be a JSON object",
                    field="body",
                    fix="wrap the fields in {...}",
                )
            result = await handler(body)
            return api.ApiReply(ok=True, result=result).model_dump_json().encode()
        except ApiFailure as failure:
            error = failure.error
        except lc.Refused as refused:
            error = api.ApiError(code=refused.code, message=str(refused), field=refused.field)
        except StoreUnavailable as exc:
            error = api.ApiError(
                code="unavailable",
                message=f"the case record is unavailable: {exc}; the change was not confirmed",
                fix="retry when JetStream is back (see /healthz); case.open with a client_ref is stored once",
            )
        except nats.errors.Error as exc:  # the KV buckets or the stream did not answer
            error = api.ApiError(
                code="unavailable",
                message=f"JetStream is unavailable: {type(exc).__name__}: {exc}"[:300],
                fix="retry when JetStream is back (see /healthz)",
            )
        except Exception as exc:
            log.exception("API %s failed", verb)
            error = api.ApiError(code="internal", message=f"internal error: {type(exc).__name__}")
        self.metrics.api_errors.labels(error.code).inc()
        return api.ApiReply(ok=False, error=error).model_dump_json().encode()

    @staticmethod
    def parse(model: type[Any], body: dict[str, Any]) -> Any:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise validation_failure(exc, model) from exc

    def _case(self, case_id: str) -> lc.CaseState:
        state = self.states.get(case_id)
        if state is None:
            raise ApiFailure(
                "not_found",
                f"case {case_id} does not exist",
                field="case_id",
                fix="check the id with `unstuck case list`",
            )
        return state

    def _events_reply(self, stored: list[StoredEvent]) -> dict[str, Any]:
        case_id = stored[0].case_id if stored else None
        state = self.states.get(case_id) if case_id else None
        return {
            "case_id": case_id,
            "state": state.state if state else None,
            "events": [{"seq": e.seq, "type": e.type, "hash": e.hash} for e in stored],
        }

    async def _ids_bucket(self) -> Any:
        if self._ids is None:
            try:
                self._ids = await self.js.key_value(IDS_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                self._ids = await self.js.create_key_value(
                    bucket=IDS_BUCKET, history=1, replicas=self.config.broker.replicas
                )
        return self._ids

    async def _ref_holder(self, ref: str, candidate: str | None) -> str | None:
        """The case that holds a client_ref: reserved earlier (by any replica or try), else ``candidate``.

        The reservation lives in the ids bucket, so a retried open that reaches another replica, or
        arrives before this broker's follower has seen the first one, still finds its case.
        """
        key = "ref." + hashlib.sha256(ref.encode()).hexdigest()[:40]
        ids = await self._ids_bucket()
        if candidate is not None:
            try:
                await ids.create(key, candidate.encode())
                return candidate
            except nats.js.errors.KeyWrongLastSequenceError:
                pass
        try:
            entry = await ids.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        return (entry.value or b"").decode() or None

    async def _allocate_id(self) -> str:
        day = local_date(self.clock.now()).strftime("%Y%m%d")
        prefix = f"{self.config.broker.case_prefix}-{day}"
        await self._ids_bucket()
        # One allocation at a time in this broker: concurrent opens would race each other on the same
        # key and run out of tries. The counter this broker wrote last is tried first (one round trip);
        # another replica's write makes that fail, and the counter is read again.
        async with self.locks[f"ids:{prefix}"]:
            known = self._last_ids.get(prefix)
            for _ in range(50):
                try:
                    if known is None:
                        entry = await self._ids.get(prefix)
                        known = (int(entry.value or b"0"), int(entry.revision or 0))
                    n = known[0] + 1
                    revision = await self._ids.update(prefix, str(n).encode(), last=known[1])
                except nats.js.errors.KeyNotFoundError:
                    n = 1
                    try:
                        revision = await self._ids.create(prefix, b"1")
                    except nats.js.errors.KeyWrongLastSequenceError:
                        continue
                except nats.js.errors.KeyWrongLastSequenceError:
                    known = None
                    continue
                self._last_ids = {prefix: (n, revision)}
                return f"{prefix}-{n:04d}"
        raise ApiFailure("conflict", "could not allocate a case id under contention; try again")

    async def api_open(self, body: dict[str, Any]) -> dict[str, Any]:
        intake: api.OpenCase = self.parse(api.OpenCase, body)
        self._known_department(intake.department, "department")
        ref = intake.client_ref
        async with self.locks[f"ref:{ref}"] if ref else contextlib.nullcontext():
            if ref and ref in self.by_client_ref:
                return self._opened_before(self.by_client_ref[ref])
            self._check_applicant_quota(intake)
            case_id = await self._ref_holder(ref, None) if ref else None
            if case_id is None:
                fresh = await self._allocate_id()
                case_id = (await self._ref_holder(ref, fresh) or fresh) if ref else fresh
            if case_id not in self.states and ref and await self.store.read_case(case_id):
                await self._reload(case_id)  # stored by another replica or an unconfirmed earlier try
            if self.state_of(case_id).exists:
                return self._opened_before(case_id)
            now = self.clock.now()
            classification = self.classification(intake, intake.category, "classified at intake", None, now)
            try:
                stored = await self.execute(
                    case_id, lambda s: lc.Open(intake=intake, classification=classification)
                )
            except lc.Refused:
                if ref and self.state_of(case_id).exists:  # another replica finished the same open
                    return self._opened_before(case_id)
                raise
        return {**self._events_reply(stored), "duplicate": False}

    def _opened_before(self, case_id: str) -> dict[str, Any]:
        existing = self.state_of(case_id)
        return {"case_id": case_id, "state": existing.state, "duplicate": True, "events": []}

    def _check_applicant_quota(self, intake: api.OpenCase) -> None:
        """At most [limits] cases_per_applicant_per_day cases opened per applicant id number and local day."""
        limit = self.config.limits.cases_per_applicant_per_day
        if not limit:
            return
        id_number = intake.applicant.id_number.get_secret_value()
        today = local_date(self.clock.now())
        if self._opened_on != today:  # one scan a day; then each opened case is indexed as it is applied
            self._opened_on = today
            self._opened_today = {}
            for state in self.states.values():
                self._index_opened(state)
        opened = sorted(self._opened_today.get(id_number, ()))
        if len(opened) >= limit:
            shown = ", ".join(opened[:3]) + (" ..." if len(opened) > 3 else "")
            raise ApiFailure(
                "rate_limited",
                f"applicant {intake.applicant.id_number.masked()} already has {len(opened)} cases opened "
                f"today ({shown}); the limit is {limit} per applicant per day",
                field="applicant.id_number",
                fix="add to one of those cases instead (unstuck case show ID), open it tomorrow, "
                "or raise [limits] cases_per_applicant_per_day",
            )

    async def api_get(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.GetCase = self.parse(api.GetCase, body)
        state = self._case(req.case_id)
        out: dict[str, Any] = {"state": mask_state(state.to_dict(), req.reveal)}
        if req.events:
            stored = await self.store.read_case(req.case_id)
            out["events"] = [mask_event(e.fields, req.reveal) for e in stored]
        return out

    async def api_list(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.ListCases = self.parse(api.ListCases, body)
        rows = []
        for s in self.states.values():
            if req.state and s.state != req.state:
                continue
            if req.category and s.category != req.category.value:
                continue
            if (
                req.department
                and req.department not in s.departments
                and s.intake.get("department") != req.department
            ):
                continue
            if req.overdue is not None and s.overdue != req.overdue:
                continue
            rows.append(summary(s))
            if len(rows) >= req.limit:
                break
        return {"cases": rows, "count": len(rows)}

    def _actor(self, actor: str) -> int:
        return self.config.rank(actor)

    async def api_classify(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.Classify = self.parse(api.Classify, body)
        state = self._case(req.case_id)
        start = state.opened_at or self.clock.now()
        intake = api.OpenCase.model_validate(state.intake)
        c = self.classification(intake, req.category, req.reason, req.departments, start)
        assert c is not None
        if state.state != lc.INTAKE:
            # reclassification keeps the extensions already granted
            days, _ = self.deadline(req.category, start)
            due = self.calendar.add_working_days(local_date(start), days + state.extension_days)
            c = lc.Classification(c.category, req.reason, days, due, c.departments, c.duty_leader)
        return self._events_reply(await self.execute(req.case_id, lambda s: lc.Classify(req.actor, c)))

    async def api_handover(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.Handover = self.parse(api.Handover, body)
        self._case(req.case_id)
        return self._events_reply(
            await self.execute(
                req.case_id, lambda s: lc.Handover(req.actor, self._actor(req.actor), req.owner, req.reason)
            )
        )

    async def api_extend(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.RequestExtension = self.parse(api.RequestExtension, body)
        state = self._case(req.case_id)
        today = local_date(self.clock.now())
        due = self.calendar.add_working_days(state.due_date or today, req.working_days)
        return self._events_reply(
            await self.execute(
                req.case_id,
                lambda s: lc.RequestExtension(
                    req.actor,
                    req.working_days,
                    req.reason,
                    today,
                    due,
                    self.config.deadlines.max_extension_days,
                ),
            )
        )

    async def api_approve_extension(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.ApproveExtension = self.parse(api.ApproveExtension, body)
        self._case(req.case_id)
        return self._events_reply(
            await self.execute(req.case_id, lambda s: lc.ApproveExtension(req.actor, self._actor(req.actor)))
        )

    async def api_record(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.RecordReply = self.parse(api.RecordReply, body)
        state = self._case(req.case_id)
        candidates = [c for c in state.current() if c.department == req.department and c.open]
        if not candidates:
            raise ApiFailure(
                "not_allowed",
                f"case {req.case_id} has no open coordination with {req.department}",
                field="department",
                fix="see `unstuck case show` for the departments asked",
            )
        try:
            reply = CoordinationReply(
                request_id=candidates[0].request_id,
                department=req.department,
                outcome=req.outcome,
                message=req.message,
                handler=req.handler,
                legal_basis=req.legal_basis,
                belongs_to=req.belongs_to,
                expected_date=req.expected_date,
                materials=req.materials,
            )
        except ValidationError as exc:
            raise validation_failure(exc, api.RecordReply) from exc
        return self._events_reply(
            await self.execute(
                req.case_id, lambda s: self._reply_command(s, reply, candidates[0].attempts or 1, req.actor)
            )
        )

    async def api_guide(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.Guide = self.parse(api.Guide, body)
        self._case(req.case_id)
        today = local_date(self.clock.now())
        return self._events_reply(
            await self.execute(
                req.case_id,
                lambda s: lc.Guide(req.actor, self._actor(req.actor), req.window, req.instructions, today),
            )
        )

    async def api_close(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.Close = self.parse(api.Close, body)
        self._case(req.case_id)
        today = local_date(self.clock.now())
        return self._events_reply(
            await self.execute(
                req.case_id,
                lambda s: lc.Close(req.actor, self._actor(req.actor), req.outcome, req.explanation, today),
            )
        )

    async def api_evaluate(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.Evaluate = self.parse(api.Evaluate, body)
        state = self._case(req.case_id)
        days, due = self.deadline(Category(state.category or "hard"), self.clock.now())
        return self._events_reply(
            await self.execute(
                req.case_id,
                lambda s: lc.Evaluate(req.actor, req.rating, req.comment, req.department_at_fault, days, due),
            )
        )

    async def api_reopen(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.Reopen = self.parse(api.Reopen, body)
        state = self._case(req.case_id)
        days, due = self.deadline(Category(state.category or "hard"), self.clock.now())
        return self._events_reply(
            await self.execute(
                req.case_id, lambda s: lc.Reopen(req.actor, self._actor(req.actor), req.reason, days, due)
            )
        )

    async def api_escalate(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.Escalate = self.parse(api.Escalate, body)
        self._case(req.case_id)
        if req.department != "window":
            self._known_department(req.department, "department")
        level = {"clerk": 0, "section_head": 1, "leader_in_charge": 2, "director": 3}[req.level]
        return self._events_reply(
            await self.execute(
                req.case_id,
                lambda s: lc.Escalate(req.actor, req.department, level, req.note, self.chain(req.department)),
            )
        )

    async def api_rule_bounce(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.RuleBounce = self.parse(api.RuleBounce, body)
        self._case(req.case_id)
        self._known_department(req.department, "department")
        return self._events_reply(
            await self.execute(
                req.case_id, lambda s: lc.RuleBounce(req.actor, self._actor(req.actor), req.department)
            )
        )

    async def api_record_accountability(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.RecordAccountability = self.parse(api.RecordAccountability, body)
        self._case(req.case_id)
        data = AccountabilityRecorded(
            staff=req.staff,
            section=req.section,
            leader_in_charge=req.leader_in_charge,
            finding=req.finding,
            measures=req.measures,
            fault_tolerance=req.fault_tolerance,
        )
        return self._events_reply(
            await self.execute(req.case_id, lambda s: lc.RecordAccountability(req.actor, data))
        )

    async def api_list_accountability(self, body: dict[str, Any]) -> dict[str, Any]:
        req: api.ListAccountability = self.parse(api.ListAccountability, body)
        rows = []
        for s in self.states.values():
            if req.department and s.intake.get("department") != req.department:
                continue
            for record in s.accountability:
                if req.staff and record["staff"] != req.staff:
                    continue
                rows.append({"case_id": s.case_id, "department": s.intake.get("department"), **record})
        return {"records": rows, "count": len(rows)}

    async def api_status(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.status()

    async def api_tick(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"events": await self.tick()}

    def status(self) -> dict[str, Any]:
        """Departments ranked worst first, from figures kept up to date event by event (no case scan).

        Pending ages and ``at`` are case time (coordinations wait since a time the record gives); the
        last good reply is wall time (the coordinator stamps replies as they arrive).
        """
        now_wall = self.wall.unix()
        now = self.clock.now()
        rows: list[dict[str, Any]] = []
        for dept in sorted(self.departments):
            stats = self.coordinator.department_stats(dept)
            policy = self.coordinator.policy(dept)
            oldest = self.metrics.waiting.oldest(dept)
            failures = stats.timeouts + stats.errors + stats.invalid + stats.no_responders
            rows.append(
                {
                    "department": dept,
                    "name": self.departments[dept],
                    "stalled": self.stalled_counts.get(dept, 0),
                    "pending": self.metrics.waiting.count(dept),
                    "oldest_pending_seconds": max(0.0, now.timestamp() - oldest) if oldest else None,
                    "p50_seconds": stats.p(0.5),
                    "p95_seconds": stats.p(0.95),
                    "attempts": stats.attempts,
                    "retries": stats.retries,
                    "retry_rate": (stats.retries / stats.attempts) if stats.attempts else 0.0,
                    "timeouts": stats.timeouts,
                    "errors": stats.errors + stats.invalid,
                    "invalid_replies": stats.invalid,
                    "no_responders": stats.no_responders,
                    "failures": failures,
                    "last_good_reply_seconds_ago": (now_wall - stats.last_good_reply)
                    if stats.last_good_reply
                    else None,
                    "reply_timeout_seconds": policy.timeout_seconds,
                    "concurrency": policy.concurrency,
                }
            )
        # worst first: stalled now, then waiting now, then trouble so far, then slow replies
        rows.sort(
            key=lambda r: (
                -r["stalled"],
                -r["pending"],
                -(r["oldest_pending_seconds"] or 0),
                -r["failures"],
                -r["retry_rate"],
                -(r["p95_seconds"] or 0),
                r["department"],
            )
        )
        open_cases = 0
        overdue: dict[str, int] = {}
        for s in self.states.values():
            if s.state in lc.OPEN_STATES:
                open_cases += 1
                if s.overdue:
                    cat = s.category or "unclassified"
                    overdue[cat] = overdue.get(cat, 0) + 1
        return {
            "departments": rows,
            "open_cases": open_cases,
            "overdue_cases": sum(overdue.values()),
            "overdue_by_category": dict(sorted(overdue.items())),
            "cases": len(self.states),
            "at": now.isoformat(),
        }

    # --- deadlines ---------------------------------------------------------------------------------

    async def tick(self) -> int:
        """Run the deadline watcher over every open case: warnings (催辦), overdue (督辦), escalation."""
        now = self.clock.now()
        today = local_date(now)
        count = 0
        chains = {code: self.chain(code) for code in [*self.departments, "window"]}
        period = timedelta(hours=self.config.deadlines.escalation_period_hours)
        warn_at = tuple(self.config.deadlines.warn_at)
        for case_id, state in list(self.states.items()):
            if state.state not in lc.OPEN_STATES or state.state == lc.INTAKE or state.due_date is None:
                continue
            left = self.calendar.working_days_between(today, state.due_date)
            tick = lc.Tick(
                today=today,
                at=now,
                working_days_left=left,
                warn_at=warn_at,
                escalation_period=period,
                chains=chains,
            )
            if not lc.decide(state, tick):
                continue
            try:
                count += len(await self.execute(case_id, _constant(tick)))
            except (lc.Refused, StoreUnavailable) as exc:
                log.warning("deadline watcher skipped %s: %s", case_id, exc)
        return count

    async def run_ticker(self, interval: float) -> None:
        while not self._stopping.is_set():
            await self._pause(interval)
            if self._stopping.is_set():
                return
            try:
                await self.tick()
            except Exception:
                log.exception("deadline watcher failed")


def _constant(command: object) -> Callable[[lc.CaseState], object]:
    """A command builder that ignores the state (the command was computed beforehand)."""

    def build(_state: lc.CaseState) -> object:
        return command

    return build


def _waiting(state: lc.CaseState) -> dict[str, tuple[str, bool]]:
    return {
        c.request_id: (c.department, c.status == "stalled")
        for c in state.coordinations.values()
        if c.awaiting_reply
    }


def mask_applicant(applicant: dict[str, Any]) -> dict[str, Any]:
    out = dict(applicant)
    for key in ("id_number", "phone"):
        if out.get(key):
            out[key] = mask_identifier(str(out[key]))
    return out


def mask_state(state: dict[str, Any], reveal: bool) -> dict[str, Any]:
    if reveal or "applicant" not in state.get("intake", {}):
        return state
    return {**state, "intake": {**state["intake"], "applicant": mask_applicant(state["intake"]["applicant"])}}


def mask_event(fields: dict[str, Any], reveal: bool) -> dict[str, Any]:
    data = fields.get("data", {})
    if reveal or "applicant" not in data:
        return fields
    return {**fields, "data": {**data, "applicant": mask_applicant(data["applicant"])}}


def summary(s: lc.CaseState) -> dict[str, Any]:
    applicant = s.intake.get("applicant", {})
    masked = mask_applicant(applicant)
    return {
        "case_id": s.case_id,
        "opened_at": s.opened_at.isoformat() if s.opened_at else None,
        "state": s.state,
        "category": s.category,
        "category_label": CATEGORY_LABELS.get(Category(s.category)) if s.category else None,
        "department": s.intake.get("department"),
        "departments": s.departments,
        "owner": s.owner,
        "matter_title": s.intake.get("matter_title"),
        "applicant": f"{masked.get('name', '')} {masked.get('id_number', '')}".strip(),
        "due_date": s.due_date.isoformat() if s.due_date else None,
        "overdue": s.overdue,
        "escalation_level": max((lv for lv, _ in s.escalations.values()), default=0),
    }


__all__ = ["API_VERBS", "ApiFailure", "Broker", "EventSchemaError"]

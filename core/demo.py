"""``unstuck demo``: the window's fortnight around National Day 2026, on a simulated clock.

Thirteen realistic cases (every category, all three departments) are opened on Monday 28 September.
人社 (renshe) is configured slow for the first seconds, so requests time out, are retried and one
department stalls before it recovers. The clock then runs day by day through the holiday and the
10 October make-up working day: deadline warnings (催辦), an extension (延期), an overdue case that
escalates (督辦), closings (銷號), evaluations (好差評) and a reopening (重辦).

Every run starts from an empty data directory of its own (``.unstuck-demo`` unless ``--data-dir``
says otherwise), which it clears first: the sample cases carry a ``client_ref``, so a second run on
the first run's data would get the first run's cases back, already closed. The demo never clears
the directory ``unstuck serve`` uses by default, nor one it did not make.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import signal
import sys
import time
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from unstuck.schemas.labels import label

from . import lifecycle as lc
from .broker.identity import ACTOR_FIELD, APPLICANT, APPLICANT_VERBS, CLAIMED, Caller
from .bus import Bus
from .clock import CHINA, SimulatedClock, local_date
from .config import Config, RetryPolicy
from .connection import data_dir
from .embedded import still_running
from .metrics import REQUEST_OUTCOMES
from .texttable import seconds, table

START = datetime(2026, 9, 28, 9, 0, tzinfo=CHINA)
LEADER = "leader-gao"
DEMO_DATA_DIR = Path(".unstuck-demo")
DEMO_MARKER = "unstuck-demo.txt"  # in a data directory the demo made: it may clear it on its next run


class DemoDirectoryError(RuntimeError):
    """The demo will not clear the data directory it was given; the message says why and what to do."""


def fresh_directory(directory: Path, serve_directory: Path) -> str:
    """Empty ``directory`` for a run (clearing a previous demo's data); what to print about it.

    Refuses the directory ``unstuck serve`` uses (``serve_directory``), a directory holding data the
    demo did not write, and one whose embedded server still runs."""
    if directory.resolve() == serve_directory.resolve():
        raise DemoDirectoryError(
            f"{directory} is where `unstuck serve` keeps the bus's data (its data directory: .unstuck, or "
            "$UNSTUCK_DATA_DIR); the demo clears its own directory on every run and never that one: "
            f"give the demo another --data-dir (without one it uses {DEMO_DATA_DIR})"
        )
    if directory.exists() and not directory.is_dir():
        raise DemoDirectoryError(f"--data-dir {directory} is not a directory: give a directory for the demo")
    cleared = False
    if directory.exists() and any(directory.iterdir()):
        if not (directory / DEMO_MARKER).is_file():
            raise DemoDirectoryError(
                f"{directory} holds data the demo did not write, and the demo clears its directory on "
                f"every run: give another --data-dir, or delete {directory} with "
                f"`unstuck reset --data-dir {shlex.quote(str(directory))}` if it is scratch"
            )
        busy = still_running(directory)
        if busy:
            raise DemoDirectoryError(f"the demo cannot clear {directory}: {busy}")
        try:
            shutil.rmtree(directory)
        except OSError as exc:
            raise DemoDirectoryError(f"the demo cannot clear {directory}: {exc}") from exc
        cleared = True
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_MARKER).write_text(
        "Made by `unstuck demo`: its next run clears this directory.\n", encoding="utf-8"
    )
    before = "the previous run's data cleared" if cleared else "a new directory"
    return (
        f"unstuck demo: data in {directory}/ ({before}; the next run clears it again; "
        f"`unstuck serve` keeps its own in {serve_directory}/)"
    )


def demo_config(base: Config) -> Config:
    """Short timeouts so the demo shows retries and a stall in seconds, not minutes."""
    retry = RetryPolicy(
        timeout_seconds=0.8,
        attempts=3,
        backoff_initial_seconds=0.2,
        backoff_max_seconds=0.8,
        jitter_seconds=0.1,
        stalled_retry_seconds=1.5,
        concurrency=16,
    )
    config = base.model_copy(deep=True)
    config.retry = retry
    config.staff.update({LEADER: "leader_in_charge", "w-zhang": "clerk", "w-li": "clerk", "w-wang": "clerk"})
    config.window.duty_leader = LEADER
    config.broker.online_owner = config.broker.online_owner or "w-li"  # answers for reports made online
    return config


def sample_cases() -> list[tuple[str, dict[str, Any]]]:
    files = sorted(
        (p for p in resources.files("unstuck.samples").iterdir() if p.name.endswith(".json")),
        key=lambda p: p.name,
    )
    return [(p.name.removesuffix(".json"), json.loads(p.read_text(encoding="utf-8"))) for p in files]


class Demo:
    def __init__(self, bus: Bus, clock: SimulatedClock, out: Any = sys.stdout) -> None:
        self.bus = bus
        self.clock = clock
        self.out = out
        self.ids: dict[str, str] = {}

    @property
    def broker(self) -> Any:
        return self.bus.broker

    def say(self, text: str) -> None:
        stamp = self.clock.now().astimezone(CHINA).strftime("%m-%d %a %H:%M")
        print(f"[{stamp}] {text}", file=self.out, flush=True)

    async def call(self, verb: str, body: dict[str, Any]) -> Any:
        # the script acts in-process for the people it names: the record says their names are claimed
        actor = APPLICANT if verb in APPLICANT_VERBS else body.get(ACTOR_FIELD.get(verb, "actor"))
        caller = Caller(actor, CLAIMED) if actor else None
        data = json.dumps(body, ensure_ascii=False).encode()
        reply = json.loads(await self.broker.handle(verb, data, caller=caller))
        if not reply["ok"]:
            raise RuntimeError(f"{verb} refused: {reply['error']['message']}")
        return reply["result"]

    def state(self, key: str) -> lc.CaseState:
        return self.broker.state_of(self.ids[key])

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until no department is being asked any more (answered, or answered 'accepted')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = [
                c
                for s in self.broker.states.values()
                if s.state in lc.OPEN_STATES
                for c in s.coordinations.values()
                if c.awaiting_reply
            ]
            if not waiting:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("departments did not answer within the demo's time")

    async def run(self) -> None:
        cases = sample_cases()
        self.say(f"the window opens {len(cases)} cases; 人社 (renshe) answers slowly for a while")
        for key, body in cases:
            result = await self.call("case.open", body)
            self.ids[key] = result["case_id"]
            s = self.state(key)
            self.say(
                f"{s.case_id} opened  {body['matter_title']}  [{s.category}] → {', '.join(s.departments) or 'guide'}"
            )
        seen_stall = False
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            waiting = [
                c for s in self.broker.states.values() for c in s.coordinations.values() if c.awaiting_reply
            ]
            if any(c.status == "stalled" for c in waiting) and not seen_stall:
                seen_stall = True
                stalled = sorted({c.department for c in waiting if c.status == "stalled"})
                self.say(
                    f"department stalled: {', '.join(stalled)}; escalated to the section head, retrying slowly"
                )
            if not waiting:
                break
            await asyncio.sleep(0.1)
        await self.settle()
        self.say("every department has answered")
        await self.handle_answers()
        for day in range(1, 15):
            self.clock.set(START + timedelta(days=day))
            await self.new_day()
        self.say("the demo fortnight is over")

    async def handle_answers(self) -> None:
        for key in self.ids:
            s = self.state(key)
            if s.state == lc.GUIDING:
                window = {
                    "food_permit": "市場監管局食品許可窗口",
                    "employment_registration": "人社局就業服務窗口",
                }.get(s.intake["matter"], s.intake["window"])
                await self.call(
                    "case.guide",
                    {
                        "case_id": s.case_id,
                        "actor": s.owner,
                        "window": window,
                        "instructions": f"請攜帶所需材料到{window}辦理，已與窗口溝通，可直接受理",
                    },
                )
                self.say(f"{s.case_id} guided to {window} and closed")
            elif s.category == "refused":
                c = s.current()[0]
                await self.call(
                    "accountability.record",
                    {
                        "case_id": s.case_id,
                        "actor": LEADER,
                        "staff": f"{c.department}-clerk-07",
                        "section": "業務科",
                        "leader_in_charge": "分管副局長",
                        "finding": "材料齊全而推諉不辦，服務意識不強",
                        "measures": ["interview", "performance_review"],
                        "fault_tolerance": False,
                    },
                )
                self.say(
                    f"{s.case_id} 不給辦: accountability recorded for the clerk, section and leader in charge"
                )
        for key in self.ids:
            s = self.state(key)
            if s.state == lc.ANSWERED:
                await self.close(key)
        key7 = next(k for k in self.ids if k.startswith("07"))
        s = self.state(key7)
        await self.call(
            "case.evaluate",
            {
                "case_id": s.case_id,
                "rating": "bad",
                "comment": "執照經營範圍表述與說好的不一致",
                "department_at_fault": "scjg",
            },
        )
        self.say(f"{s.case_id} rated bad, attributed to scjg → reopened (重辦)")
        await self.settle()
        await self.close(key7)
        for key in self.ids:
            s = self.state(key)
            if s.state == lc.CLOSED:
                await self.call(
                    "case.evaluate",
                    {
                        "case_id": s.case_id,
                        "rating": "good",
                        "comment": "問題解決了，窗口很負責",
                    },
                )
        self.say("applicants rated the closed cases (好差評)")

    async def close(self, key: str) -> None:
        s = self.state(key)
        resolution = s.resolution or {}
        outcome = str(resolution.get("outcome", "resolved"))
        outcome = outcome if outcome in ("resolved", "cannot", "need_materials") else "resolved"
        explanation = f"已向申請人說明：{resolution.get('summary', '')}"[:4000]
        await self.call(
            "case.close",
            {"case_id": s.case_id, "actor": s.owner, "outcome": outcome, "explanation": explanation},
        )
        self.say(f"{s.case_id} closed (銷號): {outcome}")

    async def new_day(self) -> None:
        today = local_date(self.clock.now())
        working = self.broker.calendar.is_working_day(today)
        before = {cid: (s.overdue, _max_level(s), s.warned) for cid, s in self.broker.states.items()}
        await self.broker.tick()
        notes = []
        for cid, s in self.broker.states.items():
            overdue, level, warned = before[cid]
            if s.warned != warned:
                notes.append(f"{cid} 催辦: due {s.due_date}")
            if s.overdue and not overdue and _max_level(s) > level:
                notes.append(f"{cid} overdue (督辦) → escalated to {self._level(s)}")
            elif s.overdue and not overdue:
                notes.append(f"{cid} overdue (督辦) on a day off: escalation starts on the next working day")
            elif overdue and s.overdue and _max_level(s) > level:
                notes.append(f"{cid} still overdue → escalated to {self._level(s)}")
        label = "working day" if working else "holiday/weekend"
        if today.isoformat() == "2026-10-10":
            label = "make-up working day (調休)"
        self.say(f"— {today} ({label})" + ("" if notes else ": nothing due"))
        for note in notes:
            self.say("  " + note)
        key8 = next(k for k in self.ids if k.startswith("08"))
        s8 = self.state(key8)
        if s8.warned and not s8.pending_extension and s8.extension_days == 0 and s8.state in lc.OPEN_STATES:
            await self.call(
                "case.extend",
                {
                    "case_id": s8.case_id,
                    "actor": s8.owner,
                    "working_days": 3,
                    "reason": "等待省職業技能鑒定中心核驗回函",
                },
            )
            await self.call("case.approve_extension", {"case_id": s8.case_id, "actor": LEADER})
            self.say(
                f"  {s8.case_id} extension (延期) of 3 working days approved by {LEADER}; "
                f"applicant told the new date {self.state(key8).due_date}"
            )
        if today.isoformat() == "2026-10-12" and self.state(key8).state == lc.COORDINATING:
            await self.call(
                "case.record",
                {
                    "case_id": s8.case_id,
                    "actor": "renshe",  # the department records its own answer (as dept-renshe when secure)
                    "department": "renshe",
                    "outcome": "resolved",
                    "message": "省鑒定中心回函確認證書信息，已補發證書",
                    "handler": "職業能力建設科",
                },
            )
            await self.close(key8)
            await self.call("case.evaluate", {"case_id": s8.case_id, "rating": "good"})

    @staticmethod
    def _level(s: lc.CaseState) -> str:
        level = _max_level(s)
        return f"{label('level', level, 'en')} ({label('level', level)})"

    def report(self) -> str:
        states = [self.broker.state_of(cid) for cid in self.ids.values()]
        by_cat: dict[tuple[str, str], int] = {}
        for s in states:
            closed = (s.closing or {}).get("outcome")
            outcome = (
                f"{label('outcome', closed)} {closed}" if closed else f"{label('state', s.state)} {s.state}"
            )
            category = f"{label('category', s.category)} {s.category}" if s.category else "-"
            by_cat[(category, outcome)] = by_cat.get((category, outcome), 0) + 1
        lines = [
            "",
            "Cases by category and outcome",
            table(
                ["category", "outcome", "cases"],
                [[c, o, n] for (c, o), n in sorted(by_cat.items())],
                right=[2],
            ),
        ]
        status = self.broker.status()
        rows = []
        m = self.broker.metrics
        for d in sorted(status["departments"], key=lambda r: r["department"]):
            dept = d["department"]
            requests = sum(m.requests.labels(dept, o)._value.get() for o in REQUEST_OUTCOMES)
            rows.append(
                [
                    dept,
                    d["name"],
                    int(requests),
                    d["retries"],
                    int(m.stalls.labels(dept)._value.get()),
                    d["timeouts"],
                    seconds(d["p50_seconds"]),
                    seconds(d["p95_seconds"]),
                ]
            )
        lines += [
            "",
            "Departments",
            table(
                ["department", "name", "requests", "retries", "stalls", "timeouts", "p50 reply", "p95 reply"],
                rows,
                right=[2, 3, 4, 5, 6, 7],
            ),
        ]
        overdue = [s.case_id for s in states if s.overdue and s.state in lc.OPEN_STATES]
        lines += [
            "",
            f"open cases {sum(1 for s in states if s.state in lc.OPEN_STATES)}, "
            f"overdue {len(overdue)}{': ' + ', '.join(overdue) if overdue else ''}",
        ]
        return "\n".join(lines)


async def _until_stopped() -> None:
    """Wait for Ctrl-C or SIGTERM, so the embedded server is stopped on the way out either way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _max_level(s: lc.CaseState) -> int:
    return max((lv for lv, _ in s.escalations.values()), default=0)


async def run_demo(
    base: Config,
    directory: Path,
    metrics_address: str | None,
    keep_running: bool,
    secure: bool = False,
    serve_directory: Path | None = None,
) -> int:
    """The demo in ``directory``, emptied first (``fresh_directory``; ``serve_directory`` is the one
    ``unstuck serve`` uses, never cleared: by default ``.unstuck`` or ``$UNSTUCK_DATA_DIR``)."""
    from unstuck.adapters.host import SlowSpell
    from unstuck.adapters.registry import discover

    print(fresh_directory(directory, serve_directory or data_dir()), flush=True)
    if secure:
        from .natsconfig import secure_hint

        print(secure_hint(directory), flush=True)
    config = demo_config(base)
    clock = SimulatedClock(START)
    adapters = [a for code, a in sorted(discover().items()) if code in ("renshe", "scjg", "chengguan")]
    slow = {"renshe": SlowSpell(delay_seconds=1.2, for_seconds=5.0)}
    started = time.monotonic()
    bus = Bus(
        config, clock, directory, metrics_address, adapters=adapters, slow=slow, ticker=False, secure=secure
    )
    await bus.start()
    try:
        print(
            f"unstuck demo: NATS {bus.url}{' (embedded)' if bus.conn and bus.conn.embedded else ''}, "
            f"metrics http://{bus.metrics_server.address}/metrics",
            flush=True,
        )
        demo = Demo(bus, clock)
        await demo.run()
        print(demo.report())
        print(
            f"\nmetrics: http://{bus.metrics_server.address}/metrics   health: "
            f"http://{bus.metrics_server.address}/healthz   ({time.monotonic() - started:.1f}s)"
        )
        if keep_running:
            running = await serve_web(config, directory, bus.url, secure)
            print(keep_running_hint(directory, next(iter(demo.ids.values()))), flush=True)
            try:
                await _until_stopped()
            finally:
                for app in reversed(running):
                    await app.stop()
    finally:
        await bus.stop()
    return 0


async def serve_web(config: Config, directory: Path, nats_url: str, secure: bool) -> list[Any]:
    """The window console and the applicant's portal on this bus, their addresses printed; both
    returned, to be stopped."""
    from .console import serve_in_background  # the window console, acting on this bus
    from .natsconfig import PORTAL, local_credential
    from .portal import serve_in_background as serve_portal

    console = await serve_in_background(
        config, directory, nats_url=nats_url, secure=secure, or_free_port=True, sign_in=["w-zhang", LEADER]
    )
    signed = ", ".join(f"{staff} / {password}" for staff, password in console.passwords.items())
    print(f"window console: {console.url}" + (f"  (sign in: {signed})" if signed else ""), flush=True)
    try:
        portal = await serve_portal(
            config,
            nats_url=nats_url,
            credential=local_credential(directory, PORTAL, fallback=None) if secure else None,
            or_free_port=True,
        )
    except BaseException:
        await console.stop()
        raise
    print(f"applicant portal: {portal.url}  (report, look up and rate online)", flush=True)
    return [console, portal]


def keep_running_hint(directory: Path, case_id: str) -> str:
    """The commands to try from another shell in the same directory, as they are to be typed (they find
    their credentials in the data directory)."""
    where = f"--data-dir {shlex.quote(str(directory))}"
    return (
        f"keeping everything up; in another shell: unstuck case show {case_id} {where}"
        f"  |  unstuck status {where}   (Ctrl-C stops)"
    )

"""The fault suite's tools: the bus as real processes, a load generator, verification and figures.

Every process is a real ``unstuck`` (or department) process that a test can SIGKILL. The load
generator opens cases through the API with ``client_ref`` idempotency keys and retries every error
until the broker acknowledges the case, exactly as a careful front end would. Verification runs
``unstuck replay --verify`` over the stream and then counts, from the stream itself, what was
accepted, stored, lost and duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from prometheus_client.parser import text_string_to_metric_families

from unstuck.replay import verify_stream
from unstuck.schemas.subjects import STREAM
from unstuck.testing import resident_id

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "reliability-results" / "faults.json"
UNSTUCK = Path(sys.executable).parent / "unstuck"
DEPARTMENT_SCRIPT = Path(__file__).with_name("department.py")
BUILTIN = ("renshe", "scjg", "chengguan")

# a matter each built-in department answers at once with a final outcome
MATTERS = {
    "renshe": ("employment_registration", "就業登記補辦"),
    "scjg": ("food_permit", "食品經營許可"),
    "chengguan": ("construction_waste", "建築垃圾處置核准"),
}


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 60.0, what: str = "condition"
) -> float:
    """Poll until ``predicate`` holds; returns the seconds it took. Generous timeouts: CI is slow."""
    started = time.monotonic()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not reached within {timeout:.0f}s")
        await asyncio.sleep(0.1)


# --- configuration ------------------------------------------------------------------------------


def write_config(
    path: Path,
    retry: dict[str, Any] | None = None,
    departments: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """An unstuck.toml with short timeouts, so the faults show within seconds."""
    policy = {
        "timeout_seconds": 2.0,
        "attempts": 3,
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.3,
        "jitter_seconds": 0.05,
        "stalled_retry_seconds": 1.0,
        **(retry or {}),
    }
    lines = [
        "[broker]",
        'metrics_address = "127.0.0.1:0"',
        "tick_seconds = 3600",
        "",
        "[retry]",
        *(f"{k} = {_toml(v)}" for k, v in policy.items()),
        "",
        "# the load stands for many windows, all anonymous here (one rate-limit bucket): no rate limit",
        "# (the limit per principal is tested in tests/test_security_limits.py)",
        "[limits]",
        "api_requests_per_second = 0",
    ]
    for code, options in (departments or {}).items():
        lines += ["", f"[departments.{code}]", f'name = "{options.get("name", code)}"']
        if options.get("retry"):
            inline = ", ".join(f"{k} = {_toml(v)}" for k, v in options["retry"].items())
            lines.append(f"retry = {{ {inline} }}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


# --- processes ----------------------------------------------------------------------------------


class Proc:
    """One real process of the bus; ready when a line of its stdout contains ``ready_text``."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path, ready_text: str) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.cwd = cwd
        self.ready_text = ready_text
        self.process: subprocess.Popen[str] | None = None
        self.ready_line = ""
        self.starts = 0
        self.log_path = cwd / f"{name}.log"

    def start(self, timeout: float = 60.0) -> Proc:
        self.starts += 1
        log = self.log_path.open("a", encoding="utf-8")
        log.write(f"--- start {self.starts}: {' '.join(self.args)}\n")
        log.flush()
        self.process = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        log.close()
        ready = threading.Event()
        process = self.process

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if not ready.is_set() and self.ready_text in line:
                    self.ready_line = line.strip()
                    ready.set()

        threading.Thread(target=read, name=f"{self.name}-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} did not start (exit {process.poll()}); log:\n{self.log_tail()}"
                )
        return self

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(encoding="utf-8").splitlines()[-lines:])
        return ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class Bus:
    """The processes of one scenario, stopped at the end whatever happens."""

    def __init__(self, workdir: Path, nats_url: str, config: Path) -> None:
        self.workdir = workdir
        self.nats_url = nats_url
        self.config = config
        self.procs: list[Proc] = []

    def env(self, nats_url: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNSTUCK_")}
        env.update(NATS_URL=nats_url or self.nats_url, UNSTUCK_CONFIG=str(self.config), PYTHONUNBUFFERED="1")
        return env

    def broker(self, name: str = "broker", adapters: Iterable[str] = (), nats_url: str | None = None) -> Proc:
        args = [str(UNSTUCK), "serve", "--metrics-address", "127.0.0.1:0"]
        codes = list(adapters)
        if codes:
            args += ["--adapters", *codes]
        return self._add(Proc(name, args, self.env(nats_url), self.workdir, "unstuck broker on"))

    def adapters(self, codes: Iterable[str] = BUILTIN, name: str = "adapters") -> Proc:
        args = [str(UNSTUCK), "adapters", "run", *codes, "--nats", self.nats_url]
        return self._add(Proc(name, args, self.env(), self.workdir, "serving"))

    def department(self, code: str, mode: str, delay: float = 1.0) -> Proc:
        args = [
            sys.executable,
            str(DEPARTMENT_SCRIPT),
            "--nats",
            self.nats_url,
            "--code",
            code,
            "--mode",
            mode,
            "--delay",
            str(delay),
        ]
        return self._add(Proc(f"dept-{code}", args, self.env(), self.workdir, "ready"))

    def _add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def metrics_address(broker: Proc) -> str:
    """The /metrics address the broker printed when it started."""
    part = broker.ready_line.split("metrics http://", 1)[1]
    return part.split("/metrics", 1)[0]


def scrape(broker: Proc) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the broker's /metrics, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://{metrics_address(broker)}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        value
        for (n, sample_labels), value in samples.items()
        if n == name and all((k, v) in sample_labels for k, v in labels.items())
    )


async def department_stats(nc: Client, code: str) -> dict[str, Any]:
    msg = await nc.request(f"faults.department.{code}.stats", b"", timeout=10)
    return dict(json.loads(msg.data))


# --- load ---------------------------------------------------------------------------------------


def case_body(scenario: str, i: int, department: str) -> dict[str, Any]:
    """A hard case for ``department`` with its own applicant and idempotency key."""
    matter, title = MATTERS.get(department, ("unknown_matter", "測試事項"))
    return {
        "channel": "window",
        "applicant": {"kind": "citizen", "name": f"申請人{i}", "id_number": resident_id(i)},
        "matter": matter,
        "matter_title": title,
        "facts": {},
        "window": "綜合受理窗口",
        "department": department,
        "description": f"{scenario} load case {i}: 很難辦，需要協調",
        "category": "hard",
        "owner": "w-load",
        "client_ref": f"{scenario}-{i:05d}",
    }


@dataclass
class Load:
    """Open ``total`` cases through the API; every error is retried with the same client_ref."""

    url: str
    scenario: str
    total: int
    departments: tuple[str, ...] = BUILTIN
    workers: int = 4
    pace: float = 0.02
    request_timeout: float = 5.0
    give_up_after: float = 180.0
    accepted: dict[str, str] = field(default_factory=dict)
    acked_twice_differently: int = 0
    duplicate_acks: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    ack_times: list[float] = field(default_factory=list)
    requests: int = 0
    _next: int = 0
    _task: asyncio.Task[None] | None = None
    _clients: list[Client] = field(default_factory=list)

    def start(self) -> Load:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        for _ in range(self.workers):
            self._clients.append(
                await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.25)
            )
        try:
            await asyncio.gather(*(self._worker(nc) for nc in self._clients))
        finally:
            for nc in self._clients:
                with contextlib.suppress(Exception):
                    await nc.close()

    async def _worker(self, nc: Client) -> None:
        while self._next < self.total:
            i = self._next
            self._next += 1
            department = self.departments[i % len(self.departments)]
            body = case_body(self.scenario, i, department)
            await self._open(nc, body)
            await asyncio.sleep(self.pace)

    async def _open(self, nc: Client, body: dict[str, Any]) -> None:
        ref = body["client_ref"]
        data = json.dumps(body, ensure_ascii=False).encode()
        first = time.monotonic()
        while True:
            self.requests += 1
            try:
                msg = await nc.request("unstuck.api.case.open", data, timeout=self.request_timeout)
                reply = json.loads(msg.data)
                if reply.get("ok"):
                    case_id = reply["result"]["case_id"]
                    if reply["result"].get("duplicate"):
                        self.duplicate_acks += 1
                    if ref in self.accepted and self.accepted[ref] != case_id:
                        self.acked_twice_differently += 1
                    self.accepted.setdefault(ref, case_id)
                    self.ack_times.append(time.monotonic())
                    return
                self.errors["refused"] += 1
                self.error_codes[reply["error"]["code"]] += 1
            except nats.errors.NoRespondersError:
                self.errors["no_responders"] += 1
            except nats.errors.TimeoutError:
                self.errors["timeout"] += 1
            except nats.errors.Error as exc:
                self.errors[type(exc).__name__] += 1
            if time.monotonic() - first > self.give_up_after:
                raise AssertionError(f"{ref} was never accepted; errors so far {dict(self.errors)}")
            await asyncio.sleep(0.1)

    async def wait_accepted(self, count: int, timeout: float = 120.0) -> None:
        await wait_for(lambda: len(self.accepted) >= count, timeout, f"{count} cases accepted")

    async def finish(self, timeout: float = 240.0) -> None:
        assert self._task is not None
        await asyncio.wait_for(self._task, timeout)

    def first_ack_after(self, instant: float) -> float | None:
        later = [t for t in self.ack_times if t >= instant]
        return min(later) - instant if later else None


# --- verification -------------------------------------------------------------------------------


@dataclass
class StreamCount:
    """What the stream holds, counted event by event (duplicates of every kind)."""

    events: int = 0
    cases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    event_ids: Counter[str] = field(default_factory=Counter)
    opened_refs: Counter[str] = field(default_factory=Counter)
    case_of_ref: dict[str, str] = field(default_factory=dict)
    replies: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)

    @property
    def duplicate_events(self) -> int:
        return sum(n - 1 for n in self.event_ids.values() if n > 1)

    @property
    def duplicate_cases(self) -> int:
        return sum(n - 1 for n in self.opened_refs.values() if n > 1)

    @property
    def duplicate_replies(self) -> int:
        return sum(n - 1 for n in self.replies.values() if n > 1)

    def events_of(self, case_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.cases.get(case_id, []) if event_type is None or e["type"] == event_type]

    def resolved(self, case_id: str) -> bool:
        """Every department answered and the case is resolved (ready for 銷號)."""
        return bool(self.events_of(case_id, "case.resolved")) and not self.awaiting(case_id)

    @property
    def half_written(self) -> list[str]:
        """Cases whose opening decision is incomplete: classified at intake, but not classified and asked."""
        out = []
        for case_id, events in self.cases.items():
            opened = events[0] if events and events[0]["type"] == "case.opened" else None
            if opened is None or not opened["data"].get("category"):
                continue
            types = [e["type"] for e in events[1:3]]
            if types != ["case.classified", "coordination.requested"]:
                out.append(case_id)
        return out

    def awaiting(self, case_id: str) -> set[str]:
        """Request ids of the case still without a reply."""
        asked = {e["data"]["request_id"] for e in self.events_of(case_id, "coordination.requested")}
        answered = {e["data"]["request_id"] for e in self.events_of(case_id, "coordination.replied")}
        return asked - answered


def _take(out: StreamCount, line: bytes) -> None:
    """Count one stored event."""
    try:
        event = json.loads(line)
    except ValueError:
        return
    if not isinstance(event, dict) or "case_id" not in event:
        return
    out.events += 1
    out.event_ids[str(event.get("event_id"))] += 1
    out.types[str(event.get("type"))] += 1
    out.cases.setdefault(str(event["case_id"]), []).append(event)
    data = event.get("data") or {}
    if event.get("type") == "case.opened" and data.get("client_ref"):
        out.opened_refs[data["client_ref"]] += 1
        out.case_of_ref.setdefault(data["client_ref"], str(event["case_id"]))
    if event.get("type") == "coordination.replied":
        out.replies[str(data.get("request_id"))] += 1


async def count_stream(nc: Client, stream: str = STREAM) -> StreamCount:
    """Read every message of the stream by sequence and count it."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    out = StreamCount()
    seq = 0
    while seq < info.state.last_seq:
        try:
            msg = await js.get_msg(stream, seq=seq + 1, next=True)
        except nats.js.errors.NotFoundError:
            break
        seq = int(msg.seq or 0)
        for line in bytes(msg.data or b"").split(b"\n"):  # a decision: its events one per line
            _take(out, line)
    return out


def replay_cli(nats_url: str, workdir: Path) -> dict[str, Any]:
    """``unstuck replay --verify`` over the stream, as an auditor runs it; its JSON and exit code."""
    out = workdir / "replay-verify.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNSTUCK_")}
    done = subprocess.run(
        [str(UNSTUCK), "replay", "--verify", "--format", "json", "--nats", nats_url, "--out", str(out)],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if not out.exists():
        raise AssertionError(
            f"unstuck replay --verify failed (exit {done.returncode}): {done.stderr[-2000:]}"
        )
    result = dict(json.loads(out.read_text(encoding="utf-8")))
    result["exit_code"] = done.returncode
    return result


@dataclass
class Verdict:
    """The figures of one scenario, from the stream and the load generator."""

    scenario: str
    cases_in: int
    events: int
    lost: int
    duplicated: int
    findings: int
    replay_exit: int
    unsettled: list[str]
    count: StreamCount
    replay: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        return {
            "cases_in": self.cases_in,
            "events_verified": self.events,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "findings": self.findings,
            "replay_exit": self.replay_exit,
            "unsettled": len(self.unsettled),
            "half_written": len(self.count.half_written),
            **self.details,
        }


async def verify(
    nc: Client,
    nats_url: str,
    workdir: Path,
    scenario: str,
    load: Load,
    settled: Callable[[StreamCount, str], bool] | None = None,
    settle_timeout: float = 90.0,
) -> Verdict:
    """Wait until every accepted case has settled, then verify the stream and count.

    lost: a case acknowledged to the client whose opening is not in the stream under that case id.
    duplicated: a second copy of an event id, a second case for one client_ref, a second reply
    recorded for one request_id, or one client_ref acknowledged with two different case ids.
    """
    is_settled = settled or (lambda count, case_id: count.resolved(case_id))
    count = StreamCount()

    async def all_settled() -> bool:
        nonlocal count
        count = await count_stream(nc)
        return all(is_settled(count, case_id) for case_id in load.accepted.values() if case_id in count.cases)

    with contextlib.suppress(AssertionError):  # unsettled cases are reported, not hidden
        await wait_for(all_settled, settle_timeout, "every accepted case settled")
    count = await count_stream(nc)

    async def heads_caught_up() -> bool:
        # a head write that failed in the fault is written again in the background: the recorded
        # heads catch up with the stream shortly after (a head that never lands still fails below)
        codes = (await verify_stream(nc)).counts()
        return not (codes.get("untracked_tail") or codes.get("head_missing"))

    with contextlib.suppress(AssertionError):
        await wait_for(heads_caught_up, 30.0, "the recorded heads caught up with the stream")
    report = await verify_stream(nc)
    cli = replay_cli(nats_url, workdir)
    lost = sum(
        1
        for ref, case_id in load.accepted.items()
        if case_id not in count.cases or count.case_of_ref.get(ref) != case_id
    )
    duplicated = (
        count.duplicate_events
        + count.duplicate_cases
        + count.duplicate_replies
        + load.acked_twice_differently
    )
    unsettled = sorted(c for c in load.accepted.values() if c in count.cases and not is_settled(count, c))
    return Verdict(
        scenario=scenario,
        cases_in=len(load.accepted),
        events=int(cli["summary"]["events"]),
        lost=lost,
        duplicated=duplicated,
        findings=len(report.findings) + int(cli["summary"]["findings"]),
        replay_exit=int(cli["exit_code"]),
        unsettled=unsettled,
        count=count,
        replay=cli["summary"],
        details={
            "api_requests": load.requests,
            "api_errors": dict(load.errors),
            "api_error_codes": dict(load.error_codes),
            "retried_opens_deduplicated": load.duplicate_acks,
            "findings_by_code": report.counts(),
        },
    )


def record(scenario: str, figures: dict[str, Any]) -> None:
    """Merge one scenario's figures into reliability-results/faults.json (git-ignored)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    lock = RESULTS.with_suffix(".lock")
    with lock.open("w") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        data: dict[str, Any] = {}
        if RESULTS.exists():
            with contextlib.suppress(ValueError):
                data = json.loads(RESULTS.read_text(encoding="utf-8"))
        data.setdefault("scenarios", {})[scenario] = {
            **figures,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        data["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
        RESULTS.write_text(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n")

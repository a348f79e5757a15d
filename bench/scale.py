"""The scale benchmark: a broker on two years of history, the case ledger, and a long soak.

    python -m bench.scale [--quick] [--only fixture,startup,ledger,soak] [--soak-cases N]

- **fixture**: a case stream of ``closed`` closed and evaluated cases plus ``open`` open ones
  (:func:`bench.streamgen.generate_history`), generated once into a nats-server store directory
  cached under ``.bench-cache/`` by the generator's parameters and version; later runs copy it.
- **startup**: ``unstuck serve`` started on a copy of that store, twice (cold, then warm after a
  clean stop): the time from starting the process until ``unstuck.api.status`` answers, then
  ``case.get`` of an open case, and the broker's RSS (VmRSS, VmHWM from /proc).
- **ledger**: ``unstuck.ledger`` (when installed): the projection's catch-up over the whole stream,
  and p50/p95 of ``case list --overdue`` and of a 7-day date-range search, on the ledger directly
  and through ``unstuck.api.case.list`` on the running broker.
- **soak**: cases opened through the API of a deployed bus (its own nats-server, ``unstuck serve``
  and ``unstuck adapters run scjg``), answered, closed (銷號) and rated, 100 in flight, in windows:
  throughput and broker RSS per window.

Also part of ``python -m bench`` (section ``scale``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from unstuck.embedded import EmbeddedNats
from unstuck.testing import resident_id

from .streamgen import HISTORY_VERSION, HistorySpec, generate_history

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"

TARGET_STARTUP_S = 10.0
TARGET_BROKER_RSS_MB = 100.0
TARGET_QUERY_P95_MS = 50.0
TARGET_SOAK_DRIFT = 0.10  # the last window's throughput within 10% of the first's


@dataclass(frozen=True)
class ScalePlan:
    closed: int
    open: int
    fallback_closed: int  # the 'before' size, measured when the full size does not start in time
    startup_timeout: float
    query_repeats: int
    soak_cases: int
    soak_window: int
    soak_in_flight: int = 100


FULL = ScalePlan(1_000_000, 10_000, 100_000, 1800.0, 200, 100_000, 10_000)
QUICK = ScalePlan(20_000, 2_000, 5_000, 120.0, 200, 2_000, 500)


def log(text: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- the fixture -------------------------------------------------------------------------------


@dataclass
class Fixture:
    spec: HistorySpec
    directory: Path  # holds jetstream/ (the server's store) and fixture.json
    meta: dict[str, Any]

    @property
    def store(self) -> Path:
        return self.directory / "jetstream"


def fixture(spec: HistorySpec, jobs: int | None = None) -> Fixture:
    """The cached fixture of ``spec``, generated first if it is not cached yet."""
    directory = CACHE / f"history-v{HISTORY_VERSION}-{spec.closed}-{spec.open}-{spec.key()}"
    meta_file = directory / "fixture.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        log(f"fixture: cached in {directory.name} (generated in {meta['seconds']:.0f}s)")
        return Fixture(spec, directory, {**meta, "cached": True})
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    jobs = jobs or os.cpu_count() or 2
    log(f"fixture: generating {spec.closed:,} closed and {spec.open:,} open cases with {jobs} processes")
    server = EmbeddedNats(partial / "server")
    server.start()
    started = time.perf_counter()
    try:
        counts = generate_history(server.url, spec, jobs, log)
        seconds = time.perf_counter() - started
    finally:
        server.stop()
    shutil.move(str(partial / "server" / "jetstream"), str(partial / "jetstream"))
    shutil.rmtree(partial / "server", ignore_errors=True)
    meta = {
        "spec": {**spec.__dict__, "departments": list(spec.departments)},
        "version": HISTORY_VERSION,
        "seconds": seconds,
        "cases": counts.cases,
        "messages": counts.messages,
        "events": counts.events,
        "by_state": counts.by_state,
        "overdue": counts.overdue,
        "jobs": jobs,
        "store_mb": _size_mb(partial / "jetstream"),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (partial / "fixture.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    log(
        f"fixture: {counts.cases:,} cases, {counts.messages:,} messages, {counts.events:,} events in "
        f"{seconds:.0f}s ({counts.cases / seconds:,.0f} cases/s, {counts.messages / seconds:,.0f} messages/s), "
        f"{meta['store_mb']:,.0f} MB"
    )
    return Fixture(spec, directory, {**meta, "cached": False})


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / (1024 * 1024)


def copy_store(fx: Fixture, into: Path) -> float:
    """A working copy of the fixture's store at ``into/jetstream`` (the cache stays untouched); seconds."""
    started = time.perf_counter()
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(fx.store), str(into / "jetstream")], check=True)
    return time.perf_counter() - started


# --- broker start-up ---------------------------------------------------------------------------


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a live process, in MB (0 when it is gone)."""
    out = {"rss_mb": 0.0, "peak_rss_mb": 0.0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "VmRSS":
                out["rss_mb"] = int(value.split()[0]) / 1024
            elif key == "VmHWM":
                out["peak_rss_mb"] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def bench_env(url: str, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNSTUCK_") and k != "NATS_URL"}
    return {**env, "PYTHONUNBUFFERED": "1", "NATS_URL": url, "UNSTUCK_CONFIG": str(config)}


def serve_args(work: Path) -> list[str]:
    return [sys.executable, "-m", "unstuck", "serve", "--data-dir", str(work / "unstuck"),
            "--metrics-address", "127.0.0.1:0"]


async def api(nc: Any, verb: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    msg = await nc.request(f"unstuck.api.{verb}", json.dumps(body).encode(), timeout=timeout)
    return json.loads(msg.data)


async def wait_for_api(nc: Any, proc: subprocess.Popen[bytes], timeout: float) -> float | None:
    """Seconds until ``unstuck.api.status`` answers ok (from now), or None at the timeout."""
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the broker exited with {proc.returncode} while starting")
        try:
            reply = await api(nc, "status", {}, timeout=1.0)
            if reply.get("ok"):
                return time.perf_counter() - started
        except (NoRespondersError, NatsTimeout):
            pass
        await asyncio.sleep(0.05)
    return None


async def one_start(
    url: str, work: Path, config: Path, label: str, open_case: str, timeout: float
) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    """Start ``unstuck serve``; how long until the API answers, and its RSS. Leaves it running."""
    import nats

    nc = await nats.connect(url, name=f"bench-startup-{label}")
    log_file = (work / f"broker-{label}.log").open("ab")
    started = time.perf_counter()
    proc = subprocess.Popen(
        serve_args(work), env=bench_env(url, config), cwd=ROOT,
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
    )
    log_file.close()
    try:
        peak_during = 0.0
        waited = asyncio.ensure_future(wait_for_api(nc, proc, timeout))
        while not waited.done():  # sample RSS while it starts, so a timed-out start has a figure too
            peak_during = max(peak_during, proc_memory(proc.pid)["rss_mb"])
            await asyncio.wait([waited], timeout=1.0)
        answered = waited.result()
        ready = None if answered is None else time.perf_counter() - started
        memory = proc_memory(proc.pid)
        out: dict[str, Any] = {"label": label, "ready_s": ready, "timeout_s": timeout, **memory}
        if ready is None:
            out["rss_mb_at_timeout"] = memory["rss_mb"]
            log(f"startup {label}: no answer within {timeout:.0f}s; RSS {memory['rss_mb']:,.0f} MB")
            return out, proc
        t = time.perf_counter()
        got = await api(nc, "case.get", {"case_id": open_case, "events": False}, timeout=30)
        out["case_get_ms"] = (time.perf_counter() - t) * 1000
        out["case_get_ok"] = bool(got.get("ok"))
        out["case_get_ready_s"] = time.perf_counter() - started
        await asyncio.sleep(2.0)  # what it holds once settled
        out["rss_mb_settled"] = proc_memory(proc.pid)["rss_mb"]
        log(
            f"startup {label}: API answers after {ready:.1f}s, case.get {out['case_get_ms']:.0f} ms "
            f"(ok {out['case_get_ok']}); RSS {memory['rss_mb']:,.0f} MB, peak {memory['peak_rss_mb']:,.0f} MB"
        )
        return out, proc
    finally:
        await close_quietly(nc)


def stop_broker(proc: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    """SIGTERM and wait (a clean stop); seconds it took (killed after ``timeout``)."""
    started = time.perf_counter()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return time.perf_counter() - started


def open_case_of(fx: Fixture) -> str:
    """The id of an open, answered case of the fixture (the last case is open: see HistorySpec)."""
    from .streamgen import HISTORY_BATCH, _case_events, _history_templates, _Rng

    spec = fx.spec
    number = spec.closed + spec.open - 1 if spec.open else spec.closed - 1
    rng = _Rng(spec.seed, number // HISTORY_BATCH)
    templates = _history_templates()
    for n in range(number // HISTORY_BATCH * HISTORY_BATCH, number + 1):  # replay the batch's draws
        case_id, _, _ = _case_events(spec, n, rng, templates)
    return case_id


async def startup_bench(
    work: Path, fx: Fixture, timeout: float, queries: int = 0, ledger_url: str | None = None
) -> dict[str, Any]:
    """Cold then warm start of ``unstuck serve`` on a copy of the fixture; with ``queries``, the
    ``case.list`` latencies through the API of the warm broker. The broker measured is the broker
    alone: its ledger's projector runs beside it (``[ledger] in_broker = false``), and its lists
    answer from ``ledger_url`` (the ledger section's database, caught up over the whole fixture)."""
    from .workload import bench_config_toml

    work.mkdir(parents=True, exist_ok=True)
    copy_s = copy_store(fx, work / "nats")
    config = work / "unstuck.toml"
    ledger = ledger_url or ledger_url_in(work)
    config.write_text(
        bench_config_toml(list(fx.spec.departments)) + f'\n[ledger]\nurl = "{ledger}"\nin_broker = false\n',
        encoding="utf-8",
    )
    open_case = open_case_of(fx)
    out: dict[str, Any] = {
        "cases": fx.meta["cases"], "messages": fx.meta["messages"], "events": fx.meta["events"],
        "closed": fx.spec.closed, "open": fx.spec.open, "copy_s": copy_s, "runs": [],
    }
    with EmbeddedNats(work / "nats") as server:
        for label in ("cold", "warm"):
            run, proc = await one_start(server.url, work, config, label, open_case, timeout)
            try:
                if run["ready_s"] is not None and label == "warm" and queries:
                    out["api_queries"] = await api_queries(server.url, fx, queries)
            finally:
                run["stop_s"] = stop_broker(proc)
            out["runs"].append(run)
            if run["ready_s"] is None:
                break
    return out


# --- queries: the ledger and the API -----------------------------------------------------------


def fixture_now(fx: Fixture) -> datetime:
    return fx.spec.anchor


def date_windows(fx: Fixture, count: int, days: int = 7) -> list[tuple[date, date]]:
    """``count`` 7-day windows spread over the fixture's two years of openings (fixed seed)."""
    import random

    r = random.Random(fx.spec.seed)
    last = (fx.spec.anchor + timedelta(hours=8)).date()
    first = last - timedelta(days=fx.spec.days + 29)
    span = (last - first).days - days
    out = []
    for _ in range(count):
        start = first + timedelta(days=r.randrange(max(span, 1)))
        out.append((start, start + timedelta(days=days - 1)))
    return out


def quantiles(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {"repeats": len(ordered), "p50_ms": q(0.5), "p95_ms": q(0.95), "max_ms": ordered[-1] * 1000}


async def api_queries(url: str, fx: Fixture, repeats: int) -> dict[str, Any]:
    """p50/p95 of ``case.list --overdue`` and of a 7-day date-range search through the broker's API."""
    import nats

    nc = await nats.connect(url, name="bench-api-queries")
    out: dict[str, Any] = {}
    try:
        bodies = {
            "overdue": [{"overdue": True, "limit": 200}] * repeats,
            "date_range": [
                {"opened_from": a.isoformat(), "opened_to": b.isoformat(), "limit": 200}
                for a, b in date_windows(fx, repeats)
            ],
        }
        for name, requests in bodies.items():
            latencies: list[float] = []
            rows = 0
            error = None
            for body in requests:
                t = time.perf_counter()
                reply = await api(nc, "case.list", body, timeout=60)
                latencies.append(time.perf_counter() - t)
                if not reply.get("ok"):
                    error = reply.get("error", {}).get("message", "refused")
                    break
                rows += reply["result"]["count"]
            if error is not None:
                out[name] = {"available": False, "error": error}
                log(f"api case.list {name}: refused: {error}")
            else:
                out[name] = {"available": True, **quantiles(latencies), "rows_mean": rows / len(requests)}
                log(f"api case.list {name}: p50 {out[name]['p50_ms']:.1f} ms, p95 {out[name]['p95_ms']:.1f} ms")
    finally:
        await close_quietly(nc)
    return out


async def ledger_bench(work: Path, fx: Fixture, repeats: int, url: str | None = None) -> dict[str, Any]:
    """The ledger's catch-up over the whole fixture (a projector alone, as ``unstuck ledger
    rebuild`` runs it) and the latency of its two queries; the database stays in ``work`` for the
    start-up section to answer lists from."""
    import nats

    from unstuck.ledger import Ledger, Projector
    from unstuck.schemas import api as wire
    from unstuck.schemas.subjects import STREAM

    work.mkdir(parents=True, exist_ok=True)
    copy_store(fx, work / "nats")
    ledger_url = url or ledger_url_in(work)
    out: dict[str, Any] = {"available": True, "url": ledger_url.split("@")[-1]}
    with EmbeddedNats(work / "nats") as server:
        nc = await nats.connect(server.url, name="bench-ledger")
        try:
            ledger = await asyncio.to_thread(Ledger.open, ledger_url)
            projector = Projector(nc.jetstream(), STREAM, ledger)
            started = time.perf_counter()
            await projector.catch_up()
            seconds = time.perf_counter() - started
            out["catch_up"] = {
                "seconds": seconds,
                "messages_per_s": fx.meta["messages"] / seconds,
                "cases_per_s": fx.meta["cases"] / seconds,
                "events_per_s": fx.meta["events"] / seconds,
            }
            log(f"ledger: caught up in {seconds:.1f}s ({fx.meta['messages'] / seconds:,.0f} messages/s)")
            now = fixture_now(fx)
            queries: dict[str, list[Any]] = {
                "overdue": [dict(overdue=True, limit=200)] * repeats,
                "date_range": [
                    dict(opened_from=a, opened_to=b, limit=200) for a, b in date_windows(fx, repeats)
                ],
            }
            for name, filters in queries.items():
                try:
                    requests = [wire.ListCases(**f) for f in filters]
                except Exception as exc:  # ListCases without the new filters yet
                    out[name] = {"available": False, "error": str(exc).splitlines()[0]}
                    continue
                latencies: list[float] = []
                rows = 0
                for req in requests:
                    t = time.perf_counter()
                    found = await ledger.list_cases(req, now=now)
                    latencies.append(time.perf_counter() - t)
                    rows += len(found["cases"])
                out[name] = {"available": True, **quantiles(latencies), "rows_mean": rows / len(requests)}
                log(f"ledger {name}: p50 {out[name]['p50_ms']:.1f} ms, p95 {out[name]['p95_ms']:.1f} ms")
            ledger.close()
        finally:
            await close_quietly(nc)
    return out


def ledger_url_in(work: Path) -> str:
    return f"sqlite:///{work / 'ledger.sqlite3'}"


async def close_quietly(nc: Any, timeout: float = 10.0) -> None:
    """Close a client, but never wait for ever (a drain can hang on a broker busy stopping)."""
    try:
        await asyncio.wait_for(nc.close(), timeout)
    except Exception as exc:  # TimeoutError, or a connection already gone
        log(f"closing {getattr(nc, 'options', {}).get('name', 'a client')}: {type(exc).__name__}")


# --- soak --------------------------------------------------------------------------------------

SOAK_FORMS = ("直播電商", "劇本殺", "電競酒店", "寵物殯葬", "共享儲能", "無人機培訓")


def soak_case(i: int) -> dict[str, Any]:
    """A case the scjg adapter answers ``resolved`` at once (a new business form it has wording for)."""
    return {
        "channel": "window",
        "applicant": {"kind": "citizen", "name": "張三", "id_number": resident_id(i)},
        "matter": "name_registration",
        "matter_title": "企業名稱登記",
        "facts": {"business_form": SOAK_FORMS[i % len(SOAK_FORMS)]},
        "window": "綜合受理窗口",
        "department": "scjg",
        "description": "新業態經營範圍在登記系統中沒有對應條目，常規窗口未能辦理。",
        "category": "hard",
        "owner": "w-bench",
    }


async def drive(args: argparse.Namespace) -> None:
    """The soak's load generator (its own process): each case opened, answered, closed, rated.

    Prints ``ready``; on ``go`` runs ``--count`` cases ``--in-flight`` at once and prints one JSON
    line per ``--window`` cases done (seconds, latencies of the whole case), then ``done``.
    """
    import nats

    from .coordination import RESOLVED_MARK
    from .loadgen import pull_observer

    loop = asyncio.get_running_loop()
    client = await nats.connect(args.url, name="bench-soak-window", pending_size=64 * 1024 * 1024)
    observer = await nats.connect(args.url, name="bench-soak-observer")
    waiting: dict[str, asyncio.Future[None]] = {}
    early: set[str] = set()

    def seen(subject: str, data: bytes) -> None:
        if RESOLVED_MARK in data:
            case_id = subject.rpartition(".")[2]
            future = waiting.pop(case_id, None)
            if future is None:
                early.add(case_id)
            elif not future.done():
                future.set_result(None)

    close_observer = await pull_observer(observer, seen)

    async def call(verb: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await api(client, verb, body, timeout=60)
        if not reply.get("ok"):
            raise RuntimeError(f"{verb} failed: {reply.get('error')}")
        return reply["result"]

    async def one(i: int) -> float:
        started = time.perf_counter()
        case_id = (await call("case.open", soak_case(i)))["case_id"]
        if case_id in early:
            early.discard(case_id)
        else:
            future = loop.create_future()
            waiting[case_id] = future
            await asyncio.wait_for(future, 60)
        await call("case.close", {"case_id": case_id, "actor": "w-bench", "outcome": "resolved",
                                  "explanation": "已告知申請人核准結果"})
        await call("case.evaluate", {"case_id": case_id, "actor": "applicant", "rating": "good",
                                     "comment": "滿意"})
        return time.perf_counter() - started

    async def line() -> str:
        return (await loop.run_in_executor(None, sys.stdin.readline)).strip()

    from .coordination import drive as run_lanes

    await run_lanes(one, 0, args.warmup, min(args.in_flight, args.warmup))
    print("ready", flush=True)
    if await line() != "go":
        return
    done = [0]
    window: list[float] = []
    window_start = [time.perf_counter()]

    async def counted(i: int) -> float:
        latency = await one(i)
        done[0] += 1
        window.append(latency)
        if len(window) >= args.window:
            now = time.perf_counter()
            print(json.dumps({"done": done[0], "seconds": now - window_start[0], **quantiles(window)}),
                  flush=True)
            window.clear()
            window_start[0] = now
        return latency

    await run_lanes(counted, args.warmup, args.count, args.in_flight)
    print("done", flush=True)
    await line()
    await close_observer()
    await client.close()
    await observer.close()


async def soak_bench(work: Path, cases: int, window: int, in_flight: int = 100) -> dict[str, Any]:
    """``cases`` cases through a deployed bus; throughput and broker RSS per ``window`` cases."""
    from .coordination import Server
    from .deployed import cpu_seconds, environment, start
    from .workload import bench_config_toml

    work.mkdir(parents=True, exist_ok=True)
    config = work / "unstuck.toml"
    config.write_text(bench_config_toml(["scjg"]), encoding="utf-8")
    python = sys.executable
    windows: list[dict[str, Any]] = []
    with Server(work / "nats") as server:
        env = environment(NATS_URL=server.url, UNSTUCK_CONFIG=str(config))
        broker = await start("broker", serve_args(work), "unstuck broker on", work, env)
        adapters = await start(
            "adapters", [python, "-m", "unstuck", "adapters", "run", "scjg", "--nats", server.url],
            "serving", work, environment(),
        )
        driver = None
        try:
            args = [python, "-m", "bench.scale", "drive", server.url, "--count", str(cases),
                    "--window", str(window), "--in-flight", str(in_flight)]
            driver = await start("soak-driver", args, "ready", work, environment(), timeout=300)
            pids = {"broker": broker.pid, "adapter host": adapters.pid, "nats-server": server.pid,
                    "load generator": driver.pid}
            cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.perf_counter()
            await driver.send("go")
            for _ in range(cases // window):
                entry = json.loads(await driver.line(timeout=3600))
                now_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
                entry["cases_per_s"] = window / entry["seconds"]
                entry["broker"] = proc_memory(broker.pid)
                entry["cpu_ms_per_case"] = {n: (now_cpu[n] - cpu[n]) * 1000 / window for n in pids}
                cpu = now_cpu
                windows.append(entry)
                log(
                    f"soak: {entry['done']:,} cases, {entry['cases_per_s']:.1f} cases/s, p50 "
                    f"{entry['p50_ms']:.0f} ms, broker RSS {entry['broker']['rss_mb']:.0f} MB"
                )
            while await driver.line(timeout=3600) != "done":
                pass
            seconds = time.perf_counter() - started
            await driver.send("stop")
        finally:
            if driver is not None:
                await driver.stop()
            await adapters.stop()
            await broker.stop()
    first, last = windows[0], windows[-1]
    drift = last["cases_per_s"] / first["cases_per_s"] - 1
    return {
        "cases": cases,
        "window": window,
        "in_flight": in_flight,
        "seconds": seconds,
        "cases_per_s": cases / seconds,
        "windows": windows,
        "drift": drift,
        "flat": drift >= -TARGET_SOAK_DRIFT,
        "rss_growth_mb": last["broker"]["rss_mb"] - first["broker"]["rss_mb"],
    }


# --- the whole benchmark -----------------------------------------------------------------------

SECTIONS = ("fixture", "startup", "ledger", "soak")


async def scale_bench(
    work: Path,
    plan: ScalePlan,
    sections: tuple[str, ...] = SECTIONS,
    jobs: int | None = None,
    ledger_url_arg: str | None = None,
) -> dict[str, Any]:
    """Each section of the scale benchmark in turn; the fixture is made (or found) first, the ledger
    before the start-up (whose broker answers lists from it)."""
    out: dict[str, Any] = {"plan": plan.__dict__}
    needs_fixture = any(s in sections for s in ("fixture", "startup", "ledger"))
    fx = None
    if needs_fixture:
        # the generator runs event loops of its own (one per process): not on this one
        fx = await asyncio.to_thread(fixture, HistorySpec(plan.closed, plan.open), jobs)
        out["fixture"] = {k: v for k, v in fx.meta.items() if k != "spec"} | {"spec": fx.meta["spec"]}
    ledger_url = None
    if "ledger" in sections:
        assert fx is not None
        out["ledger"] = await ledger_bench(work / "ledger", fx, plan.query_repeats, ledger_url_arg)
        ledger_url = ledger_url_arg or ledger_url_in(work / "ledger")
    if "startup" in sections:
        assert fx is not None
        log(f"startup: unstuck serve on {fx.meta['cases']:,} cases, cold then warm")
        run = await startup_bench(work / "startup", fx, plan.startup_timeout, plan.query_repeats, ledger_url)
        out["startup"] = run
        shutil.rmtree(work / "startup", ignore_errors=True)
        if run["runs"][0]["ready_s"] is None and plan.fallback_closed:
            small = fixture(HistorySpec(plan.fallback_closed, plan.open), jobs)
            log(f"startup: again on {small.meta['cases']:,} cases (the full size did not start in time)")
            out["startup_small"] = await startup_bench(
                work / "startup-small", small, plan.startup_timeout, plan.query_repeats
            )
            shutil.rmtree(work / "startup-small", ignore_errors=True)
    shutil.rmtree(work / "ledger", ignore_errors=True)
    if "soak" in sections:
        log(f"soak: {plan.soak_cases:,} cases through the deployed bus, {plan.soak_in_flight} in flight")
        out["soak"] = await soak_bench(work / "soak", plan.soak_cases, plan.soak_window, plan.soak_in_flight)
        shutil.rmtree(work / "soak", ignore_errors=True)
    return out


async def main(args: argparse.Namespace) -> int:
    import tempfile

    from .__main__ import machine
    from .report import markdown

    plan = QUICK if args.quick else FULL
    changes = {
        k: v
        for k, v in {
            "closed": args.closed, "open": args.open, "soak_cases": args.soak_cases,
            "soak_window": args.soak_window, "startup_timeout": args.startup_timeout,
        }.items()
        if v is not None
    }
    plan = ScalePlan(**{**plan.__dict__, **changes})
    sections = tuple(args.only.split(",")) if args.only else SECTIONS
    result: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "machine": machine(),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="unstuck-scale-", dir=args.tmp) as tmp:
        result["scale"] = await scale_bench(Path(tmp), plan, sections, args.jobs, args.ledger_url)
    result["seconds"] = time.perf_counter() - started
    result["machine"]["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(result, indent=2, ensure_ascii=False, default=str)
    (out / f"scale-{stamp}.json").write_text(text, encoding="utf-8")
    (out / "scale-latest.json").write_text(text, encoding="utf-8")
    table = markdown(result)
    (out / "scale-latest.md").write_text(table, encoding="utf-8")
    print(table)
    log(f"done in {result['seconds']:.0f}s; results in {out}/scale-latest.json and scale-latest.md")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (20,000 closed cases, a 2,000-case soak)")
    p.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    p.add_argument("--closed", type=int, help="closed cases in the fixture (default 1,000,000)")
    p.add_argument("--open", type=int, help="open cases in the fixture (default 10,000)")
    p.add_argument("--soak-cases", type=int, help="cases through the soak (default 100,000)")
    p.add_argument("--soak-window", type=int, help="cases per soak window (default 10,000)")
    p.add_argument("--startup-timeout", type=float, help="seconds a start may take before it is given up")
    p.add_argument("--jobs", type=int, help="fixture generator processes (default: one per core)")
    p.add_argument("--ledger-url", help="ledger database (default: SQLite in the work directory)")
    p.add_argument("--out", default="bench-results", help="directory for the JSON and Markdown results")
    p.add_argument("--tmp", help="directory for the working copies of the store (default: the system's)")
    return p.parse_args(argv)


def parse_drive(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale drive")
    p.add_argument("url")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--in-flight", type=int, default=100)
    p.add_argument("--warmup", type=int, default=50)
    return p.parse_args(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["drive"]:
        asyncio.run(drive(parse_drive(sys.argv[2:])))
    else:
        sys.exit(asyncio.run(main(parse())))

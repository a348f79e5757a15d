"""Coordinations with every component in its own process, as the bus is deployed.

Each run gets a fresh nats-server and these processes (the load generator is :mod:`bench.loadgen`):

- **bus**: the broker is ``unstuck serve --secure`` pointed at the benchmark's server with
  ``NATS_URL``; the server runs the configuration ``unstuck nats-config`` generates (one user per
  component), and every process connects on its own credentials. The department adapters run in
  :mod:`bench.adapter_process` (what ``unstuck adapters run`` does, one connection per department),
  and the load generator opens cases as the window's front end.
- **raw**: the floor of the same durable I/O, one message per decision, in the same layout: the
  responder in :mod:`bench.peers`, the load generator doing the appends and the request itself.
- **faststream-js**: the FastStream service that records the request and the reply in a JetStream
  stream (:mod:`bench.peers`), and a load generator asking it with FastStream.

The figures: coordinations/s, latency per coordination, messages into the server per
coordination (``/varz`` ``in_msgs``, less the load generator's own pull requests for the bus) and the
CPU time of each process per coordination (utime + stime from ``/proc/<pid>/stat``, the
nats-server included), read at the edges of the measured window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from unstuck.natsconfig import prepare_embedded
from unstuck.schemas.subjects import STREAM

from .coordination import Run, Server
from .workload import bench_config_toml

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
SYSTEMS = ("raw", "bus", "faststream-js")
FASTSTREAM_WORKERS = (
    100  # the concurrent variant of the FastStream peer: max_workers, one per coordination in flight
)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads so far (``/proc/<pid>/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Proc:
    """One process of a deployed run, started and ready (it printed its ready line)."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            await self.process.wait()
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}): {self.log_tail()}")
        return raw.decode().strip()

    async def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-8:])
        return ""

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start(
    name: str, args: list[str], ready: str, work: Path, env: dict[str, str], timeout: float = 90.0
) -> Proc:
    """Start a process (stderr to ``<work>/<name>.log``) and wait for a stdout line containing ``ready``."""
    log = work / f"{name}.log"
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            cwd=ROOT,
            env=env,
        )
    proc = Proc(name, process, log)
    try:
        while ready not in await proc.line(timeout):
            pass
    except BaseException:
        await proc.stop()
        raise
    return proc


def environment(**extra: str) -> dict[str, str]:
    """This environment without any unstuck or NATS settings of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNSTUCK_") and k != "NATS_URL"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@contextlib.asynccontextmanager
async def processes(
    system: str, server: Server, work: Path, codes: list[str], auth: Path | None
) -> AsyncIterator[dict[str, Proc]]:
    """The serving processes of ``system`` on ``server``, stopped at the end."""
    python = sys.executable
    procs: dict[str, Proc] = {}
    try:
        if system == "bus":
            assert auth is not None
            config = work / "unstuck.toml"
            config.write_text(bench_config_toml(codes), encoding="utf-8")
            env = environment(NATS_URL=server.url, UNSTUCK_CONFIG=str(config))
            serve = [python, "-m", "unstuck", "serve", "--secure", "--data-dir", str(auth)]
            procs["broker"] = await start(
                "broker", [*serve, "--metrics-address", "127.0.0.1:0"], "unstuck broker on", work, env
            )
            adapters = [python, "-m", "bench.adapter_process", server.url, *codes, "--auth-dir", str(auth)]
            procs["adapter host"] = await start("adapters", adapters, "serving", work, environment())
        elif system == "raw":
            peer = [python, "-m", "bench.peers", "raw", server.url]
            procs["responder"] = await start("responder", peer, "ready", work, environment())
        else:
            workers = FASTSTREAM_WORKERS if system == "faststream-js-concurrent" else 1
            peer = [python, "-m", "bench.peers", "faststream-js", server.url, str(workers)]
            procs["service"] = await start("service", peer, "ready", work, environment())
        yield procs
    finally:
        for proc in reversed(procs.values()):
            await proc.stop()


async def deployed_run(
    work: Path, system: str, codes: list[str], in_flight: int, count: int, warmup: int
) -> Run:
    """One measured run of ``system`` with each component in its own process, on a fresh server."""
    work.mkdir(parents=True, exist_ok=True)
    auth = None
    if system == "bus":
        auth = work / "auth"
        prepare_embedded(auth, codes, STREAM)  # the server's users and each component's credentials
    with Server(work / "nats", config_file=auth / "nats-server.conf" if auth else None) as server:
        async with processes(system, server, work, codes, auth) as procs:
            driven = "faststream-js" if system.startswith("faststream-js") else system
            args = [sys.executable, "-m", "bench.loadgen", driven, server.url, "--in-flight", str(in_flight)]
            args += ["--count", str(count), "--warmup", str(warmup), "--codes", *codes]
            if auth is not None:
                args += ["--auth-dir", str(auth)]
            load = await start("loadgen", args, "ready", work, environment())
            try:
                pids = {"load generator": load.pid, **{n: p.pid for n, p in procs.items()}}
                pids["nats-server"] = server.pid
                cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
                msgs = server.in_msgs()
                await load.send("go")
                result = json.loads(await load.line(timeout=600))
                msgs = server.in_msgs() - msgs
                cpu = {name: (cpu_seconds(pid) - cpu[name]) * 1000 / count for name, pid in pids.items()}
                await load.send("stop")
                await asyncio.wait_for(load.process.wait(), 30)
            finally:
                await load.stop()
    return Run(
        f"deployed-{system}",
        in_flight,
        count,
        result["seconds"],
        result["latencies"],
        (msgs - result["observer_msgs"]) / count,
        sum(cpu.values()),
        cpu,
    )

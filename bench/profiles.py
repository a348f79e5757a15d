"""``python -m bench.profiles``: where the time goes, as cProfile tables in bench-results/profile-*.txt.

- ``coordination``: the bus at 1 in flight (client, broker and adapter in this process), profiled
  only while the measured cases run;
- ``rebuild``: a broker catching up with a stream of open cases (what a restart costs);
- ``replay``: ``unstuck replay --verify`` over a generated stream, in its own process.

cProfile adds its own overhead per call, so the tables show shares, not absolute speed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats

from unstuck.adapters.registry import installed_departments
from unstuck.broker import API_VERBS, Broker
from unstuck.clock import SystemClock
from unstuck.metrics import Metrics

from . import coordination
from .coordination import Server, bus_run
from .streamgen import CLOSED_CASE, OPEN_CASE, generate
from .workload import BENCH_DEPARTMENTS, bench_config

ROOT = Path(__file__).resolve().parents[1]


def table(profile: cProfile.Profile | str, title: str, limit: int = 45) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs()
    out.write(f"# {title}\n\n## by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(limit)
    out.write("\n## by own time\n")
    stats.sort_stats("tottime").print_stats(limit)
    return out.getvalue()


async def coordination_profile(work: Path, cases: int) -> str:
    profile = cProfile.Profile()
    drive = coordination.drive

    async def profiled(
        one: Callable[[int], Awaitable[float]], first: int, count: int, in_flight: int
    ) -> tuple[float, list[float]]:
        if first == 0:  # the warm-up
            return await drive(one, first, count, in_flight)
        profile.enable()
        try:
            return await drive(one, first, count, in_flight)
        finally:
            profile.disable()

    coordination.drive = profiled
    try:
        with Server(work / "profile-coordination") as server:
            run = await bus_run(server, list(BENCH_DEPARTMENTS), 1, cases, 20)
    finally:
        coordination.drive = drive
    return table(
        profile, f"bus, 1 in flight, {cases} cases: {run.rate:.1f} cases/s, {run.cpu_ms:.2f} ms CPU per case"
    )


async def rebuild_profile(work: Path, cases: int) -> str:
    with Server(work / "profile-rebuild") as server:
        nc = await nats.connect(server.url)
        try:
            await generate(nc, cases * len(OPEN_CASE), OPEN_CASE, departments=BENCH_DEPARTMENTS)
            codes = list(BENCH_DEPARTMENTS)
            broker = Broker(
                nc,
                bench_config(codes),
                SystemClock(),
                departments=installed_departments(),
                metrics=Metrics(codes, API_VERBS),
            )
            profile = cProfile.Profile()
            profile.enable()
            await broker.start(serve_api=False)
            profile.disable()
            await broker.stop()
        finally:
            await nc.close()
    return table(profile, f"broker rebuilding {cases} open cases ({cases * len(OPEN_CASE)} events)")


async def replay_profile(work: Path, events: int) -> str:
    with Server(work / "profile-replay") as server:
        nc = await nats.connect(server.url)
        try:
            await generate(nc, events, CLOSED_CASE, departments=BENCH_DEPARTMENTS)
        finally:
            await nc.close()
        stats = work / "replay.prof"
        subprocess.run(
            [
                *(sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "unstuck", "replay", "--verify"),
                *("--nats", server.url, "--format", "json", "--out", str(work / "replay.json")),
                *("--jobs", "1"),  # cProfile sees one process: all the work in it
            ],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )
    return table(str(stats), f"unstuck replay --verify --jobs 1 over {events} events")


async def main(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="unstuck-profile-") as tmp:
        work = Path(tmp)
        for name in args.only.split(","):
            if name == "coordination":
                text = await coordination_profile(work, args.cases)
            elif name == "rebuild":
                text = await rebuild_profile(work, args.rebuild_cases)
            elif name == "replay":
                text = await replay_profile(work, args.replay_events)
            else:
                raise SystemExit(f"unknown profile {name!r}: coordination, rebuild or replay")
            (out / f"profile-{name}.txt").write_text(text, encoding="utf-8")
            print(f"wrote {out}/profile-{name}.txt", file=sys.stderr)


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.profiles", description=__doc__)
    p.add_argument("--out", default="bench-results")
    p.add_argument("--only", default="coordination,rebuild,replay")
    p.add_argument("--cases", type=int, default=300, help="coordinations profiled")
    p.add_argument("--rebuild-cases", type=int, default=10_000)
    p.add_argument("--replay-events", type=int, default=80_000)
    asyncio.run(main(p.parse_args()))

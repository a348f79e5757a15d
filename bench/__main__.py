"""``python -m bench [--quick]``: the benchmark suite; writes JSON and a Markdown table to bench-results/.

Every figure stands beside a baseline measured in the same invocation; the coordination runs
interleave bus and baselines round by round, each on a fresh nats-server, so drift on a shared
machine hits both sides of a ratio alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from unstuck.embedded import find_binary

from .coordination import Run, Server, bus_run, faststream_run, raw_run
from .deployed import SYSTEMS, deployed_run
from .report import markdown
from .scale import FULL as SCALE_FULL
from .scale import QUICK as SCALE_QUICK
from .scale import ScalePlan, scale_bench
from .stores import memory_bench, replay_bench
from .workload import department_codes


@dataclass(frozen=True)
class Plan:
    rounds: int
    single: int  # coordinations measured at 1 in flight
    many: int  # coordinations measured at 100 in flight
    warmup: int
    replay_events: int
    memory_cases: int


QUICK = Plan(rounds=1, single=150, many=400, warmup=20, replay_events=200_000, memory_cases=20_000)
FULL = Plan(rounds=3, single=400, many=2000, warmup=50, replay_events=1_000_000, memory_cases=100_000)
SECTIONS = ("deployed", "coordination", "departments", "replay", "memory", "scale")
ONE_PROCESS = ("raw", "bus", "faststream", "raw-batch")


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def summary(runs: list[Run]) -> dict[str, Any]:
    rates = [r.rate for r in runs]
    out: dict[str, Any] = {
        "cases_per_s": statistics.median(rates),
        "all_cases_per_s": rates,
        "server_msgs_per_case": statistics.median(r.server_msgs for r in runs),
        "cpu_ms_per_case": statistics.median(r.cpu_ms for r in runs),
    }
    if runs and runs[0].cpu_ms_by_process:
        out["cpu_ms_per_case_by_process"] = {
            name: statistics.median(r.cpu_ms_by_process[name] for r in runs)
            for name in runs[0].cpu_ms_by_process
        }
    if runs and runs[0].in_flight == 1:
        out["p50_ms"] = statistics.median(r.quantile(0.5) * 1000 for r in runs)
        out["p99_ms"] = statistics.median(r.quantile(0.99) * 1000 for r in runs)
        out["all_p50_ms"] = [r.quantile(0.5) * 1000 for r in runs]
    return out


def per_round_ratio(a: list[Run], b: list[Run]) -> float:
    """The median over rounds of a/b throughput (each round's pair ran back to back)."""
    return statistics.median(x.rate / y.rate for x, y in zip(a, b, strict=True))


def ratios(entry: dict[str, Any], runs: dict[str, list[Run]], bus: str, baselines: dict[str, str]) -> None:
    """Per-round ratios of ``bus`` against each baseline: throughput, CPU, and at 1 in flight latency."""
    for label, name in baselines.items():
        entry[f"ratio_{label}"] = per_round_ratio(runs[bus], runs[name])
    raw = runs[baselines["bus_raw"]]
    entry["ratio_cpu_bus_raw"] = statistics.median(
        b.cpu_ms / r.cpu_ms for b, r in zip(runs[bus], raw, strict=True)
    )
    if runs[bus][0].in_flight == 1:
        for q in (0.5, 0.99):
            entry[f"ratio_p{round(q * 100)}_bus_raw"] = statistics.median(
                b.quantile(q) / r.quantile(q) for b, r in zip(runs[bus], raw, strict=True)
            )


async def coordination(work: Path, plan: Plan) -> dict[str, Any]:
    """Everything in this process: bus, the raw floor in both formats, plain FastStream."""
    codes = department_codes(3)
    out: dict[str, Any] = {}
    for in_flight, count in ((1, plan.single), (100, plan.many)):
        runs: dict[str, list[Run]] = {name: [] for name in ONE_PROCESS}
        for r in range(plan.rounds):
            for name in ONE_PROCESS:
                with Server(work / f"c{in_flight}-{r}-{name}") as server:
                    if name == "bus":
                        run = await bus_run(server, codes, in_flight, count, plan.warmup)
                    elif name == "faststream":
                        run = await faststream_run(server, in_flight, count * 4, plan.warmup)
                    else:
                        mode = "batch" if name == "raw-batch" else "decision"
                        run = await raw_run(server, in_flight, count, plan.warmup, mode)
                runs[name].append(run)
                log(f"{in_flight:>3} in flight, round {r + 1}: {run.name:<13} {run.rate:8.1f} cases/s")
        entry = {name: summary(rs) for name, rs in runs.items()}
        entry["raw_batch_mode"] = runs["raw-batch"][
            0
        ].name  # raw-event where the server has no atomic batches
        ratios(
            entry,
            runs,
            "bus",
            {"bus_raw": "raw", "bus_raw_batch": "raw-batch", "bus_faststream": "faststream"},
        )
        entry["ratio_raw_batch_raw"] = per_round_ratio(runs["raw-batch"], runs["raw"])
        out[f"in_flight_{in_flight}"] = entry
    return out


async def deployed(work: Path, plan: Plan) -> dict[str, Any]:
    """Each component in its own process: the bus, the raw floor and the recording FastStream peer."""
    codes = department_codes(3)
    out: dict[str, Any] = {}
    for in_flight, count in ((1, plan.single), (100, plan.many)):
        # at 100 in flight, also the FastStream peer handling 100 messages at once (max_workers)
        systems = SYSTEMS if in_flight == 1 else (*SYSTEMS, "faststream-js-concurrent")
        runs: dict[str, list[Run]] = {name: [] for name in systems}
        for r in range(plan.rounds):
            for name in systems:
                place = work / f"p{in_flight}-{r}-{name}"
                run = await deployed_run(place, name, codes, in_flight, count, plan.warmup)
                runs[name].append(run)
                log(f"{in_flight:>3} in flight, round {r + 1}: {run.name:<22} {run.rate:8.1f} cases/s")
        entry = {name: summary(rs) for name, rs in runs.items()}
        baselines = {"bus_raw": "raw", "bus_faststream_js": "faststream-js"}
        if "faststream-js-concurrent" in runs:
            baselines["bus_faststream_js_concurrent"] = "faststream-js-concurrent"
        ratios(entry, runs, "bus", baselines)
        out[f"in_flight_{in_flight}"] = entry
    return out


async def departments(work: Path, plan: Plan) -> dict[str, Any]:
    runs: dict[int, list[Run]] = {3: [], 30: []}
    for r in range(plan.rounds):
        for count in (3, 30):
            with Server(work / f"d{count}-{r}") as server:
                run = await bus_run(
                    server, department_codes(count), 100, plan.many, plan.warmup, f"bus-{count}"
                )
            runs[count].append(run)
            log(f"100 in flight, round {r + 1}: {count} departments {run.rate:8.1f} cases/s")
    return {
        "departments_3": summary(runs[3]),
        "departments_30": summary(runs[30]),
        "ratio_30_3": per_round_ratio(runs[30], runs[3]),
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        server = subprocess.run(
            [str(find_binary()), "--version"], capture_output=True, text=True
        ).stdout.strip()
    except Exception as exc:
        server = f"unknown ({exc})"

    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "nats_server": server,
        "nats_py": pkg("nats-py"),
        "faststream": pkg("faststream"),
        "pydantic": pkg("pydantic"),
        "load_average_start": os.getloadavg(),
    }


async def main(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = Plan(**{**plan.__dict__, "rounds": args.rounds})
    sections = args.only.split(",") if args.only else list(SECTIONS)
    result: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "plan": plan.__dict__,
        "machine": machine(),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="unstuck-bench-") as tmp:
        work = Path(tmp)
        if "deployed" in sections:
            log("deployed: bus, raw floor and FastStream with records, each component in its own process")
            result["deployed"] = await deployed(work, plan)
        if "coordination" in sections:
            log("coordination: bus, raw nats-py and FastStream in one process, at 1 and 100 in flight")
            result["coordination"] = await coordination(work, plan)
        if "departments" in sections:
            log("departments: 3 and 30 departments at 100 in flight")
            result["departments"] = await departments(work, plan)
        if "replay" in sections:
            log(f"replay: {plan.replay_events} events, unstuck replay --verify against an ordered consumer")
            result["replay"] = await replay_bench(work, plan.replay_events, 1, args.stream_format)
        if "memory" in sections:
            log(f"memory: broker rebuilding {plan.memory_cases} open cases")
            result["memory"] = await memory_bench(work, plan.memory_cases, args.stream_format)
        if "scale" in sections:
            scale = SCALE_QUICK if args.quick else SCALE_FULL
            if args.soak_cases:
                scale = ScalePlan(**{**scale.__dict__, "soak_cases": args.soak_cases})
            log(
                f"scale: {scale.closed:,} closed + {scale.open:,} open cases (start-up, ledger), "
                f"a soak of {scale.soak_cases:,} cases"
            )
            result["scale"] = await scale_bench(work / "scale", scale)
    result["seconds"] = time.perf_counter() - started
    result["machine"]["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(result, indent=2, ensure_ascii=False)
    (out / f"bench-{stamp}.json").write_text(text, encoding="utf-8")
    (out / "latest.json").write_text(text, encoding="utf-8")
    table = markdown(result)
    (out / "latest.md").write_text(table, encoding="utf-8")
    print(table)
    log(f"done in {result['seconds']:.0f}s; results in {out}/latest.json and latest.md")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, one round (about a minute or two)")
    p.add_argument("--out", default="bench-results", help="directory for the JSON and Markdown results")
    p.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    p.add_argument("--rounds", type=int, help="rounds of the interleaved coordination runs")
    p.add_argument("--soak-cases", type=int, help="cases through the scale section's soak (100,000; quick 2,000)")
    p.add_argument(
        "--stream-format",
        type=int,
        choices=(1, 2),
        default=2,
        help="storage format of the generated replay and memory streams: 2, one message per decision "
        "(default); 1, one message per event, for an event store of the previous format",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))

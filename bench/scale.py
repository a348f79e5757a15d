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


FULL = ScalePlan(1_000_000, 10_000, 100_000, 600.0, 200, 100_000, 10_000)
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

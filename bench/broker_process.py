"""A broker in its own process, for the memory benchmark: it rebuilds its state from the stream.

    python -m bench.broker_process NATS_URL

Prints one JSON line when it has caught up (seconds, cases, stream messages applied), then serves
until it is terminated. The parent reads the peak resident set (VmHWM) from /proc.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import nats

from unstuck.adapters.registry import installed_departments
from unstuck.broker import API_VERBS, Broker
from unstuck.clock import SystemClock
from unstuck.metrics import Metrics

from .workload import BENCH_DEPARTMENTS, bench_config


async def main(url: str) -> None:
    codes = list(BENCH_DEPARTMENTS)
    nc = await nats.connect(url, name="bench-broker-rss")
    config = bench_config(codes)
    config.ledger.in_broker = False  # the broker's own memory: its ledger's projector runs elsewhere
    started = time.perf_counter()
    broker = Broker(
        nc,
        config,
        SystemClock(),
        departments=installed_departments(),
        metrics=Metrics(codes, API_VERBS),
    )
    await broker.start(serve_api=False)
    seconds = time.perf_counter() - started
    print(
        json.dumps({"seconds": seconds, "cases": broker.book.known_cases, "messages": broker.applied_seq}),
        flush=True,
    )
    await asyncio.Event().wait()  # until SIGTERM


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

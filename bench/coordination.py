"""Coordination throughput and latency: the bus against a raw nats-py floor and FastStream.

All three run in this one process on one event loop, each on its own fresh nats-server, with a
client, a server side and a responder on separate connections:

- **bus**: ``unstuck.api.case.open`` with a category; the broker allocates an id, appends
  case.opened, case.classified and coordination.requested, asks the department adapter, appends
  coordination.replied and case.resolved. A case counts when the client sees case.resolved on the
  case's subject (a plain subscription on ``unstuck.case.>``).
- **raw**: the same I/O a coordination needs at the least, done the way the event store does it:
  the three events of the opening decision as one atomic batch (``Nats-Msg-Id``,
  ``Nats-Expected-Last-Subject-Sequence``, bodies of the bus's sizes; one acked publish each where
  the server has no atomic batches), one request/reply to a responder that answers the benchmark
  reply, then the two events of the reply decision the same way.
- **faststream**: FastStream's plain NATS request/reply with the same request payload, answered by
  a FastStream subscriber returning the same reply.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig

from unstuck.adapters.host import AdapterHost
from unstuck.broker import API_VERBS, Broker
from unstuck.clock import SystemClock
from unstuck.embedded import EmbeddedNats, free_port
from unstuck.metrics import Metrics
from unstuck.schemas.subjects import api_subject

from .streamgen import sample_bodies
from .workload import bench_adapters, bench_config, case_body, reply_payload, request_payload

RESOLVED_MARK = b'"type":"case.resolved"'


@dataclass
class Run:
    """One measured run: how many coordinations, how long, each one's latency, server messages."""

    name: str
    in_flight: int
    count: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    server_msgs: float = 0.0  # messages into the server per coordination (varz in_msgs)
    cpu_ms: float = 0.0  # CPU time of this process per coordination (client, server side and responder)

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Server:
    """A fresh nats-server with JetStream and a monitoring port, in its own directory."""

    def __init__(self, directory: Path) -> None:
        self.monitor = free_port()
        self.nats = EmbeddedNats(directory, extra_args=("-m", str(self.monitor)))

    def __enter__(self) -> Server:
        self.nats.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.nats.stop()

    @property
    def url(self) -> str:
        return self.nats.url

    def in_msgs(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/varz", timeout=5) as resp:
            return int(json.loads(resp.read())["in_msgs"])


async def drive(
    one: Callable[[int], Awaitable[float]], first: int, count: int, in_flight: int
) -> tuple[float, list[float]]:
    """Run ``one(i)`` for ``i`` in ``first .. first+count-1``, ``in_flight`` at once: (seconds, latencies)."""
    counter = [first]
    stop = first + count
    latencies: list[float] = []

    async def lane() -> None:
        while counter[0] < stop:
            i = counter[0]
            counter[0] += 1
            latencies.append(await one(i))

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return time.perf_counter() - started, latencies


async def connect(url: str, name: str) -> Client:
    return await nats.connect(url, name=name, max_reconnect_attempts=3, pending_size=64 * 1024 * 1024)


async def bus_run(
    server: Server, codes: list[str], in_flight: int, count: int, warmup: int, name: str = "bus"
) -> Run:
    """Cases through the whole bus: API, broker, event store, coordinator, adapter host."""
    config = bench_config(codes)
    broker_nc = await connect(server.url, "bench-broker")
    adapters_nc = await connect(server.url, "bench-adapters")
    client = await connect(server.url, "bench-window")
    metrics = Metrics(codes, API_VERBS)
    broker = Broker(
        broker_nc, config, SystemClock(), metrics=metrics, departments={c: c for c in codes}
    )
    await broker.start()
    host = AdapterHost(adapters_nc, bench_adapters(codes), concurrency=256)
    await host.start()
    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[float]] = {}
    early: dict[str, float] = {}

    async def watch(msg: Msg) -> None:
        if RESOLVED_MARK in msg.data:
            now = time.perf_counter()
            case_id = msg.subject.rpartition(".")[2]
            future = waiting.pop(case_id, None)
            if future is None:
                early[case_id] = now
            elif not future.done():
                future.set_result(now)

    sub = await client.subscribe("unstuck.case.*", cb=watch, pending_msgs_limit=-1, pending_bytes_limit=-1)

    async def one(i: int) -> float:
        started = time.perf_counter()
        body = json.dumps(case_body(i, codes[i % len(codes)]), ensure_ascii=False).encode()
        msg = await client.request(api_subject("case.open"), body, timeout=30)
        reply = json.loads(msg.data)
        if not reply["ok"]:
            raise RuntimeError(f"case.open failed: {reply['error']}")
        case_id = reply["result"]["case_id"]
        done = early.pop(case_id, None)
        if done is None:
            future = loop.create_future()
            waiting[case_id] = future
            done = await asyncio.wait_for(future, 30)
        return done - started

    try:
        await drive(one, 0, warmup, min(in_flight, warmup))
        before, cpu = server.in_msgs(), time.process_time()
        seconds, latencies = await drive(one, warmup, count, in_flight)
        cpu_ms = (time.process_time() - cpu) * 1000 / count
        msgs = (server.in_msgs() - before) / count
    finally:
        await sub.unsubscribe()
        await host.stop()
        await broker.stop()
        for nc in (client, adapters_nc, broker_nc):
            await nc.close()
    return Run(name, in_flight, count, seconds, latencies, msgs, cpu_ms)


async def raw_run(server: Server, in_flight: int, count: int, warmup: int, batches: bool = True) -> Run:
    """The floor: the opening decision's 3 events, one request/reply, the reply decision's 2 events.

    With ``batches`` (and a server that has them) each decision is one atomic batch, as the event
    store appends it; without, each event is its own acked publish.
    """
    responder = await connect(server.url, "raw-responder")
    client = await connect(server.url, "raw-client")
    js = client.jetstream()
    await js.add_stream(
        StreamConfig(
            name="RAW_CASES",
            subjects=["raw.case.>"],
            storage=StorageType.FILE,
            duplicate_window=120.0,
            deny_delete=True,
            deny_purge=True,
            allow_atomic=True,
        )
    )
    atomic = batches and bool((await js.stream_info("RAW_CASES")).config.allow_atomic)
    answer = reply_payload()
    request = request_payload()
    bodies = sample_bodies()

    async def respond(msg: Msg) -> None:
        await msg.respond(answer)

    sub = await responder.subscribe("raw.dept.coordinate", queue="raw.dept", cb=respond)

    async def append(subject: str, batch: list[bytes], expected: int, tag: str) -> int:
        """What the event store does per decision: one acked publish, or one atomic batch."""
        if len(batch) == 1 or not atomic:
            for k, body in enumerate(batch):
                headers = {"Nats-Msg-Id": f"{tag}-{k}", "Nats-Expected-Last-Subject-Sequence": str(expected)}
                expected = (await js.publish(subject, body, headers=headers)).seq
            return expected
        batch_id = f"{tag}-batch"
        for k, body in enumerate(batch, start=1):
            headers = {"Nats-Msg-Id": f"{tag}-{k}", "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(k)}
            if k == 1:
                headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
            if k < len(batch):
                await client.publish(subject, body, headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            ack = json.loads((await client.request(subject, body, timeout=30, headers=headers)).data)
            if "error" in ack:
                raise RuntimeError(f"raw batch refused: {ack['error']}")
            return int(ack["seq"])
        raise AssertionError("unreachable")

    async def one(i: int) -> float:
        started = time.perf_counter()
        subject = f"raw.case.{i}"
        expected = await append(subject, bodies[:3], 0, f"{i}a")
        reply = await client.request("raw.dept.coordinate", request, timeout=30)
        json.loads(reply.data)
        await append(subject, bodies[3:], expected, f"{i}b")
        return time.perf_counter() - started

    try:
        await drive(one, 0, warmup, min(in_flight, warmup))
        before, cpu = server.in_msgs(), time.process_time()
        seconds, latencies = await drive(one, warmup, count, in_flight)
        cpu_ms = (time.process_time() - cpu) * 1000 / count
        msgs = (server.in_msgs() - before) / count
    finally:
        await sub.unsubscribe()
        await client.close()
        await responder.close()
    return Run("raw" if atomic else "raw-unbatched", in_flight, count, seconds, latencies, msgs, cpu_ms)


async def faststream_run(server: Server, in_flight: int, count: int, warmup: int) -> Run:
    """FastStream's plain NATS request/reply, same payload both ways."""
    from faststream.nats import NatsBroker

    logging.getLogger("faststream").setLevel(logging.WARNING)
    answer: dict[str, Any] = json.loads(reply_payload())
    request: dict[str, Any] = json.loads(request_payload())
    serving = NatsBroker(server.url, logger=None)
    asking = NatsBroker(server.url, logger=None)

    @serving.subscriber("fs.dept.coordinate", queue="fs.dept")
    async def coordinate(body: dict[str, Any]) -> dict[str, Any]:
        return answer

    await serving.start()
    await asking.start()

    async def one(i: int) -> float:
        started = time.perf_counter()
        response = await asking.request(request, "fs.dept.coordinate", timeout=30)
        await response.decode()
        return time.perf_counter() - started

    try:
        await drive(one, 0, warmup, min(in_flight, warmup))
        before, cpu = server.in_msgs(), time.process_time()
        seconds, latencies = await drive(one, warmup, count, in_flight)
        cpu_ms = (time.process_time() - cpu) * 1000 / count
        msgs = (server.in_msgs() - before) / count
    finally:
        await asking.stop()
        await serving.stop()
    return Run("faststream", in_flight, count, seconds, latencies, msgs, cpu_ms)

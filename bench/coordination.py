"""Coordination throughput and latency in one process: the bus against a raw nats-py floor and FastStream.

All of these run in this one process on one event loop, each on its own fresh nats-server, with a
client, a server side and a responder on separate connections (``bench.deployed`` runs the same
coordinations with every component in its own process):

- **bus**: ``unstuck.api.case.open`` with a category; the broker allocates an id, appends
  case.opened, case.classified and coordination.requested, asks the department adapter, appends
  coordination.replied and case.resolved. A case counts when the client sees case.resolved on the
  case's subject (a plain subscription on ``unstuck.case.*``).
- **raw**: the same durable I/O a coordination needs at the least, one message per decision
  (storage format 2): the opening decision (three events) as one acked JetStream publish
  (``Nats-Msg-Id``, ``Nats-Expected-Last-Subject-Sequence``, bodies of the bus's sizes), one
  request/reply to a responder that answers the benchmark reply, then the reply decision (two
  events) as a second acked publish.
- **raw-batch**: the floor of the previous storage format: each decision's events as one atomic
  batch of one message per event (one acked publish each where the server has no atomic batches).
- **faststream**: FastStream's plain NATS request/reply with the same request payload, answered by
  a FastStream subscriber returning the same reply. It keeps no record.
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
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from unstuck.adapters.host import AdapterHost
from unstuck.broker import API_VERBS, Broker
from unstuck.clock import SystemClock
from unstuck.embedded import EmbeddedNats, free_port
from unstuck.metrics import Metrics
from unstuck.schemas.subjects import api_subject

from .streamgen import decision_body, sample_bodies
from .workload import bench_adapters, bench_config, case_body, reply_payload, request_payload

RESOLVED_MARK = b'"type":"case.resolved"'
RAW_STREAM = "RAW_CASES"
RAW_REQUEST_SUBJECT = "raw.dept.coordinate"


@dataclass
class Run:
    """One measured run: how many coordinations, how long, each one's latency, server messages."""

    name: str
    in_flight: int
    count: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    server_msgs: float = 0.0  # messages into the server per coordination (varz in_msgs)
    cpu_ms: float = 0.0  # CPU time per coordination: of this process, or of all processes (deployed)
    cpu_ms_by_process: dict[str, float] = field(default_factory=dict)  # deployed: each process's share

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Server:
    """A fresh nats-server with JetStream and a monitoring port, in its own directory."""

    def __init__(self, directory: Path, config_file: Path | None = None) -> None:
        self.monitor = free_port()
        self.nats = EmbeddedNats(directory, config_file=config_file, extra_args=("-m", str(self.monitor)))

    def __enter__(self) -> Server:
        self.nats.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.nats.stop()

    @property
    def url(self) -> str:
        return self.nats.url

    @property
    def pid(self) -> int:
        assert self.nats.process is not None
        return self.nats.process.pid

    def in_msgs(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/varz", timeout=5) as resp:
            return int(json.loads(resp.read())["in_msgs"])


One = Callable[[int], Awaitable[float]]
"""One coordination, number ``i``: returns its latency in seconds."""


async def drive(one: One, first: int, count: int, in_flight: int) -> tuple[float, list[float]]:
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


async def measure(server: Server, one: One, name: str, in_flight: int, count: int, warmup: int) -> Run:
    """Warm up, then run ``count`` coordinations ``in_flight`` at once, with this process's CPU time."""
    await drive(one, 0, warmup, min(in_flight, warmup))
    before, cpu = server.in_msgs(), time.process_time()
    seconds, latencies = await drive(one, warmup, count, in_flight)
    cpu_ms = (time.process_time() - cpu) * 1000 / count
    msgs = (server.in_msgs() - before) / count
    return Run(name, in_flight, count, seconds, latencies, msgs, cpu_ms)


class Resolutions:
    """Cases opened through the API, each done when its case.resolved is seen on the case's subject."""

    def __init__(self, client: Client, codes: list[str]) -> None:
        self.client = client
        self.codes = codes
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.early: dict[str, float] = {}

    def seen(self, subject: str, data: bytes) -> None:
        """A message of the case record: if it holds case.resolved, that case is done now."""
        if RESOLVED_MARK in data:
            now = time.perf_counter()
            case_id = subject.rpartition(".")[2]
            future = self.waiting.pop(case_id, None)
            if future is None:
                self.early[case_id] = now
            elif not future.done():
                future.set_result(now)

    async def one(self, i: int) -> float:
        started = time.perf_counter()
        body = json.dumps(case_body(i, self.codes[i % len(self.codes)]), ensure_ascii=False).encode()
        msg = await self.client.request(api_subject("case.open"), body, timeout=30)
        reply = json.loads(msg.data)
        if not reply["ok"]:
            raise RuntimeError(f"case.open failed: {reply['error']}")
        case_id = reply["result"]["case_id"]
        done = self.early.pop(case_id, None)
        if done is None:
            future = asyncio.get_running_loop().create_future()
            self.waiting[case_id] = future
            done = await asyncio.wait_for(future, 30)
        return done - started


async def bus_run(
    server: Server, codes: list[str], in_flight: int, count: int, warmup: int, name: str = "bus"
) -> Run:
    """Cases through the whole bus: API, broker, event store, coordinator, adapter host."""
    config = bench_config(codes)
    broker_nc = await connect(server.url, "bench-broker")
    adapters_nc = await connect(server.url, "bench-adapters")
    client = await connect(server.url, "bench-window")
    metrics = Metrics(codes, API_VERBS)
    broker = Broker(broker_nc, config, SystemClock(), metrics=metrics, departments={c: c for c in codes})
    await broker.start()
    host = AdapterHost(adapters_nc, bench_adapters(codes), concurrency=256)
    await host.start()
    cases = Resolutions(client, codes)

    async def watch(msg: Msg) -> None:
        cases.seen(msg.subject, msg.data)

    sub = await client.subscribe("unstuck.case.*", cb=watch, pending_msgs_limit=-1, pending_bytes_limit=-1)
    try:
        return await measure(server, cases.one, name, in_flight, count, warmup)
    finally:
        await sub.unsubscribe()
        await host.stop()
        await broker.stop()
        for nc in (client, adapters_nc, broker_nc):
            await nc.close()


async def raw_stream(js: JetStreamContext) -> bool:
    """The raw floor's stream, configured as the event store's; True if the server takes atomic batches."""
    await js.add_stream(
        StreamConfig(
            name=RAW_STREAM,
            subjects=["raw.case.>"],
            storage=StorageType.FILE,
            duplicate_window=120.0,
            deny_delete=True,
            deny_purge=True,
            allow_atomic=True,
        )
    )
    return bool((await js.stream_info(RAW_STREAM)).config.allow_atomic)


def raw_coordination(client: Client, mode: str = "decision") -> One:
    """The floor's coordination ``i``: the opening decision, one request/reply, the reply decision.

    ``mode`` says how a decision is appended: ``decision``, one acked publish whose body is the
    decision's events joined by newlines (storage format 2); ``batch``, one atomic batch of one
    message per event (the previous format); ``event``, one acked publish per event.
    """
    js = client.jetstream()
    request = request_payload()
    bodies = sample_bodies()
    opening, replied = bodies[:3], bodies[3:]

    async def append(subject: str, events: list[bytes], expected: int, tag: str) -> int:
        if mode == "decision":
            headers = {"Nats-Msg-Id": tag, "Nats-Expected-Last-Subject-Sequence": str(expected)}
            return (await js.publish(subject, decision_body(events), headers=headers)).seq
        if mode == "event" or len(events) == 1:
            for k, body in enumerate(events):
                headers = {"Nats-Msg-Id": f"{tag}-{k}", "Nats-Expected-Last-Subject-Sequence": str(expected)}
                expected = (await js.publish(subject, body, headers=headers)).seq
            return expected
        return await atomic_batch(client, subject, events, expected, tag)

    async def one(i: int) -> float:
        started = time.perf_counter()
        subject = f"raw.case.{i}"
        # decision ids as long as the bus's (a ULID, 26 characters)
        expected = await append(subject, opening, 0, f"{i:025d}a")
        reply = await client.request(RAW_REQUEST_SUBJECT, request, timeout=30)
        json.loads(reply.data)
        await append(subject, replied, expected, f"{i:025d}b")
        return time.perf_counter() - started

    return one


async def atomic_batch(client: Client, subject: str, events: list[bytes], expected: int, tag: str) -> int:
    """One decision as an ADR-50 atomic batch, as the event store of the previous format appends it."""
    batch_id = f"{tag}-batch"
    for k, body in enumerate(events, start=1):
        headers = {"Nats-Msg-Id": f"{tag}-{k}", "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(k)}
        if k == 1:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
        if k < len(events):
            await client.publish(subject, body, headers=headers)
            continue
        headers["Nats-Batch-Commit"] = "1"
        ack = json.loads((await client.request(subject, body, timeout=30, headers=headers)).data)
        if "error" in ack:
            raise RuntimeError(f"raw batch refused: {ack['error']}")
        return int(ack["seq"])
    raise ValueError("an empty decision")


async def raw_run(server: Server, in_flight: int, count: int, warmup: int, mode: str = "decision") -> Run:
    """The floor in this process: client and responder on their own connections (see raw_coordination)."""
    responder = await connect(server.url, "raw-responder")
    client = await connect(server.url, "raw-client")
    atomic = await raw_stream(client.jetstream())
    if mode == "batch" and not atomic:
        mode = "event"  # a server without atomic batches: the previous format appended event by event
    answer = reply_payload()

    async def respond(msg: Msg) -> None:
        await msg.respond(answer)

    sub = await responder.subscribe(RAW_REQUEST_SUBJECT, queue="raw.dept", cb=respond)
    name = {"decision": "raw", "batch": "raw-batch", "event": "raw-event"}[mode]
    try:
        return await measure(server, raw_coordination(client, mode), name, in_flight, count, warmup)
    finally:
        await sub.unsubscribe()
        await client.close()
        await responder.close()


def faststream_coordination(asking: Any, subject: str) -> One:
    """FastStream's request/reply with the benchmark request; the answer is decoded as a user would."""
    request: dict[str, Any] = json.loads(request_payload())

    async def one(i: int) -> float:
        started = time.perf_counter()
        response = await asking.request(request, subject, timeout=30)
        await response.decode()
        return time.perf_counter() - started

    return one


async def faststream_run(server: Server, in_flight: int, count: int, warmup: int) -> Run:
    """FastStream's plain NATS request/reply, same payload both ways."""
    from faststream.nats import NatsBroker

    logging.getLogger("faststream").setLevel(logging.WARNING)
    answer: dict[str, Any] = json.loads(reply_payload())
    serving = NatsBroker(server.url, logger=None)
    asking = NatsBroker(server.url, logger=None)

    @serving.subscriber("fs.dept.coordinate", queue="fs.dept")
    async def coordinate(body: dict[str, Any]) -> dict[str, Any]:
        return answer

    await serving.start()
    await asking.start()
    try:
        one = faststream_coordination(asking, "fs.dept.coordinate")
        return await measure(server, one, "faststream", in_flight, count, warmup)
    finally:
        await asking.stop()
        await serving.stop()

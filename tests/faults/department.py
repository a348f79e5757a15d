"""A department adapter process for the fault suite, misbehaving on purpose.

    python tests/faults/department.py --nats URL --code CODE --mode MODE [--delay SECONDS]

Modes (each a real process the test can SIGKILL):
  ok       answers at once through the adapter host (which dedupes on request_id)
  slow     answers after --delay seconds through the adapter host
  hang     never answers: the adapter waits forever
  late     answers after --delay seconds, longer than the broker's timeout: the first attempt's
           answer arrives after the broker stopped waiting; the retry gets the remembered answer
  garbage  answers every request with something that is not a valid reply (raw NATS responder)
  twice    answers every request twice, the second time with a different outcome (raw responder)

``faults.department.<code>.stats`` answers with the counters as JSON: requests received, distinct
request ids, and how often a request id came again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections import Counter
from typing import Any

import nats
from nats.aio.msg import Msg

from unstuck.adapters.hookspecs import adapter_hookimpl
from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import wrap_adapter
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome
from unstuck.schemas.subjects import coordinate_subject, department_queue

GARBAGE: tuple[bytes, ...] = (
    b"not json at all",
    b'{"request_id": 5}',
    b"[]",
    b'{"outcome": "resolved"}',
    b"\xff\xfe\x00",
)


class FaultyAdapter:
    """An adapter whose answers come at once, late, or never."""

    def __init__(self, code: str, mode: str, delay: float, seen: Counter[str]) -> None:
        self.code = code
        self.mode = mode
        self.delay = delay
        self.seen = seen

    @adapter_hookimpl
    def unstuck_department(self) -> Department:
        return Department(code=self.code, name=f"fault-{self.code}")

    @adapter_hookimpl
    async def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        self.seen[request.request_id] += 1
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode in ("slow", "late"):
            await asyncio.sleep(self.delay)
        return CoordinationReply(
            request_id=request.request_id,
            department=self.code,
            outcome=Outcome.RESOLVED,
            message=f"{self.code} handled it",
            handler=f"{self.code}-clerk",
        )


async def serve(url: str, code: str, mode: str, delay: float) -> None:
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.25, name=f"fault-{code}")
    arrivals: Counter[str] = Counter()  # every request as it arrived, repeats included
    handled: Counter[str] = Counter()  # what the adapter itself was asked (the host dedupes)
    host: AdapterHost | None = None

    async def count(msg: Msg) -> None:
        try:
            arrivals[json.loads(msg.data)["request_id"]] += 1
        except (ValueError, KeyError, TypeError):
            arrivals["<malformed>"] += 1

    async def raw(msg: Msg) -> None:
        try:
            request = CoordinationRequest.model_validate_json(msg.data)
        except ValueError:
            return
        handled[request.request_id] += 1
        if mode == "garbage":
            await msg.respond(GARBAGE[sum(handled.values()) % len(GARBAGE)])
            return
        first = CoordinationReply(
            request_id=request.request_id,
            department=code,
            outcome=Outcome.RESOLVED,
            message="first answer",
            handler=f"{code}-clerk",
        )
        second = CoordinationReply(
            request_id=request.request_id,
            department=code,
            outcome=Outcome.CANNOT,
            message="second answer, different",
            handler=f"{code}-clerk",
            legal_basis="a rule",
        )
        await msg.respond(first.model_dump_json().encode())
        await nc.publish(msg.reply, second.model_dump_json().encode())

    # a plain subscription on the same subject sees every request (not in the queue group)
    await nc.subscribe(coordinate_subject(code), cb=count)
    if mode in ("garbage", "twice"):
        await nc.subscribe(coordinate_subject(code), queue=department_queue(code), cb=raw)
    else:
        loaded = wrap_adapter(f"fault-{code}", FaultyAdapter(code, mode, delay, handled))
        assert loaded is not None
        host = AdapterHost(nc, [loaded], concurrency=256)
        await host.start()

    async def stats(msg: Msg) -> None:
        body: dict[str, Any] = {
            "code": code,
            "mode": mode,
            "requests": sum(arrivals.values()),
            "distinct": len(arrivals),
            "repeats": sum(n - 1 for n in arrivals.values()),
            "handled": sum(handled.values()),
            "handled_distinct": len(handled),
            "request_ids": sorted(arrivals),
        }
        await msg.respond(json.dumps(body).encode())

    await nc.subscribe(f"faults.department.{code}.stats", cb=stats)
    await nc.flush()
    print(f"department {code} ({mode}) ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if host is not None and mode != "hang":
        await host.stop()
    await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--code", required=True)
    parser.add_argument("--mode", required=True, choices=("ok", "slow", "hang", "late", "garbage", "twice"))
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(serve(args.nats, args.code, args.mode, args.delay))


if __name__ == "__main__":
    main()

"""The baselines' serving side in its own process, for the comparisons in the deployed layout.

    python -m bench.peers raw NATS_URL                       # a bare nats-py responder
    python -m bench.peers faststream-js NATS_URL [WORKERS]   # a FastStream service recording each coordination

- **raw**: the department of the raw floor: a queue subscription on ``raw.dept.coordinate`` that
  answers every request with the benchmark adapter's reply. The load generator does the floor's
  JetStream appends itself (``bench.loadgen raw``).
- **faststream-js**: the peer a user would write with FastStream: a ``@subscriber`` answering the
  request, which first stores the request and then the reply as two records in a file-backed
  JetStream stream through a FastStream JetStream publisher (each publish waits for its ack). As a
  user writes it, the subscriber keeps FastStream's default of one message handled at a time;
  WORKERS > 1 passes ``max_workers`` to handle that many at once.

Prints ``ready`` once subscribed, then serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Any

from .coordination import RAW_REQUEST_SUBJECT
from .workload import reply_payload

FS_SUBJECT = "fsjs.dept.coordinate"
FS_STREAM = "FS_RECORDS"
FS_RECORDS = "fsjs.records"


async def until_stopped(ready: str = "ready") -> None:
    """Print the line the parent waits for, then wait for SIGTERM (or SIGINT)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(ready, flush=True)
    await stop.wait()


async def raw(url: str) -> None:
    import nats
    from nats.aio.msg import Msg

    nc = await nats.connect(url, name="raw-responder", pending_size=64 * 1024 * 1024)
    answer = reply_payload()

    async def respond(msg: Msg) -> None:
        await msg.respond(answer)

    await nc.subscribe(RAW_REQUEST_SUBJECT, queue="raw.dept", cb=respond, pending_msgs_limit=-1)
    await until_stopped()
    await nc.drain()


def faststream_service(url: str, workers: int = 1) -> Any:
    """The FastStream broker of the recording peer."""
    from faststream.nats import JStream, NatsBroker
    from nats.js.api import StorageType

    logging.getLogger("faststream").setLevel(logging.WARNING)
    answer: dict[str, Any] = json.loads(reply_payload())
    broker = NatsBroker(url, logger=None)
    records = broker.publisher(
        FS_RECORDS,
        stream=JStream(FS_STREAM, subjects=[FS_RECORDS], storage=StorageType.FILE, duplicate_window=120.0),
        timeout=30.0,
    )

    @broker.subscriber(FS_SUBJECT, queue="fsjs.dept", max_workers=workers)
    async def coordinate(body: dict[str, Any]) -> dict[str, Any]:
        await records.publish({"kind": "request", "request": body})
        await records.publish({"kind": "reply", "request_id": body.get("request_id"), "reply": answer})
        return answer

    return broker


async def faststream_js(url: str, workers: str = "1") -> None:
    broker = faststream_service(url, int(workers))
    await broker.start()
    await until_stopped()
    await broker.stop()


if __name__ == "__main__":
    kind, *options = sys.argv[1:]
    runner = {"raw": raw, "faststream-js": faststream_js}.get(kind)
    if runner is None:
        raise SystemExit(f"unknown peer {kind!r}: raw or faststream-js")
    asyncio.run(runner(*options))

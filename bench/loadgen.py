"""The load generator in its own process, for the benchmarks of the bus as deployed.

    python -m bench.loadgen SYSTEM NATS_URL --in-flight N --count C --warmup W [--codes ...] [--auth-dir DIR]

SYSTEM is what it drives, each coordination as in :mod:`bench.coordination`:

- ``bus``: opens cases through ``unstuck.api.case.open`` (as the window's front end, on the ``cli``
  credentials under ``--auth-dir``) and counts a case when case.resolved is stored. It sees that
  through a pull consumer on the case stream, without acks, on a connection of its own (the
  ``auditor`` credentials under ``--auth-dir``: the one principal allowed to read the record), so
  it learns of an event only once the stream holds it;
- ``raw``: the floor, one message per decision, done by this process itself: the opening
  decision's acked publish, a request/reply to ``bench.peers raw``, the reply decision's publish;
- ``faststream-js``: FastStream's ``request`` to the recording service of ``bench.peers faststream-js``.

The parent drives it over stdin/stdout, one line each way, so it can read every process's CPU time
at the edges of the measured window: this process warms up and prints ``ready``; on ``go`` it runs
the measured coordinations and prints one JSON line (seconds, latencies, the messages its
observer sent); on ``stop`` it closes its connections and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from unstuck.connection import Connection
from unstuck.natsconfig import CredentialStore
from unstuck.natsprivate import api_prefix_of
from unstuck.schemas.subjects import CASE_PREFIX, STREAM

from .coordination import One, Resolutions, drive, faststream_coordination, raw_coordination, raw_stream
from .peers import FS_SUBJECT

PULL_BATCH = 1000


async def pull_observer(
    nc: Client, on_message: Callable[[str, bytes], None]
) -> Callable[[], Awaitable[None]]:
    """Every new message of the case stream, handed to ``on_message(subject, data)`` as it is stored.

    A pull consumer without acks; two pull requests are kept waiting at the server, each renewed
    when it has delivered its batch or expired. Returns a function that deletes the consumer.
    """
    js = nc.jetstream()
    info = await js.add_consumer(
        STREAM,
        ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.NEW,
            filter_subject=f"{CASE_PREFIX}.>",
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=60.0,
            max_waiting=8,
        ),
    )
    next_subject = f"{api_prefix_of(js)}.CONSUMER.MSG.NEXT.{STREAM}.{info.name}"
    inbox = nc.new_inbox()
    request = json.dumps({"batch": PULL_BATCH, "expires": 20_000_000_000}).encode()
    delivered = [0]

    async def deliver(msg: Any) -> None:
        if not msg.reply:  # a status: 408, a pull request expired; renew it
            if (msg.headers or {}).get("Status") == "408":
                await nc.publish(next_subject, request, reply=inbox)
            return
        delivered[0] += 1
        if delivered[0] % PULL_BATCH == 0:
            await nc.publish(next_subject, request, reply=inbox)
        on_message(msg.subject, msg.data)

    sub = await nc.subscribe(inbox, cb=deliver, pending_msgs_limit=-1, pending_bytes_limit=-1)
    for _ in range(2):
        await nc.publish(next_subject, request, reply=inbox)
    await nc.flush()

    async def close() -> None:
        await sub.unsubscribe()
        try:
            await js.delete_consumer(STREAM, info.name)
        except Exception:  # an ephemeral consumer goes away on its own (inactive_threshold)
            pass

    return close


async def setup(args: argparse.Namespace, stack: AsyncExitStack) -> tuple[One, Client | None]:
    """The coordination to drive, and the connection whose own messages are not the system's (or None)."""
    conn = Connection(url=args.url)
    stack.push_async_callback(conn.close)
    store = CredentialStore(Path(args.auth_dir)) if args.auth_dir else None
    if args.system == "bus":
        client = await conn.connect(
            "bench-window", auth=store.get("cli") if store else None, pending_size=64 * 1024 * 1024
        )
        observer = await conn.connect("bench-observer", auth=store.get("auditor") if store else None)
        cases = Resolutions(client, args.codes)
        stack.push_async_callback(await pull_observer(observer, cases.seen))
        return cases.one, observer
    if args.system == "raw":
        client = await conn.connect("raw-client", pending_size=64 * 1024 * 1024)
        await raw_stream(client.jetstream())
        return raw_coordination(client, "decision"), None
    if args.system == "faststream-js":
        from faststream.nats import NatsBroker

        asking = NatsBroker(args.url, logger=None)
        await asking.start()
        stack.push_async_callback(asking.stop)
        return faststream_coordination(asking, FS_SUBJECT), None
    raise SystemExit(f"unknown system {args.system!r}: bus, raw or faststream-js")


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()

    async def line() -> str:
        return (await loop.run_in_executor(None, sys.stdin.readline)).strip()

    async with AsyncExitStack() as stack:
        one, observer = await setup(args, stack)
        await drive(one, 0, args.warmup, min(args.in_flight, args.warmup))
        print("ready", flush=True)
        if await line() != "go":
            return
        sent = observer.stats["out_msgs"] if observer else 0
        seconds, latencies = await drive(one, args.warmup, args.count, args.in_flight)
        sent = (observer.stats["out_msgs"] if observer else 0) - sent
        print(json.dumps({"seconds": seconds, "latencies": latencies, "observer_msgs": sent}), flush=True)
        await line()  # stop


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    p.add_argument("system", choices=("bus", "raw", "faststream-js"))
    p.add_argument("url")
    p.add_argument("--in-flight", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--codes", nargs="*", default=["renshe", "scjg", "chengguan"])
    p.add_argument("--auth-dir", help="credentials directory written by `unstuck nats-config`")
    asyncio.run(main(p.parse_args()))

"""The replay floor: a raw nats-py ordered consumer that reads the whole stream and does nothing else.

    python -m bench.ordered_reader NATS_URL [STREAM]

Started as a process like ``unstuck replay``, so both figures include starting Python and
connecting. Prints one JSON line: events read and the seconds from connecting to the last one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from unstuck.schemas.subjects import CASE_PREFIX, STREAM


async def main(url: str, stream: str) -> None:
    started = time.perf_counter()
    nc = await nats.connect(url, name="bench-ordered-reader")
    js = nc.jetstream()
    last = (await js.stream_info(stream)).state.last_seq
    done = asyncio.get_running_loop().create_future()
    count = 0

    async def read(msg: nats.aio.msg.Msg) -> None:
        nonlocal count
        count += 1
        if msg.metadata.sequence.stream >= last and not done.done():
            done.set_result(None)

    await js.subscribe(
        f"{CASE_PREFIX}.>",
        cb=read,
        ordered_consumer=True,
        stream=stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        pending_msgs_limit=-1,
        pending_bytes_limit=-1,
    )
    await done
    print(json.dumps({"events": count, "seconds": time.perf_counter() - started}), flush=True)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else STREAM))

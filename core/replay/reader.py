"""Reading JetStream for an auditor: an ordered pull of the stream, and the heads the broker recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from unstuck.natsprivate import api_prefix_of, connection_of
from unstuck.schemas.subjects import HEADS_BUCKET

from .findings import ReplayError
from .headbook import HeadBook


def jetstream_of(target: Client | JetStreamContext) -> JetStreamContext:
    return target if isinstance(target, JetStreamContext) else target.jetstream()


class _Restart(Exception):
    """The delivery skipped a message (a reconnect) or the consumer went away: start a new consumer."""


async def read_ordered(
    js: JetStreamContext,
    stream: str,
    subject: str,
    on_message: Callable[[Any, int], None],
    end_seq: int | None = None,
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
    batch: int = 2000,
    stall_seconds: float = 20.0,
) -> int:
    """Deliver every message of ``subject`` in ``stream`` once, in order, to ``on_message(msg, stream_seq)``.

    A pull consumer without acks, read in batches with the next batch asked for while the current
    one is processed, into a plain subscription whose callback runs ``on_message`` inline: no task
    per message, and no flow-control pauses when processing is slower than the network. A skipped
    delivery (a reconnect) starts a new consumer after the last message handed over. Stops at
    ``end_seq`` or when nothing is pending; returns the number of messages delivered.
    """
    nc: Client = connection_of(js)
    api_prefix = api_prefix_of(js)
    delivered = 0
    last_sseq = 0
    restarts = 0
    while True:
        policy = deliver_policy
        start_seq = None
        if last_sseq and deliver_policy is DeliverPolicy.ALL:
            policy, start_seq = DeliverPolicy.BY_START_SEQUENCE, last_sseq + 1
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=policy,
            opt_start_seq=start_seq,
            filter_subject=None if subject == ">" else subject,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=60.0,
            max_waiting=8,
        )
        info = await js.add_consumer(stream, config)
        if info.num_pending == 0:
            await _delete_consumer(js, stream, info.name)
            return delivered
        try:
            got, last_sseq = await _pull(
                nc,
                js,
                f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{info.name}",
                on_message,
                end_seq,
                batch,
                stall_seconds,
                last_sseq,
            )
            delivered += got
            return delivered
        except _Restart as restart:
            got, last_sseq = restart.args
            delivered += got
            restarts = 0 if got else restarts + 1
            if deliver_policy is not DeliverPolicy.ALL or restarts > 3:
                raise ReplayError(f"stream {stream}: delivery broke off; try again") from None
        finally:
            await _delete_consumer(js, stream, info.name)


async def _delete_consumer(js: JetStreamContext, stream: str, name: str) -> None:
    try:
        await js.delete_consumer(stream, name)
    except Exception:  # an ephemeral consumer also goes away on its own (inactive_threshold)
        pass


async def _pull(
    nc: Client,
    js: JetStreamContext,
    next_subject: str,
    on_message: Callable[[Any, int], None],
    end_seq: int | None,
    batch: int,
    stall_seconds: float,
    last_sseq: int,
) -> tuple[int, int]:
    done = asyncio.Event()
    inbox = nc.new_inbox()
    request = json.dumps({"batch": batch, "expires": int(stall_seconds * 1e9)}).encode()
    count = 0
    cseq = 0
    failure: list[BaseException] = []

    async def deliver(msg: Any) -> None:
        nonlocal count, cseq, last_sseq
        if done.is_set():
            return
        if not msg.reply:  # status: 408 request expired, 409 consumer gone or limits, 100 heartbeat
            status = (msg.headers or {}).get("Status", "")
            if status == "408":
                await nc.publish(next_subject, request, reply=inbox)
            elif status == "409":
                failure.append(_Restart(count, last_sseq))
                done.set()
            return
        tokens = msg.reply.split(".")
        if len(tokens) == 9:
            sseq, dseq, pending = int(tokens[5]), int(tokens[6]), int(tokens[8])
        else:
            sseq, dseq, pending = int(tokens[7]), int(tokens[8]), int(tokens[10])
        if dseq != cseq + 1:
            failure.append(_Restart(count, last_sseq))
            done.set()
            return
        cseq = dseq
        try:
            on_message(msg, sseq)
        except BaseException as exc:  # surfaced to the caller, not to nats-py's error callback
            failure.append(exc)
            done.set()
            return
        count += 1
        last_sseq = sseq
        if pending == 0 or (end_seq is not None and sseq >= end_seq):
            done.set()
        elif count % batch == 0:
            await nc.publish(next_subject, request, reply=inbox)

    sub = await nc.subscribe(inbox, cb=deliver, pending_msgs_limit=-1, pending_bytes_limit=-1)
    try:
        await nc.publish(next_subject, request, reply=inbox)
        await nc.publish(next_subject, request, reply=inbox)
        seen = -1
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout=stall_seconds * 1.5)
            except TimeoutError:
                if count == seen:
                    failure.append(_Restart(count, last_sseq))
                    break
                seen = count
    finally:
        try:
            await sub.unsubscribe()
        except Exception:
            pass
    if failure:
        raise failure[0]
    return count, last_sseq


async def read_heads(js: JetStreamContext, bucket: str = HEADS_BUCKET) -> HeadBook:
    """Every case head the broker recorded in the KV bucket, read in one pass over its stream."""
    heads = HeadBook()
    prefix = f"$KV.{bucket}."
    try:
        await js.stream_info(f"KV_{bucket}")
    except nats.js.errors.NotFoundError:
        return heads

    def take(msg: Any, sseq: int) -> None:
        key = msg.subject[len(prefix) :]
        op = (msg.headers or {}).get("KV-Operation")
        if op in ("DEL", "PURGE") or not msg.data:
            heads.drop(key)
            return
        try:
            value = json.loads(msg.data)
        except ValueError:
            value = None
        if isinstance(value, dict):
            heads.put(key, value)
        else:
            heads.put(key, (-1, f"unreadable head value {msg.data[:40]!r}", 0))

    await read_ordered(js, f"KV_{bucket}", f"{prefix}>", take, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
    return heads


async def read_head(js: JetStreamContext, bucket: str, case_id: str) -> dict[str, Any] | None:
    try:
        kv = await js.key_value(bucket)
        entry = await kv.get(case_id)
    except (
        nats.js.errors.BucketNotFoundError,
        nats.js.errors.KeyNotFoundError,
        nats.js.errors.NotFoundError,
        nats.js.errors.InvalidKeyError,  # a case id no head can be recorded under (from a forged event)
    ):
        return None
    if not entry.value:
        return None
    value = json.loads(entry.value)
    return value if isinstance(value, dict) else None


def stream_prefix(subjects: list[str] | None) -> str | None:
    """The case subjects' prefix of a stream that holds ``<prefix>.<case_id>``: ``unstuck.case`` for ``unstuck.case.>``."""
    if subjects and len(subjects) == 1 and subjects[0].endswith((".>", ".*")):
        return subjects[0][:-2]
    return None

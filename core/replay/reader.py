"""Reading JetStream for an auditor: the stream in order by batched direct gets, and the heads the broker recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from unstuck.directget import DirectGetError, direct_batches
from unstuck.schemas.subjects import HEADS_BUCKET

from .findings import ReplayError
from .headbook import HeadBook


def jetstream_of(target: Client | JetStreamContext) -> JetStreamContext:
    return target if isinstance(target, JetStreamContext) else target.jetstream()


async def read_ordered(
    js: JetStreamContext,
    stream: str,
    subject: str,
    on_message: Callable[[Any, int], None],
    end_seq: int | None = None,
    batch: int = 1000,
    wait_seconds: float = 20.0,
) -> int:
    """Deliver every message of ``subject`` in ``stream`` once, in order, to ``on_message(msg, stream_seq)``.

    Batched direct gets (``unstuck.directget``): each answer comes back to this client's own inbox
    and nowhere else, so reading needs no consumer, and an auditor needs no right to create one (a
    push consumer delivers to any subject its creator names: docs/security.md). Stops at ``end_seq``
    or at the end of the stream; returns the number of messages delivered.
    """
    delivered = 0
    try:
        async for got in direct_batches(
            js, stream, subject, end_seq=end_seq, batch=batch, wait_seconds=wait_seconds
        ):
            for msg in got:
                on_message(msg, msg.seq)
            delivered += len(got)
    except DirectGetError as exc:
        raise ReplayError(str(exc)) from None
    return delivered


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

    # every kept value in order (a later one of a key replaces the earlier): the bucket's current values
    await read_ordered(js, f"KV_{bucket}", f"{prefix}>", take)
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

"""Reading JetStream for an auditor: the stream in order by batched direct gets, and the heads the broker recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from unstuck.natsprivate import api_prefix_of, connection_of
from unstuck.schemas.subjects import HEADS_BUCKET

from .findings import ReplayError
from .headbook import HeadBook


def jetstream_of(target: Client | JetStreamContext) -> JetStreamContext:
    return target if isinstance(target, JetStreamContext) else target.jetstream()


@dataclass(frozen=True, slots=True)
class Stored:
    """One message as a direct get returns it: its own subject, body and headers."""

    subject: str
    data: bytes
    headers: dict[str, str]


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

    Batched direct gets (``$JS.API.DIRECT.GET.<stream>`` with ``batch`` and ``next_by_subj``): each answer comes back to this client's own inbox and nowhere else, so reading
    needs no consumer, and an auditor needs no right to create one (a push consumer delivers to any
    subject its creator names: docs/security.md). Stops at ``end_seq`` or at the end of the stream;
    returns the number of messages delivered.
    """
    nc: Client = connection_of(js)
    api = f"{api_prefix_of(js)}.DIRECT.GET.{stream}"
    delivered, seq = 0, 1
    while True:
        request: dict[str, Any] = {"seq": seq, "batch": batch}
        if subject != ">":
            request["next_by_subj"] = subject
        got, last, more = await _direct_batch(nc, api, request, on_message, end_seq, wait_seconds)
        delivered += got
        if not more or (end_seq is not None and last >= end_seq):
            return delivered
        seq = last + 1


async def _direct_batch(
    nc: Client,
    api: str,
    request: dict[str, Any],
    on_message: Callable[[Any, int], None],
    end_seq: int | None,
    wait_seconds: float,
) -> tuple[int, int, bool]:
    """One batch: (messages handed over, the last stream sequence, whether more may follow)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, pending_msgs_limit=-1, pending_bytes_limit=-1)
    count, last, pending = 0, 0, 0
    try:
        await nc.publish(api, json.dumps(request).encode(), reply=inbox)
        while True:
            try:
                msg = await sub.next_msg(timeout=wait_seconds)
            except nats.errors.TimeoutError:
                raise ReplayError(f"{api}: no answer within {wait_seconds:.0f}s; try again") from None
            headers = dict(msg.headers or {})
            status = headers.get("Status")
            if status == "404":  # nothing at or after seq
                return count, last, False
            if status == "204":  # end of this batch
                return count, last, pending > 0
            if status == "503":  # nobody answers direct gets: the stream does not allow them
                stream = api.rpartition(".")[2]
                raise ReplayError(
                    f"stream {stream} does not answer direct gets: allow them (allow_direct, e.g. "
                    f"`nats stream edit {stream} --allow-direct`); the broker does so for its own streams"
                )
            if status:
                raise ReplayError(f"{api}: {status} {headers.get('Description', '')}".strip())
            sseq = int(headers["Nats-Sequence"])
            pending = int(headers.get("Nats-Num-Pending", "0"))
            if end_seq is not None and sseq > end_seq:
                return count, last, False
            on_message(Stored(headers.get("Nats-Subject", ""), bytes(msg.data or b""), headers), sseq)
            count, last = count + 1, sseq
    finally:
        try:
            await sub.unsubscribe()
        except Exception:
            pass


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

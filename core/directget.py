"""Reading a stream in order through batched direct gets.

``$JS.API.DIRECT.GET.<stream>`` with ``batch`` answers to the asker's own inbox and nowhere else,
so reading needs no consumer (an auditor is given no right to make one: a push consumer delivers
to any subject its creator names), and it holds one batch in memory at a time: the reader asks for
the next batch only when the caller has dealt with the last. The broker reads the history it must
fold at start-up this way; the auditor's replay reads the whole stream this way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from .natsprivate import api_prefix_of, connection_of


class DirectGetError(RuntimeError):
    """The stream could not be read by direct gets; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One message as a direct get returns it: its stream sequence, own subject, body and headers."""

    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]


async def direct_batches(
    js: JetStreamContext,
    stream: str,
    subject: str = ">",
    start_seq: int = 1,
    end_seq: int | None = None,
    batch: int = 1000,
    wait_seconds: float = 20.0,
    max_bytes: int = 4 * 1024 * 1024,
) -> AsyncIterator[list[Stored]]:
    """The messages of ``subject`` in ``stream`` from ``start_seq`` on, in order, a batch at a time
    (at most ``batch`` messages and about ``max_bytes`` each); stops at ``end_seq`` or at the end
    of the stream."""
    nc: Client = connection_of(js)
    api = f"{api_prefix_of(js)}.DIRECT.GET.{stream}"
    seq = max(start_seq, 1)
    while end_seq is None or seq <= end_seq:
        request: dict[str, Any] = {"seq": seq, "batch": batch, "max_bytes": max_bytes}
        if subject != ">":
            request["next_by_subj"] = subject
        got, more = await _one_batch(nc, api, request, end_seq, wait_seconds)
        if got:
            yield got
            seq = got[-1].seq + 1
        if not more:
            return


async def _one_batch(
    nc: Client, api: str, request: dict[str, Any], end_seq: int | None, wait_seconds: float
) -> tuple[list[Stored], bool]:
    """One batch: the messages it brought (up to ``end_seq``) and whether more may follow.

    The answers are taken by a subscription callback (no timer per message); the batch ends with a
    status message, and fails when no answer arrived for ``wait_seconds``."""
    got: list[Stored] = []
    end: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
    pending = 0

    async def take(msg: Any) -> None:
        nonlocal pending
        if end.done():
            return
        headers = dict(msg.headers or {})
        if status := headers.get("Status"):
            end.set_result((status, headers.get("Description", "")))
            return
        sseq = int(headers["Nats-Sequence"])
        if end_seq is not None and sseq > end_seq:
            end.set_result(("past_end", ""))
            return
        pending = int(headers.get("Nats-Num-Pending", "0"))
        got.append(Stored(sseq, headers.get("Nats-Subject", ""), bytes(msg.data or b""), headers))

    sub = await nc.subscribe(nc.new_inbox(), cb=take, pending_msgs_limit=-1, pending_bytes_limit=-1)
    try:
        await nc.publish(api, json.dumps(request).encode(), reply=sub.subject)
        seen = -1
        while not end.done():
            if len(got) == seen:
                raise DirectGetError(f"{api}: no answer within {wait_seconds:.0f}s; try again")
            seen = len(got)
            await asyncio.wait([end], timeout=wait_seconds)
    finally:
        try:
            await sub.unsubscribe()
        except Exception:
            pass
    status, description = end.result()
    if status == "204":  # end of this batch
        return got, pending > 0
    if status in ("404", "past_end"):  # nothing at or after seq, or past where the caller stops
        return got, False
    if status == "503":  # nobody answers direct gets: the stream does not allow them
        stream = api.rpartition(".")[2]
        raise DirectGetError(
            f"stream {stream} does not answer direct gets: allow them (allow_direct, e.g. "
            f"`nats stream edit {stream} --allow-direct`); the broker does so for its own streams"
        )
    raise DirectGetError(f"{api}: {status} {description}".strip())

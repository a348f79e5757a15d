"""The heads of the cases, recorded outside the stream: the last seq and hash of each case.

The stream is the record; the heads bucket (a JetStream KV bucket) holds, for each case, where its
record should end, so an auditor detects a cut-off tail (`tail_missing`) and an append the broker
made but never recorded (`untracked_tail`). A head is written after each append, with
compare-and-set so it never moves backwards when several brokers write; one that cannot be written
is written again in the background until it lands; a restart reconciles the heads of the last
appends with the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext

from unstuck.schemas.subjects import HEADS_BUCKET

log = logging.getLogger(__name__)


class HeadsUnavailable(Exception):
    """The head of a case kept changing under this writer."""


class HeadBook:
    """Records, repairs and reads the case heads in the KV bucket."""

    def __init__(self, js: JetStreamContext, bucket: str = HEADS_BUCKET, replicas: int = 1) -> None:
        self.js = js
        self.bucket = bucket
        self.replicas = replicas
        self.kv: Any = None
        self._missed: dict[str, tuple[int, bytes]] = {}
        self._revisions: dict[str, int] = {}  # the KV revision of each head this writer wrote last
        self._repairing: asyncio.Task[None] | None = None

    async def ensure(self) -> None:
        """Open the bucket, creating it if missing."""
        try:
            self.kv = await self.js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            self.kv = await self.js.create_key_value(
                bucket=self.bucket, history=5, replicas=self.replicas, description="case heads"
            )

    async def record(self, case_id: str, seq: int, digest: str, stream_seq: int) -> None:
        """Record the case's head (its last event's seq, hash and stream sequence); on failure it is
        written again in the background until it lands."""
        value = json.dumps({"seq": seq, "hash": digest, "stream_seq": stream_seq}).encode()
        try:
            await self._put(case_id, seq, value)
        except Exception as exc:  # the stream holds the record; the head is written again until it lands
            log.warning("head of %s not recorded: %s; retrying in the background", case_id, exc)
            self._missed[case_id] = (seq, value)
            if self._repairing is None or self._repairing.done():
                self._repairing = asyncio.create_task(self._repair())
        else:
            missed = self._missed.get(case_id)
            if missed is not None and missed[0] <= seq:
                # a newer head landed: the missed older one must not be written over it later
                del self._missed[case_id]

    async def _put(self, case_id: str, seq: int, value: bytes) -> None:
        """Record a head unless a newer one is there: another replica may write the same case, and two
        plain puts could land in the wrong order and move the recorded head backwards."""
        revision = self._revisions.get(case_id)
        for _ in range(10):
            try:
                if revision is None:
                    written = await self.kv.create(case_id, value)
                else:
                    written = await self.kv.update(case_id, value, last=revision)
                self._revisions[case_id] = int(written)
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                try:
                    entry = await self.kv.get(case_id)
                except nats.js.errors.KeyNotFoundError:
                    revision = None
                    continue
                revision = int(entry.revision or 0)
                if int(json.loads(entry.value or b"{}").get("seq", 0)) >= seq:
                    self._revisions[case_id] = revision
                    return
        raise HeadsUnavailable(f"the head of {case_id} kept changing")

    async def reconcile(self, heads: dict[str, tuple[int, str, int]]) -> int:
        """Record the heads a crashed writer appended but did not record: case -> (seq, hash, stream seq).

        A broker records a case's head right after its append; a crash in between leaves the head
        behind the stream (``untracked_tail``) until the case's next append. Returns how many were behind.
        """
        behind = 0
        for case_id, (seq, digest, stream_seq) in heads.items():
            try:
                entry = await self.kv.get(case_id)
                if int(json.loads(entry.value or b"{}").get("seq", 0)) >= seq:
                    continue
            except nats.js.errors.KeyNotFoundError:
                pass
            except Exception as exc:
                log.debug("head of %s not checked: %s", case_id, exc)
                continue
            behind += 1
            await self.record(case_id, seq, digest, stream_seq)
        return behind

    async def _repair(self) -> None:
        """Write missed heads until each lands, never over a newer head another append wrote meanwhile."""
        while self._missed:
            await asyncio.sleep(1.0)
            for case_id, (seq, value) in list(self._missed.items()):
                if self._missed.get(case_id) != (seq, value):
                    continue  # superseded by a newer head while this round was writing others
                try:
                    await self._put(case_id, seq, value)
                except Exception as exc:
                    log.debug("head of %s still not recorded: %s", case_id, exc)
                    continue
                if self._missed.get(case_id, (0, b""))[0] == seq:
                    del self._missed[case_id]

    async def read_all(self) -> dict[str, dict[str, Any]]:
        """Every case's head as the broker recorded it outside the stream."""
        out: dict[str, dict[str, Any]] = {}
        try:
            keys = await self.kv.keys()
        except nats.js.errors.NoKeysError:
            return out
        for key in keys:
            entry = await self.kv.get(key)
            if entry.value:
                out[key] = json.loads(entry.value)
        return out

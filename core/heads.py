"""The heads of the cases, recorded outside the stream: the last seq and hash of each case.

The stream is the record; the heads bucket (a JetStream KV bucket) holds, for each case, where its
record should end, so an auditor detects a cut-off tail (`tail_missing`) and an append the broker
made but never recorded (`untracked_tail`). A head is written off the append's path: the append
notes it and one background writer writes every noted head in concurrent rounds, at most one round
per ``ROUND_SECONDS`` (so a case's heads noted meanwhile are written once, as the newest), with
compare-and-set so it never moves backwards when several brokers write. While the bucket answers, a
recorded head trails its append by at most ``HEAD_LAG_SECONDS`` (a round: tens of milliseconds);
a head that cannot be written is written again every second until it lands; a broker that stops
writes its noted heads first, and a restart reconciles the heads of the last appends with the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from unstuck.schemas.subjects import HEADS_BUCKET

log = logging.getLogger(__name__)

REVISIONS_KEPT = 20_000  # cases whose last KV revision the writer remembers (most recent)
RETRY_SECONDS = 1.0  # a head that could not be written is tried again after this
ROUND_SECONDS = 0.05  # the writer starts a round at most this often: a case's heads noted meanwhile
# (its opening and its answer, under load) are written once, as the newest


async def update_made_before(js: JetStreamContext, config: Any, needs: str) -> None:
    """Update a stream or bucket an older unstuck made. On a bus with authorisation the broker may not
    update streams (an update can shrink the record: docs/security.md): the server drops the request,
    and this says what the operator must change instead of a bare timeout."""
    try:
        await js.update_stream(config)
    except nats.errors.TimeoutError as exc:
        raise RuntimeError(
            f"stream {config.name} was made by an older unstuck and needs {needs}; on a bus with "
            "authorisation the broker may not update streams: have the server's operator make that change "
            "once (a user added by hand to the bus account, e.g. `nats stream edit`), then start again"
        ) from exc


class HeadsUnavailable(Exception):
    """The head of a case kept changing under this writer."""


class HeadBook:
    """Records, repairs and reads the case heads in the KV bucket."""

    def __init__(self, js: JetStreamContext, bucket: str = HEADS_BUCKET, replicas: int = 1) -> None:
        self.js = js
        self.bucket = bucket
        self.replicas = replicas
        self.kv: Any = None
        self._noted: dict[str, tuple[int, bytes]] = {}  # case -> (seq, value) waiting to be written
        # case -> (KV revision, seq) known last, for the most recent REVISIONS_KEPT cases; an older one
        # costs a read of the bucket on its next write
        self._revisions: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._round_started = 0.0

    async def ensure(self) -> None:
        """Open the bucket, creating it if missing, with direct gets allowed (an auditor reads the
        heads with them, needing no consumer: docs/security.md)."""
        try:
            self.kv = await self.js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            self.kv = await self.js.create_key_value(
                bucket=self.bucket, history=5, replicas=self.replicas, description="case heads", direct=True
            )
            return
        info = await self.js.stream_info(f"KV_{self.bucket}")
        if not info.config.allow_direct:  # a bucket made before direct gets
            info.config.allow_direct = True
            await update_made_before(self.js, info.config, "direct gets allowed (allow_direct)")
            self.kv = await self.js.key_value(self.bucket)

    def note(self, case_id: str, seq: int, digest: str, stream_seq: int) -> None:
        """Record the case's head (its last event's seq, hash and the stream sequence of its last
        message) off the caller's path: the background writer writes it at once."""
        noted = self._noted.get(case_id)
        if noted is not None and noted[0] >= seq:
            return  # a newer head of the case is noted already
        value = json.dumps({"seq": seq, "hash": digest, "stream_seq": stream_seq}).encode()
        self._noted[case_id] = (seq, value)
        self._idle.clear()
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_noted())

    @property
    def pending(self) -> int:
        """Heads noted and not written yet."""
        return len(self._noted)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every noted head is written; False when ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Write the noted heads (for up to ``timeout`` seconds), then stop the writer."""
        if not await self.flush(timeout):
            log.warning("%d case head(s) not recorded at stop; the next start reconciles them", self.pending)
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except BaseException:  # cancelled, or it failed: nothing is left to wait for
                pass
            self._writer = None

    async def _write_noted(self) -> None:
        """The one writer: each round writes every head noted so far, concurrently."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(max(0.0, self._round_started + ROUND_SECONDS - loop.time()))
            self._round_started = loop.time()
            if not self._noted:
                self._idle.set()
                continue
            batch, self._noted = self._noted, {}
            results = await asyncio.gather(
                *(self._put(case_id, seq, value) for case_id, (seq, value) in batch.items()),
                return_exceptions=True,
            )
            failed = 0
            for (case_id, (seq, value)), result in zip(batch.items(), results, strict=True):
                if isinstance(result, BaseException):
                    failed += 1
                    noted = self._noted.get(case_id)
                    if noted is None or noted[0] < seq:  # not superseded by a newer head meanwhile
                        self._noted[case_id] = (seq, value)
            if failed:
                log.warning("%d case head(s) not recorded; retrying in %.0f s", failed, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
            if self._noted:
                self._wake.set()
            else:
                self._idle.set()

    def _remember(self, case_id: str, known: tuple[int, int]) -> None:
        self._revisions[case_id] = known
        self._revisions.move_to_end(case_id)
        if len(self._revisions) > REVISIONS_KEPT:
            self._revisions.popitem(last=False)

    async def _put(self, case_id: str, seq: int, value: bytes) -> None:
        """Record a head unless a newer one is there: another replica may write the same case, and two
        plain puts could land in the wrong order and move the recorded head backwards.

        Each write is a compare-and-set on the revision whose head this writer knows (its own last
        write, or the newer head it found there); a known head at ``seq`` or beyond means nothing is
        left to write, so a head noted late can never replace a newer one."""
        known = self._revisions.get(case_id)  # (revision, seq of the head at that revision)
        for _ in range(10):
            if known is not None and known[1] >= seq:
                return
            try:
                if known is None:
                    written = await self.kv.create(case_id, value)
                else:
                    written = await self.kv.update(case_id, value, last=known[0])
                self._remember(case_id, (int(written), seq))
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                try:
                    entry = await self.kv.get(case_id)
                except nats.js.errors.KeyNotFoundError:
                    known = None
                    continue
                known = (int(entry.revision or 0), int(json.loads(entry.value or b"{}").get("seq", 0)))
                self._remember(case_id, known)
        raise HeadsUnavailable(f"the head of {case_id} kept changing")

    async def reconcile(self, heads: dict[str, tuple[int, str, int]]) -> int:
        """Record the heads a crashed writer appended but did not record: case -> (seq, hash, stream seq).

        A broker notes a case's head right after its append; a crash before the writer wrote it
        leaves the head behind the stream (``untracked_tail``) until the case's next append. Returns
        how many were behind; they are written before this returns (or left to the writer's retries).
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
            self.note(case_id, seq, digest, stream_seq)
        if behind:
            await self.flush(timeout=10.0)
        return behind

    async def read_all(self) -> dict[str, dict[str, Any]]:
        """Every case's head as the broker recorded it outside the stream.

        The keys come from the bucket stream's own subject list, which the server answers exactly;
        nats-py's ``kv.keys()`` watcher can report its end before the last keys arrive.
        """
        out: dict[str, dict[str, Any]] = {}
        prefix = f"$KV.{self.bucket}."
        info = await self.js.stream_info(f"KV_{self.bucket}", subjects_filter=f"{prefix}>")
        for subject in info.state.subjects or {}:
            try:
                entry = await self.kv.get(subject[len(prefix) :])
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):  # deleted or purged
                continue
            if entry.value:
                out[entry.key] = json.loads(entry.value)
        return out

"""Case ids and client refs, both kept in the ids KV bucket so every broker replica agrees.

A case id is ``<prefix>-<yyyymmdd>-<n>``, n from a counter per local day. A broker reserves the
numbers in blocks of ``ID_BLOCK`` (one compare-and-set on the counter per block, not per case) and
hands them out in order; numbers are unique, a block left unused when its broker stops is a gap, and
with several replicas the numbers interleave by block (docs/lifecycle.md, "Case numbers"). A
client_ref (the requester's own key for an open) is reserved for the first case opened with it, so a
retried open finds that case whichever replica it reaches.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

import nats.js.errors

from unstuck import lifecycle as lc
from unstuck.clock import Clock, local_date
from unstuck.schemas.subjects import IDS_BUCKET

from .errors import ApiFailure

ID_BLOCK = 20
"""Case numbers a broker reserves at a time."""


@dataclass(eq=False)
class CaseIds:
    js: Any
    prefix: str
    replicas: int
    clock: Clock
    _bucket: Any = None  # opened on first use
    block: int = ID_BLOCK
    # day prefix -> (counter, revision) written last
    _last: dict[str, tuple[int, int]] = field(default_factory=dict)
    # day prefix -> (next number to hand out, last number of the reserved block)
    _reserved: dict[str, tuple[int, int]] = field(default_factory=dict)
    _locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))

    async def bucket(self) -> Any:
        if self._bucket is None:
            try:
                self._bucket = await self.js.key_value(IDS_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                self._bucket = await self.js.create_key_value(
                    bucket=IDS_BUCKET, history=1, replicas=self.replicas
                )
        return self._bucket

    async def allocate(self) -> str:
        day = local_date(self.clock.now()).strftime("%Y%m%d")
        prefix = f"{self.prefix}-{day}"
        # One reservation at a time in this broker: concurrent opens would race each other on the same
        # key and run out of tries; they wait for the block being reserved and share it.
        async with self._locks[prefix]:
            n, last = self._reserved.get(prefix, (1, 0))
            if n > last:
                n, last = await self._reserve(prefix)
            self._reserved = {prefix: (n + 1, last)}
            return f"{prefix}-{n:04d}"

    async def _reserve(self, prefix: str) -> tuple[int, int]:
        """Reserve the next block of numbers of the day: (first, last). The counter this broker wrote
        last is tried first (one round trip); another replica's write makes that fail, and the
        counter is read again."""
        ids = await self.bucket()
        known = self._last.get(prefix)
        for _ in range(50):
            try:
                if known is None:
                    entry = await ids.get(prefix)
                    known = (int(entry.value or b"0"), int(entry.revision or 0))
                end = known[0] + self.block
                revision = await ids.update(prefix, str(end).encode(), last=known[1])
            except nats.js.errors.KeyNotFoundError:
                end = self.block
                try:
                    revision = await ids.create(prefix, str(end).encode())
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
            except nats.js.errors.KeyWrongLastSequenceError:
                known = None
                continue
            self._last = {prefix: (end, revision)}
            return end - self.block + 1, end
        raise ApiFailure("conflict", "could not allocate a case id under contention; try again")

    async def ref_holder(self, ref: str, candidate: str | None) -> str | None:
        """The case that holds a client_ref: reserved earlier (by any replica or try), else ``candidate``."""
        key = "ref." + hashlib.sha256(ref.encode()).hexdigest()[:40]
        ids = await self.bucket()
        if candidate is not None:
            try:
                await ids.create(key, candidate.encode())
                return candidate
            except nats.js.errors.KeyWrongLastSequenceError:
                pass
        try:
            entry = await ids.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        return (entry.value or b"").decode() or None


@dataclass(eq=False)
class ClientRefs:
    """client_ref -> case id of the cases this broker has seen opened (the bucket answers the rest)."""

    cases: OrderedDict[str, str] = field(default_factory=OrderedDict)
    kept: int = 20_000  # the most recent; older ones are answered by the bucket

    def observe(self, old: lc.CaseState, new: lc.CaseState, event_type: str) -> None:
        if event_type == "case.opened" and new.intake.get("client_ref"):
            self.cases[new.intake["client_ref"]] = new.case_id
            if len(self.cases) > self.kept:
                self.cases.popitem(last=False)

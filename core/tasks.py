"""Asyncio helpers: stopping background tasks within a bound, and one lock per key.

A cancel can be swallowed inside a library call (a NATS request that turns CancelledError into its
own error), so a plain ``gather`` after ``cancel`` may wait forever; stopping must not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    """Cancel tasks and wait for them, at most ``timeout``; a task still running then is logged and left."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        _, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            log.warning("task %s did not stop within %.0fs", task.get_name(), timeout)


class KeyedLocks:
    """One asyncio lock per key (a case, a client reference), kept only while a task holds or awaits
    it: a long-running broker does not keep a lock for every case it has ever seen."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> (lock, tasks holding or waiting)

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

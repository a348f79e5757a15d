"""Stopping background asyncio tasks within a bound.

A cancel can be swallowed inside a library call (a NATS request that turns CancelledError into its
own error), so a plain ``gather`` after ``cancel`` may wait forever; stopping must not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
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

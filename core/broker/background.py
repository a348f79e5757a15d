"""The broker's background tasks: spawned, paused and stopped together."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from unstuck.tasks import cancel_and_wait


@dataclass(eq=False)
class Background:
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def spawn(self, coro: Coroutine[Any, Any, Any], done: Callable[[Any], None] | None = None) -> None:
        # a fresh context: a task spawned while a request is served never acts under its caller's identity
        task = asyncio.create_task(coro, context=contextvars.Context())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if done is not None:
            task.add_done_callback(done)

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the broker stops (a cancel can be swallowed inside a NATS request)."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        self.stopping.set()
        await cancel_and_wait(self.tasks)

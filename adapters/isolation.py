"""Where adapter code runs: never on the event loop that serves NATS, never one adapter in another's way.

Each adapter gets its own event loop on its own daemon thread (``AdapterLoop``): an ``async def``
hook runs there, so a hook that blocks (``time.sleep`` inside ``async def``) stalls its own loop
only. A plain ``def`` hook runs in a daemon worker thread of its own (``in_worker_thread``), as
Starlette runs plain endpoints in a thread pool. Daemon threads, because a hook blocked for good
must not hold the process at exit: Ctrl-C stops the host at once and the thread dies with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


def in_worker_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """Run ``fn`` in a new daemon thread; the returned future (of the running loop) gets its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if future.done():  # the caller gave up (cancelled) meanwhile
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the awaiting task, which logs it
            with contextlib.suppress(RuntimeError):  # the loop closed: the process is stopping
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name=f"unstuck-hook-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return future


class AdapterLoop:
    """An event loop of one adapter's own, on a daemon thread, running until ``stop``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"unstuck-adapter-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, make: Callable[[], Coroutine[Any, Any, T]]) -> Future[T]:
        """Run ``make()`` on the adapter's loop; the coroutine is created there, so a loop that never
        gets to it (blocked, then stopped) leaves no coroutine behind. The future settles from that thread."""
        future: Future[T] = Future()

        def settle(task: asyncio.Task[T]) -> None:
            if future.cancelled():
                return
            if task.cancelled():
                future.cancel()
            elif (exc := task.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(task.result())

        def start() -> None:
            if future.set_running_or_notify_cancel():
                self.loop.create_task(make()).add_done_callback(settle)

        self.loop.call_soon_threadsafe(start)
        return future

    async def responsive(self, within: float = 0.25) -> bool:
        """Whether the adapter's loop runs a callback within ``within`` seconds (False: a hook blocks it)."""
        caller = asyncio.get_running_loop()
        answered = caller.create_future()

        def answer() -> None:
            if not answered.done():
                answered.set_result(True)

        def ping() -> None:
            with contextlib.suppress(RuntimeError):
                caller.call_soon_threadsafe(answer)

        try:
            self.loop.call_soon_threadsafe(ping)
        except RuntimeError:  # stopped
            return False
        try:
            return bool(await asyncio.wait_for(answered, within))
        except TimeoutError:
            return False

    def stop(self) -> None:
        """Stop the loop (a hook blocking it keeps the daemon thread until it returns or the process ends)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)

"""tasks.KeyedLocks: one lock per key while it is used, none kept afterwards."""

from __future__ import annotations

import asyncio

from unstuck.tasks import KeyedLocks


async def test_holders_of_one_key_take_turns_and_other_keys_do_not_wait():
    locks = KeyedLocks()
    events: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("DD-1"):
            events.append("first in")
            inside.set()
            await release.wait()
            events.append("first out")

    async def second() -> None:
        await inside.wait()
        async with locks.hold("DD-1"):
            events.append("second in")

    async def other() -> None:
        await inside.wait()
        async with locks.hold("DD-2"):
            events.append("other in")

    tasks = [asyncio.create_task(t()) for t in (first, second, other)]
    await inside.wait()
    for _ in range(5):
        await asyncio.sleep(0)
    assert events == ["first in", "other in"]  # DD-2 went ahead; the second DD-1 holder waits
    assert len(locks) == 1  # DD-1, held and awaited; DD-2 already gone
    release.set()
    await asyncio.gather(*tasks)
    assert events == ["first in", "other in", "first out", "second in"]
    assert len(locks) == 0


async def test_a_holder_that_fails_releases_and_forgets_its_key():
    locks = KeyedLocks()
    try:
        async with locks.hold("DD-3"):
            raise ValueError("refused")
    except ValueError:
        pass
    assert len(locks) == 0
    async with locks.hold("DD-3"):  # free again
        assert len(locks) == 1

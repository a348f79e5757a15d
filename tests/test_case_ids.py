"""Case numbers: reserved in blocks of ID_BLOCK per broker, unique across replicas, gaps allowed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from unstuck.broker.ids import ID_BLOCK, CaseIds
from unstuck.clock import SimulatedClock

MORNING = datetime(2026, 9, 28, 1, 0, tzinfo=UTC)  # 09:00 on 28 September in China


def ids(nats_client, clock: SimulatedClock) -> CaseIds:
    return CaseIds(nats_client.jetstream(), "DD", 1, clock)


async def counter(nats_client) -> int:
    bucket = await nats_client.jetstream().key_value("UNSTUCK_IDS")
    return int((await bucket.get("DD-20260928")).value)


async def test_one_broker_numbers_the_day_in_order_across_its_blocks(nats_client):
    assert ID_BLOCK == 20
    broker = ids(nats_client, SimulatedClock(MORNING))
    numbers = [await broker.allocate() for _ in range(25)]
    assert numbers == [f"DD-20260928-{n:04d}" for n in range(1, 26)]
    assert await counter(nats_client) == 40  # two blocks reserved: 1-20 and 21-40


async def test_a_restarted_broker_starts_after_the_block_it_had_reserved(nats_client):
    clock = SimulatedClock(MORNING)
    first = ids(nats_client, clock)
    assert [await first.allocate() for _ in range(2)] == ["DD-20260928-0001", "DD-20260928-0002"]
    again = ids(nats_client, clock)  # the broker restarted: 3 to 20 are never used (a gap)
    assert await again.allocate() == "DD-20260928-0021"


async def test_replicas_opening_at_once_never_share_a_number(nats_client):
    clock = SimulatedClock(MORNING)
    a, b = ids(nats_client, clock), ids(nats_client, clock)
    got = await asyncio.gather(*(replica.allocate() for _ in range(30) for replica in (a, b)))
    assert len(set(got)) == 60
    # each replica hands out whole blocks: every number falls in one of the blocks reserved
    assert await counter(nats_client) == 80
    assert {int(n[-4:]) for n in got} <= set(range(1, 81))


async def test_a_new_day_starts_again_at_one(nats_client):
    clock = SimulatedClock(MORNING)
    broker = ids(nats_client, clock)
    assert await broker.allocate() == "DD-20260928-0001"
    clock.advance(timedelta(days=1))
    assert await broker.allocate() == "DD-20260929-0001"
    assert await broker.allocate() == "DD-20260929-0002"

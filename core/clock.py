"""The two clocks, never mixed in one figure.

The case clock (``Clock``) is the one every rule reads and the record is stamped with: system time in
production, simulated time in tests and the demo. The wall clock (``WallClock``) is for operators
only: reply latencies, a department's last good reply, how long an append took, the time an adapter
must answer by. Nothing read from the wall clock is written into a case's record.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Protocol

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock start must be timezone-aware (e.g. 2026-09-28T09:00+08:00)")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not run backwards")
        self._now += delta
        return self._now

    def set(self, instant: datetime) -> datetime:
        return self.advance(instant.astimezone(UTC) - self._now)


class WallClock:
    """The process's real time (see the module docstring), whatever the case clock says."""

    def unix(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def counter(self) -> float:
        """Seconds on a monotonic counter, for durations."""
        return time.perf_counter()


WALL = WallClock()


def local_date(instant: datetime) -> date:
    """The calendar date at the service centre (China time) of an instant."""
    return instant.astimezone(CHINA).date()

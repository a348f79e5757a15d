"""``unstuck status``: departments ranked worst first, from figures kept up to date event by event.

Two clocks, each named: how long a coordination has been pending, and the report's ``at``, are case
time (the clock the record is stamped with, simulated in tests and the demo); how long ago a
department last answered well is wall time (the coordinator stamps replies as they arrive).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from unstuck import lifecycle as lc
from unstuck.clock import Clock, WallClock
from unstuck.coordinator import Coordinator
from unstuck.metrics import PendingCoordinations

from .casebook import CaseBook


@dataclass(eq=False)
class StatusReport:
    departments: Mapping[str, str]
    figures: Coordinator  # each department's policy and reply figures
    waiting: PendingCoordinations  # since when coordinations wait, in case time
    stalled_counts: Mapping[str, int]
    book: CaseBook  # its open cases, and how many cases were ever opened
    clock: Clock
    wall: WallClock
    calendar_warnings: Callable[[], list[str]] = lambda: []  # what operators must do about the calendar

    def status(self) -> dict[str, Any]:
        now, wall_now = self.clock.now(), self.wall.unix()
        rows = [self._row(dept, now.timestamp(), wall_now) for dept in sorted(self.departments)]
        # worst first: stalled now, then waiting now, then trouble so far, then slow replies
        rows.sort(
            key=lambda r: (
                -r["stalled"],
                -r["pending"],
                -(r["oldest_pending_seconds"] or 0),
                -r["failures"],
                -r["retry_rate"],
                -(r["p95_seconds"] or 0),
                r["department"],
            )
        )
        open_cases = 0
        overdue: dict[str, int] = {}
        for s in self.book.states.values():
            if s.state in lc.OPEN_STATES:
                open_cases += 1
                if s.overdue:
                    cat = s.category or "unclassified"
                    overdue[cat] = overdue.get(cat, 0) + 1
        return {
            "departments": rows,
            "open_cases": open_cases,
            "overdue_cases": sum(overdue.values()),
            "overdue_by_category": dict(sorted(overdue.items())),
            "cases": self.book.known_cases,
            "at": now.isoformat(),
            "warnings": self.calendar_warnings(),
        }

    def _row(self, dept: str, case_now: float, wall_now: float) -> dict[str, Any]:
        stats = self.figures.department_stats(dept)
        policy = self.figures.policy(dept)
        oldest = self.waiting.oldest(dept)  # case time: since the coordination was requested
        return {
            "department": dept,
            "name": self.departments[dept],
            "stalled": self.stalled_counts.get(dept, 0),
            "pending": self.waiting.count(dept),
            "oldest_pending_seconds": max(0.0, case_now - oldest) if oldest else None,
            "p50_seconds": stats.p(0.5),
            "p95_seconds": stats.p(0.95),
            "attempts": stats.attempts,
            "retries": stats.retries,
            "retry_rate": (stats.retries / stats.attempts) if stats.attempts else 0.0,
            "timeouts": stats.timeouts,
            "errors": stats.errors + stats.invalid,
            "invalid_replies": stats.invalid,
            "no_responders": stats.no_responders,
            "failures": stats.timeouts + stats.errors + stats.invalid + stats.no_responders,
            "last_good_reply_seconds_ago": (wall_now - stats.last_good_reply)
            if stats.last_good_reply
            else None,
            "reply_timeout_seconds": policy.timeout_seconds,
            "concurrency": policy.concurrency,
        }

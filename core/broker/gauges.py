"""The case gauges (open, overdue, pending, stalled), moved by the difference each change makes.

No scan at scrape time: each applied event moves only what it changed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from unstuck import lifecycle as lc
from unstuck.metrics import Metrics


def _waiting(state: lc.CaseState) -> dict[str, tuple[str, bool]]:
    return {
        c.request_id: (c.department, c.status == "stalled")
        for c in state.coordinations.values()
        if c.awaiting_reply
    }


@dataclass(eq=False)
class CaseGauges:
    metrics: Metrics
    stalled_counts: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))  # by department

    def account(self, old: lc.CaseState, new: lc.CaseState, event_type: str) -> None:
        m = self.metrics
        was_open = old.exists and old.state in lc.OPEN_STATES
        is_open = new.state in lc.OPEN_STATES
        old_cat = old.category or "unclassified"
        new_cat = new.category or "unclassified"
        if (was_open, old_cat, was_open and old.overdue) != (is_open, new_cat, is_open and new.overdue):
            # most events leave a case open in its category: no gauge to move
            if was_open:
                m.open_cases.labels(old_cat).dec()
                if old.overdue:
                    m.overdue_cases.labels(old_cat).dec()
            if is_open:
                m.open_cases.labels(new_cat).inc()
                if new.overdue:
                    m.overdue_cases.labels(new_cat).inc()
        old_pending = _waiting(old) if was_open else {}
        new_pending = _waiting(new) if is_open else {}
        for rid, (dept, stalled) in old_pending.items():
            if new_pending.get(rid) != (dept, stalled):
                m.pending.labels(dept).dec()
                if stalled:
                    self._stall_count(dept, -1)
            if rid not in new_pending:
                m.waiting.forget(rid)
        for rid, (dept, stalled) in new_pending.items():
            if old_pending.get(rid) != (dept, stalled):
                m.pending.labels(dept).inc()
                if stalled:
                    self._stall_count(dept, +1)
            since = new.coordinations[rid].requested_at or new.last_event_at
            m.waiting.track(dept, rid, since.timestamp() if since else m.now())

    def _stall_count(self, dept: str, delta: int) -> None:
        self.stalled_counts[dept] += delta
        self.metrics.stalled.labels(dept).set(1 if self.stalled_counts[dept] > 0 else 0)

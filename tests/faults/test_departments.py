"""Departments that hang, crash, answer garbage, answer twice or answer after their timeout.

Each misbehaving department is its own process beside the three healthy built-in ones. Retries and
dedup must behave, the metrics must count each kind of fault, stalls must escalate, and the healthy
departments must not notice.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nats.aio.client import Client

from unstuck.embedded import EmbeddedNats

from .harness import (
    BUILTIN,
    Bus,
    Load,
    StreamCount,
    count_stream,
    department_stats,
    metric,
    record,
    scrape,
    verify,
    wait_for,
)

pytestmark = pytest.mark.slow

FAULTY = {"hangs": "hang", "crashes": "ok", "garbage": "garbage", "twice": "twice", "late": "late"}
STALLING = ("hangs", "garbage")
FAST_FAIL = {"timeout_seconds": 0.5, "attempts": 3, "stalled_retry_seconds": 1.0}


def _department_of(count: StreamCount, case_id: str) -> str:
    return str(count.events_of(case_id, "case.opened")[0]["data"]["department"])


def _stalled_and_escalated(count: StreamCount, case_id: str) -> bool:
    stalls = count.events_of(case_id, "coordination.stalled")
    escalations = [e for e in count.events_of(case_id, "case.escalated") if e["data"]["reason"] == "stalled"]
    return bool(stalls) and bool(escalations)


def _settled(count: StreamCount, case_id: str) -> bool:
    if _department_of(count, case_id) in STALLING:
        return _stalled_and_escalated(count, case_id)
    return count.resolved(case_id)


async def test_misbehaving_departments_are_retried_counted_and_escalated_and_the_others_do_not_notice(
    nats_server: EmbeddedNats, make_bus: Callable[..., Bus], observer: Client, tmp_path
) -> None:
    departments = {code: {"retry": FAST_FAIL} for code in FAULTY}
    departments["late"] = {"retry": {**FAST_FAIL, "attempts": 5}}
    for code in BUILTIN:  # generous: on a loaded machine a healthy department must not look faulty
        departments[code] = {"retry": {"timeout_seconds": 10.0}}
    bus = make_bus(nats_server.url, departments=departments)
    procs = {code: bus.department(code, mode, delay=0.8).start() for code, mode in FAULTY.items()}
    broker = bus.broker(adapters=BUILTIN).start()
    load = Load(nats_server.url, "departments", total=160, departments=(*BUILTIN, *FAULTY)).start()

    await load.wait_accepted(40)
    procs["crashes"].kill()  # the department's process dies mid-load

    async def crashes_stalled() -> bool:
        count = await count_stream(observer)
        return any(
            _department_of(count, c) == "crashes" and count.events_of(c, "coordination.stalled")
            for c in load.accepted.values()
            if c in count.cases
        )

    await load.finish()
    await wait_for(crashes_stalled, 60, "a coordination with the dead department stalled")
    procs["crashes"].start()  # back: the slow schedule asks again and gets the answers

    verdict = await verify(observer, nats_server.url, tmp_path, "departments", load, settled=_settled)
    count = verdict.count
    samples = scrape(broker)
    by_dept: dict[str, list[str]] = {}
    for case_id in load.accepted.values():
        by_dept.setdefault(_department_of(count, case_id), []).append(case_id)

    def m(name: str, code: str, **labels: str) -> int:
        return int(metric(samples, name, department=code, **labels))

    per_department = {
        code: {
            "cases": len(by_dept.get(code, [])),
            "resolved": sum(1 for c in by_dept.get(code, []) if count.resolved(c)),
            "stalled_and_escalated": sum(
                1 for c in by_dept.get(code, []) if _stalled_and_escalated(count, c)
            ),
            "replies_recorded": sum(
                len(count.events_of(c, "coordination.replied")) for c in by_dept.get(code, [])
            ),
            "timeouts": m("unstuck_coordination_requests_total", code, outcome="timeout"),
            "no_responders": m("unstuck_coordination_requests_total", code, outcome="no_responders"),
            "invalid_replies": m("unstuck_coordination_invalid_replies_total", code),
            "retries": m("unstuck_coordination_retries_total", code),
            "stalls": m("unstuck_coordination_stalls_total", code),
        }
        for code in (*BUILTIN, *FAULTY)
    }
    twice = await department_stats(observer, "twice")
    record(
        "departments",
        {
            **verdict.figures(),
            "per_department": per_department,
            "twice_answers_sent": 2 * twice["handled"],
        },
    )
    assert verdict.cases_in == 160
    assert verdict.lost == 0
    assert verdict.duplicated == 0  # among others: never two replies recorded for one request_id
    assert verdict.findings == 0, verdict.replay
    assert verdict.replay_exit == 0
    assert verdict.unsettled == []
    assert broker.alive, broker.log_tail()

    d = per_department
    # hangs: every attempt times out, every case stalls and escalates, nothing is recorded as answered
    assert d["hangs"]["timeouts"] > 0 and d["hangs"]["stalls"] == d["hangs"]["cases"]
    assert d["hangs"]["stalled_and_escalated"] == d["hangs"]["cases"] and d["hangs"]["replies_recorded"] == 0
    # garbage: every answer is refused as invalid and counted; the cases stall and escalate
    assert d["garbage"]["invalid_replies"] > 0 and d["garbage"]["replies_recorded"] == 0
    assert d["garbage"]["stalled_and_escalated"] == d["garbage"]["cases"]
    # crashes: no responders while the process is dead; once back, every case is answered
    assert d["crashes"]["no_responders"] > 0 and d["crashes"]["stalls"] > 0
    assert d["crashes"]["resolved"] == d["crashes"]["cases"] == d["crashes"]["replies_recorded"]
    # twice: the first answer counts, the second is dropped; one reply per request
    assert d["twice"]["resolved"] == d["twice"]["cases"] == d["twice"]["replies_recorded"]
    assert d["twice"]["invalid_replies"] == 0
    assert all(
        e["data"]["message"] == "first answer"
        for c in by_dept["twice"]
        for e in count.events_of(c, "coordination.replied")
    )
    # late: the first attempt times out, the retry gets the remembered answer, recorded once
    assert d["late"]["timeouts"] > 0
    assert d["late"]["resolved"] == d["late"]["cases"] == d["late"]["replies_recorded"]
    # the healthy departments: every case answered once, none stalled, nothing invalid
    for code in BUILTIN:
        assert d[code]["resolved"] == d[code]["cases"] == d[code]["replies_recorded"], code
        assert d[code]["stalls"] == 0 and d[code]["invalid_replies"] == 0, code

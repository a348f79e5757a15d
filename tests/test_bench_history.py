"""The scale benchmark's history generator at a tiny size: the stream it writes replays clean.

50 closed cases: 4 messages each (the opening, the reply, the closing, the evaluation), 7 events
(opened, classified, requested; replied, resolved; closed; evaluated): 200 messages, 350 events.
5 open cases, case j in OPEN_STATES[j % 5] and overdue when j % 10 is 1, 3, 6 or 8:
j=0 intake (opened): 1 message, 1 event; j=1 coordinating and overdue (opening, the department's
"accepted", overdue + escalated): 3 messages, 6 events; j=2 coordinating: 2 messages, 4 events;
j=3 answered and overdue: 3 messages, 7 events; j=4 answered: 2 messages, 5 events.
In all 55 cases, 211 messages, 373 events.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.streamgen import HistorySpec, generate_history
from unstuck.embedded import EmbeddedNats

ROOT = Path(__file__).resolve().parents[1]


def test_history_replays_clean(nats_server: EmbeddedNats) -> None:
    counts = generate_history(nats_server.url, HistorySpec(closed=50, open=5), jobs=2, log=lambda _: None)
    assert (counts.cases, counts.messages, counts.events, counts.overdue) == (55, 211, 373, 2)
    assert counts.by_state == {"evaluated": 50, "intake": 1, "coordinating": 2, "answered": 2}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "unstuck",
            "replay",
            "--verify",
            "--nats",
            nats_server.url,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    summary = report["summary"]
    assert summary["findings"] == 0 and summary["ok"] and summary["verified"]
    assert (summary["cases"], summary["events"], summary["last_stream_seq"]) == (55, 373, 211)
    assert summary["heads_checked"] == 55
    states = sorted(c["state"]["state"] for c in report["cases"])
    assert states == sorted(
        ["evaluated"] * 50 + ["intake", "coordinating", "coordinating", "answered", "answered"]
    )
    assert sum(1 for c in report["cases"] if c["overdue"]) == 2

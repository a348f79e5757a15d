"""``unstuck ledger`` as operators run it, each command its own process against a real nats-server:
``run`` killed with SIGKILL in the middle of catching up and started again loses and doubles nothing;
``rebuild`` projects a stream from scratch; ``check`` finds a row altered behind the projector's back;
``status`` shows the lag. The streams are written fast by the benchmarks' generator: every case is 8
events in 5 messages (opened, classified and requested; retried; replied and resolved; closed;
evaluated good), so each case ends evaluated, with one coordination and one rating.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENV_DROP = ("NATS_URL", "UNSTUCK_CONFIG", "UNSTUCK_DATA_DIR")


async def fill(nc: Any, cases: int) -> int:
    """``cases`` closed and rated cases in the stream; its last sequence (5 messages a case)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.streamgen import CLOSED_CASE, generate

    made = await generate(nc, events=cases * len(CLOSED_CASE), kinds=CLOSED_CASE)
    assert made.messages == cases * 5
    return made.messages


def command(server: Any, tmp_path: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "unstuck",
        "ledger",
        *args,
        "--url",
        f"sqlite:///{tmp_path / 'ledger.sqlite'}",
    ]


def environment(server: Any, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env["NATS_URL"] = server.url
    env["UNSTUCK_DATA_DIR"] = str(tmp_path / "data")
    return env


def ledger(server: Any, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(server, tmp_path, *args),
        cwd=tmp_path,
        env=environment(server, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def position(tmp_path: Path) -> int:
    """The projector's position as the database holds it (0 before its first batch)."""
    path = tmp_path / "ledger.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=5) as db:
        try:
            row = db.execute(
                "SELECT last_seq FROM ledger_position WHERE projection = 'unstuck_ledger'"
            ).fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return 0
    return int(row[0]) if row else 0


def counts(tmp_path: Path) -> dict[str, Any]:
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "cases": one("SELECT count(*) FROM ledger_cases"),
            "distinct cases": one("SELECT count(DISTINCT case_id) FROM ledger_cases"),
            "evaluated": one(
                "SELECT count(*) FROM ledger_cases WHERE state = 'evaluated' AND rating = 'good'"
            ),
            "coordinations": one("SELECT count(*) FROM ledger_coordinations"),
            "ratings": one("SELECT count(*) FROM ledger_ratings"),
            "ratings per case": one(
                "SELECT max(n) FROM (SELECT count(*) n FROM ledger_ratings GROUP BY case_id)"
            ),
        }


async def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_a_projector_killed_mid_catch_up_resumes_and_loses_and_doubles_nothing(
    nats_server, nats_client, tmp_path
):
    last = await fill(nats_client, 800)  # 4,000 messages
    assert last == 4000
    run = command(nats_server, tmp_path, "run", "--batch", "20")
    env = environment(nats_server, tmp_path)
    first = subprocess.Popen(run, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        await until(lambda: position(tmp_path) >= 600 or first.poll() is not None, 60, "the first batches")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = position(tmp_path)
    assert 600 <= killed_at < last, f"the projector was not killed mid catch-up (at {killed_at} of {last})"

    second = subprocess.Popen(run, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        await until(lambda: position(tmp_path) == last or second.poll() is not None, 60, "the whole stream")
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=20)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, err
    assert position(tmp_path) == last
    assert counts(tmp_path) == {
        "cases": 800,
        "distinct cases": 800,
        "evaluated": 800,
        "coordinations": 800,
        "ratings": 800,
        "ratings per case": 1,
    }
    checked = ledger(nats_server, tmp_path, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "the ledger matches the replay: 800 case(s) compared"


async def test_rebuild_then_check_finds_an_altered_row_and_status_shows_the_lag(
    nats_server, nats_client, tmp_path
):
    last = await fill(nats_client, 6)  # 30 messages, cases BE-20261102-000000 ... 000005
    rebuilt = ledger(nats_server, tmp_path, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.startswith(
        "rebuilt the ledger from UNSTUCK_CASES up to message 30: 30 message(s), 48 event(s), 6 case(s), "
        "6 coordination(s), 0 accountability record(s), 6 rating(s) in "
    )
    again = ledger(nats_server, tmp_path, "rebuild")  # from scratch again: the same rows, not twice
    assert again.returncode == 0 and counts(tmp_path)["ratings"] == 6

    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        db.execute(
            "UPDATE ledger_cases SET state = 'closed', overdue = 1 WHERE case_id = 'BE-20261102-000003'"
        )
        db.execute("DELETE FROM ledger_coordinations WHERE case_id = 'BE-20261102-000005'")
    checked = ledger(nats_server, tmp_path, "check")
    assert checked.returncode == 1, checked.stderr
    assert checked.stdout.splitlines() == [
        "BE-20261102-000003: state: ledger 'closed', replayed 'evaluated'",
        "BE-20261102-000003: overdue: ledger True, replayed False",
        "BE-20261102-000005: coordinations: ledger 0, replayed 1",
        "3 difference(s) between the ledger and the replay of 6 case(s)",
    ]

    status = ledger(nats_server, tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    figures = json.loads(status.stdout)
    assert (figures["position"], figures["stream_last_seq"], figures["lag"]) == (last, 30, 0)
    assert figures["rows"] == {"cases": 6, "coordinations": 5, "accountability": 0, "ratings": 6}


def test_bad_ledger_settings_exit_2_with_one_line(nats_server, tmp_path):
    env = environment(nats_server, tmp_path)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "unstuck",
            "ledger",
            "status",
            "--url",
            "postgresql+psycopg://u:pw@127.0.0.1:1/x",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith(
        "unstuck: [ledger] url postgresql+psycopg://u:***@127.0.0.1:1/x: cannot open"
    )
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert "pw@" not in bad.stderr

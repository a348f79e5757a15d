"""``unstuck status`` against a live broker: departments ranked worst first, --json, --watch in place."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path

import pytest

from conftest import on_a_terminal, running_broker, sample
from unstuck.broker import Broker
from unstuck.cli import main
from unstuck.cli.status import CLEAR, ERASE_BELOW, HOME
from unstuck.clock import CHINA, SimulatedClock
from unstuck.config import Config, DepartmentConfig
from unstuck.embedded import EmbeddedNats
from unstuck.testing import api_call, fast_config, wait_for
from unstuck.workcalendar import WorkingCalendar


@pytest.fixture
def unstuck_config() -> Config:
    """The three built-in departments plus 住建 (zhujian), whose system never answers in these tests."""
    config = fast_config()
    config.departments["zhujian"] = DepartmentConfig(
        name="住房和城鄉建設局", retry={"attempts": 2, "timeout_seconds": 0.2}
    )
    return config


@pytest.fixture
async def zhujian_stalled(broker: Broker, builtin_adapters, nats_client, monkeypatch, nats_server) -> Broker:
    """One case waits for zhujian (a subscriber that never replies), two others were answered."""
    monkeypatch.setenv("NATS_URL", nats_server.url)
    await nats_client.subscribe(
        "unstuck.dept.zhujian.coordinate", queue="unstuck.dept.zhujian", cb=_never_reply
    )
    await api_call(nats_client, "case.open", sample("02", department="zhujian"))
    await api_call(nats_client, "case.open", sample("02"))
    await api_call(nats_client, "case.open", sample("01"))
    await wait_for(lambda: broker.stalled_counts["zhujian"] == 1)
    await wait_for(lambda: broker.coordinator.department_stats("chengguan").latencies)
    await wait_for(lambda: broker.coordinator.department_stats("scjg").latencies)
    return broker


async def _never_reply(msg) -> None:
    return None


async def run_cli(*argv: str) -> int:
    """The real command line, in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


async def test_status_table_puts_the_stalled_department_on_top(zhujian_stalled, capsys) -> None:
    assert await run_cli("status") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [
        "department",
        "name",
        "stalled",
        "pending",
        "oldest",
        "p95",
        "retries",
        "timeouts",
        "errors",
        "last",
        "good",
        "reply",
    ]
    first = lines[2]
    assert first.startswith("zhujian")
    assert "住房和城鄉建設局" in first
    assert "STALLED 1" in first
    assert first.rstrip().endswith("never")
    answered = {line.split()[0]: line for line in lines[3:6]}
    assert set(answered) == {"renshe", "scjg", "chengguan"}
    assert "STALLED" not in answered["scjg"]
    assert answered["scjg"].rstrip().endswith("ago")
    assert "open cases 3   overdue cases 0" in out


async def test_status_json_gives_the_ranked_departments_and_case_counts(zhujian_stalled, capsys) -> None:
    assert await run_cli("status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    ranked = [d["department"] for d in status["departments"]]
    assert ranked[0] == "zhujian"
    assert set(ranked) == {"zhujian", "renshe", "scjg", "chengguan"}
    zhujian = status["departments"][0]
    assert zhujian["stalled"] == 1
    assert zhujian["pending"] == 1
    assert zhujian["timeouts"] >= 2  # two attempts, then the slow schedule keeps asking
    assert zhujian["retry_rate"] > 0
    assert zhujian["last_good_reply_seconds_ago"] is None
    assert zhujian["reply_timeout_seconds"] == 0.2
    scjg = next(d for d in status["departments"] if d["department"] == "scjg")
    assert scjg["stalled"] == 0 and scjg["pending"] == 0
    assert scjg["p95_seconds"] > 0
    assert status["open_cases"] == 3
    assert status["overdue_cases"] == 0


async def test_status_watch_piped_prints_one_json_line_per_refresh(zhujian_stalled, capsys) -> None:
    assert await run_cli("status", "--json", "--watch", "0.05", "-n", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["departments"][0]["department"] == "zhujian" for line in lines)


async def test_status_watch_on_a_terminal_redraws_the_table_in_place(
    zhujian_stalled, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    out = await asyncio.to_thread(
        on_a_terminal,
        [sys.executable, "-m", "unstuck.cli", "status", "--watch", "0.1", "-n", "2"],
        {**os.environ, "NATS_URL": nats_server.url},
        tmp_path,
    )
    assert out.count(CLEAR) == 1
    assert out.count(HOME) == 2
    assert out.count(ERASE_BELOW) == 2
    second = out.split(HOME)[2]
    assert "STALLED 1" in second
    assert second.index("zhujian") < second.index("scjg")


async def test_status_without_a_broker_says_how_to_start_one(nats_server: EmbeddedNats, monkeypatch, capsys):
    monkeypatch.setenv("NATS_URL", nats_server.url)
    assert await run_cli("status") == 3
    assert "unstuck serve" in capsys.readouterr().err


async def test_status_refuses_a_watch_interval_of_zero(nats_server: EmbeddedNats, monkeypatch, capsys):
    monkeypatch.setenv("NATS_URL", nats_server.url)
    assert await run_cli("status", "--watch", "0") == 2
    assert "--watch 0" in capsys.readouterr().err


# --- the calendar warning: from 1 November, a next year without a published schedule -------------------


@pytest.mark.parametrize(
    ("now", "warned"),
    [
        (datetime(2026, 10, 31, 23, 59, tzinfo=CHINA), False),  # the last minute of October, local time
        (datetime(2026, 11, 1, 0, 0, tzinfo=CHINA), True),
    ],
)
async def test_status_warns_from_1_november_that_next_years_calendar_is_not_published(
    nats_server, nats_client, monkeypatch, capsys, now, warned
) -> None:
    monkeypatch.setenv("NATS_URL", nats_server.url)
    calendar = WorkingCalendar(unpublished_years={2027})  # 2027 not published, whatever the library has
    async with running_broker(nats_server, fast_config(), SimulatedClock(now), nats_client, calendar):
        status = await api_call(nats_client, "status", {})
        assert await run_cli("status") == 0
    out = capsys.readouterr().out
    if not warned:
        assert status["warnings"] == [] and "warning" not in out
        return
    [warning] = status["warnings"]
    assert warning.startswith("the working calendar for 2027 is not published")
    assert "Add [2027]" in warning and "upgrade python-holidays" in warning
    assert f"warning: {warning}" in out.splitlines()

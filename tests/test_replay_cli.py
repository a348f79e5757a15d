"""`unstuck replay` on a real stream: states at a moment, cases since a moment, table/json/csv, exit codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime

import pytest

from conftest import sample
from unstuck import cli
from unstuck.clock import CHINA
from unstuck.replay import replay
from unstuck.schemas.privacy import mask_personal
from unstuck.testing import api_call, wait_for

A_ID_NUMBER = "92210603MA0KC8QX2K"  # the applicant of sample 01


@pytest.fixture
async def two_days(broker, builtin_adapters, nats_client, sim_clock) -> dict[str, str]:
    """Monday 28 September: A and C opened and answered. Tuesday 29 September: B opened, A closed."""
    a = (await api_call(nats_client, "case.open", sample("01")))["case_id"]
    c = (await api_call(nats_client, "case.open", sample("12")))["case_id"]
    await wait_for(lambda: broker.state_of(a).state == broker.state_of(c).state == "answered")
    sim_clock.set(datetime(2026, 9, 29, 10, 0, tzinfo=CHINA))
    b = (await api_call(nats_client, "case.open", sample("02")))["case_id"]
    await api_call(
        nats_client,
        "case.close",
        {"case_id": a, "actor": "leader-gao", "outcome": "cannot", "explanation": "已說明不能辦的依據"},
    )
    await wait_for(lambda: broker.state_of(b).state == "answered")
    return {"A": a, "B": b, "C": c}


async def run(*args: str) -> int:
    return await asyncio.to_thread(cli.main, list(args))


async def test_until_gives_each_case_as_it_was_at_that_moment(two_days, broker, nats_server, capsys):
    code = await run("replay", "--nats", nats_server.url, "--until", "2026-09-28", "--format", "json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    states = {c["case_id"]: c["state"] for c in out["cases"]}
    assert set(states) == {two_days["A"], two_days["C"]}  # B did not exist yet
    assert states[two_days["A"]]["state"] == "answered"  # closed only on the 29th
    now = await replay(broker.nc)
    assert now.cases[two_days["A"]].state.state == "closed"
    assert states[two_days["C"]] == mask_personal(now.cases[two_days["C"]].state.to_dict())


async def test_since_lists_only_cases_with_events_from_that_moment_on(two_days, nats_server, capsys):
    code = await run("replay", "--nats", nats_server.url, "--since", "2026-09-29T00:00", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert code == 0
    assert {r["case_id"] for r in rows} == {two_days["A"], two_days["B"]}
    assert {r["case_id"]: r["state"] for r in rows}[two_days["A"]] == "closed"


async def test_table_names_every_case_with_its_state_and_the_verification(two_days, nats_server, capsys):
    code = await run("replay", "--verify", "--nats", nats_server.url)
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("DD-")}
    assert set(lines) == set(two_days.values())
    assert "closed" in lines[two_days["A"]] and "cannot" in lines[two_days["A"]]
    assert lines[two_days["B"]].split()[-1] == "ok"
    assert "3 case(s) from UNSTUCK_CASES" in out and "record intact (3 recorded head(s) match)" in out


async def test_json_masks_personal_identifiers_unless_revealed(two_days, nats_server, capsys):
    await run("replay", "--nats", nats_server.url, "--case", two_days["A"], "--format", "json")
    masked = capsys.readouterr().out
    await run("replay", "--nats", nats_server.url, "--case", two_days["A"], "--format", "json", "--reveal")
    revealed = capsys.readouterr().out
    assert A_ID_NUMBER not in masked and "9221**********QX2K" in masked
    assert "13904151234" not in masked
    assert A_ID_NUMBER in revealed
    assert [c["case_id"] for c in json.loads(masked)["cases"]] == [two_days["A"]]


async def test_out_writes_the_file_and_prints_the_summary(two_days, nats_server, capsys, tmp_path):
    target = tmp_path / "cases.csv"
    code = await run("replay", "--verify", "--nats", nats_server.url, "--format", "csv", "--out", str(target))
    out = capsys.readouterr().out
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert code == 0
    assert len(rows) == 3 and all(r["findings"] == "0" for r in rows)
    assert out.startswith("replayed ") and "record intact" in out


async def test_a_missing_stream_or_server_exits_3_and_says_what_to_do(
    nats_server, capsys, tmp_path, monkeypatch
):
    code = await run("replay", "--nats", nats_server.url, "--stream", "NO_SUCH_STREAM")
    assert code == 3
    assert "stream NO_SUCH_STREAM not found" in capsys.readouterr().err
    monkeypatch.delenv("NATS_URL", raising=False)
    code = await run("replay", "--data-dir", str(tmp_path / "empty"))
    assert code == 3
    assert "no NATS server" in capsys.readouterr().err


async def test_bad_times_and_unknown_cases_exit_2(two_days, nats_server, capsys):
    assert await run("replay", "--nats", nats_server.url, "--until", "yesterday") == 2
    assert "not ISO 8601" in capsys.readouterr().err
    assert (
        await run("replay", "--nats", nats_server.url, "--since", "2026-10-02", "--until", "2026-10-01") == 2
    )
    assert await run("replay", "--nats", nats_server.url, "--case", "DD-19990101-0001") == 2
    assert "has no event" in capsys.readouterr().err


async def test_the_progress_bar_stays_off_when_stderr_is_not_a_terminal(two_days, nats_server, capsys):
    await run("replay", "--nats", nats_server.url)
    assert "replay [" not in capsys.readouterr().err


async def test_replay_reads_the_stream_without_a_broker(two_days, broker, nats_client):
    await broker.stop()
    before = {c: broker.state_of(c).to_dict() for c in two_days.values()}
    report = await replay(nats_client, verify=True)
    assert report.ok
    assert {c: report.cases[c].state.to_dict() for c in two_days.values()} == before
    assert report.events == sum(broker.state_of(c).seq for c in two_days.values())

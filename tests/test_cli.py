"""The command line as window staff use it: a running bus in one process, commands in others."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def unstuck(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "UNSTUCK_CONFIG", "UNSTUCK_LANG")}
    run_env.update(env or {})
    out = subprocess.run(
        [sys.executable, "-m", "unstuck", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=run_env,
        timeout=timeout,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"unstuck {' '.join(args)} exited {out.returncode}: {out.stderr}")
    return out


@pytest.fixture
def serving(tmp_path):
    """`unstuck serve --adapters` in tmp_path (embedded NATS); yields the directory and the metrics address."""
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "UNSTUCK_CONFIG")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unstuck",
            "serve",
            "--insecure",
            "--adapters",
            "--metrics-address",
            "127.0.0.1:0",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    match = re.search(r"metrics http://([\d.:]+)/metrics", line)
    if not match:  # never leave it running behind a failed start
        proc.kill()
        proc.wait()
        pytest.fail(f"serve did not start: {line} {proc.stderr.read()}")
    yield tmp_path, match.group(1)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def open_shop_sign(directory: Path) -> str:
    """``unstuck case open`` of the shop-sign sample (chengguan answers cannot); its case id."""
    opened = unstuck(
        "case",
        "open",
        "--file",
        str(ROOT / "examples/cases/01-chengguan-cannot-shop-sign.json"),
        "--json",
        cwd=directory,
    )
    return str(json.loads(opened.stdout)["case_id"])


def test_case_open_then_show_prints_the_events_in_order(serving):
    directory, _ = serving
    case_id = open_shop_sign(directory)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        shown = json.loads(unstuck("case", "show", case_id, "--json", cwd=directory).stdout)
        if shown["state"]["state"] == "answered":
            break
        time.sleep(0.2)
    assert [e["seq"] for e in shown["events"]] == list(range(1, len(shown["events"]) + 1))
    table = unstuck("case", "show", case_id, cwd=directory).stdout
    assert "受理" in table and "部門答覆" in table and "chengguan：不能辦理：" in table  # labels, not codes
    assert "92210603MA0KC8QX2K" not in table  # masked without --reveal
    shown = unstuck(
        "case", "show", case_id, "--reveal", "核對申請人身份", "--actor", "w-zhang", cwd=directory
    )
    assert "92210603MA0KC8QX2K" in shown.stdout
    events = json.loads(unstuck("case", "show", case_id, "--json", cwd=directory).stdout)["events"]
    revealed = [e for e in events if e["type"] == "case.personal_data_revealed"]
    assert [(e["actor"], e["data"]["reason"]) for e in revealed] == [("w-zhang", "核對申請人身份")]


def test_metrics_show_per_department_series_while_serving(serving):
    _, address = serving
    body = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    for dept in ("renshe", "scjg", "chengguan"):
        assert f'unstuck_coordination_requests_total{{department="{dept}",outcome="timeout"}} 0.0' in body
    health = json.loads(urllib.request.urlopen(f"http://{address}/healthz", timeout=10).read())
    assert health["ready"] is True


def test_window_commands_move_a_case_and_refusals_name_the_state(serving):
    directory, _ = serving
    opened = unstuck(
        "case",
        "open",
        "--file",
        str(ROOT / "examples/cases/05-scjg-guided-food-permit.json"),
        "--json",
        cwd=directory,
    )
    case_id = json.loads(opened.stdout)["case_id"]
    refused = unstuck(
        "case",
        "close",
        case_id,
        "--actor",
        "w-wang",
        "--outcome",
        "resolved",
        "--explanation",
        "x",
        cwd=directory,
        check=False,
    )
    assert refused.returncode == 1 and "目前「引導中」，不能銷號；現在可以：引導辦理" in refused.stderr
    assert refused.stderr.rstrip().endswith("[not_allowed]")
    unstuck(
        "case",
        "guide",
        case_id,
        "--actor",
        "w-wang",
        "--window",
        "食品許可窗口",
        "--instructions",
        "帶平面圖",
        cwd=directory,
    )
    unstuck("case", "evaluate", case_id, "--rating", "good", cwd=directory, env={"UNSTUCK_STAFF": "w-wang"})
    listed = json.loads(unstuck("case", "list", "--state", "evaluated", "--json", cwd=directory).stdout)
    assert [c["case_id"] for c in listed["cases"]] == [case_id]


def test_case_list_searches_by_applicant_and_matter_and_refuses_a_bad_date(serving):
    directory, _ = serving
    case_id = open_shop_sign(directory)
    found = unstuck(
        "case", "list", "--applicant", "92210603ma0kc8qx2k", "--matter", "招牌", "--json", cwd=directory
    )
    assert case_id in [c["case_id"] for c in json.loads(found.stdout)["cases"]]
    none = unstuck("case", "list", "--matter", "不存在的事項", "--json", cwd=directory)
    assert json.loads(none.stdout)["cases"] == []
    bad = unstuck("case", "list", "--opened-from", "2026-13-01", cwd=directory, check=False)
    assert bad.returncode != 0 and "opened_from" in bad.stderr and "Traceback" not in bad.stderr


def test_open_with_a_bad_file_names_the_field(serving, tmp_path):
    directory, _ = serving
    bad = tmp_path / "bad.json"
    case = json.loads(
        (ROOT / "examples/cases/01-chengguan-cannot-shop-sign.json").read_text(encoding="utf-8")
    )
    case["category"] = "impossible"
    bad.write_text(json.dumps(case, ensure_ascii=False), encoding="utf-8")
    out = unstuck("case", "open", "--file", str(bad), cwd=directory, check=False)
    assert out.returncode == 1 and "category" in out.stderr


def test_commands_without_a_server_say_how_to_start_one(tmp_path):
    out = unstuck("case", "show", "DD-20260928-0001", cwd=tmp_path, check=False)
    assert out.returncode == 3 and "unstuck serve" in out.stderr and "NATS_URL" in out.stderr


def test_demo_runs_the_script_prints_the_table_and_exits_0(tmp_path):
    out = unstuck("demo", "--metrics-address", "127.0.0.1:0", cwd=tmp_path, timeout=240)
    text = out.stdout
    assert "Cases by category and outcome" in text and "Departments" in text
    assert "department stalled: renshe" in text
    assert "催辦" in text and "延期" in text and "overdue (督辦)" in text and "重辦" in text
    rows = {
        line.split()[0]: line.split()
        for line in text.splitlines()
        if line.startswith(("renshe", "scjg", "chengguan"))
    }
    assert set(rows) == {"renshe", "scjg", "chengguan"}
    assert (
        int(rows["renshe"][3]) > 0 and int(rows["renshe"][4]) > 0
    )  # retries and stalls on the slow department
    assert "/metrics" in text
    assert not (tmp_path / ".unstuck-demo" / "nats.url").exists()  # the embedded server was stopped
    assert not (tmp_path / ".unstuck").exists()  # the demo keeps its data apart from `unstuck serve`'s


def test_case_commands_are_generated_from_the_api_table_with_a_flag_per_request_field():
    from unstuck.broker.api import VERBS
    from unstuck.cli import build_parser
    from unstuck.cli.case import case_commands

    commands = {name: (verb, model) for name, verb, _, model in case_commands()}
    assert list(commands) == [
        *("classify", "handover", "extend", "approve-extension", "record", "guide", "close"),
        *(
            "evaluate",
            "follow-up",
            "reopen",
            "escalate",
            "rule-bounce",
            "review-notice",
            "review-conclude",
            "accountability",
        ),
    ]
    assert {verb for verb, _ in commands.values()} == {v for v, entry in VERBS.items() if entry.command}
    given = "case record X --department scjg --outcome accepted --message m --handler h"
    args = build_parser().parse_args([*given.split(), "--material", "a", "--material", "b"])
    assert args.fields == [f for f in commands["record"][1].model_fields if f != "case_id"]
    assert (args.verb, args.materials, args.expected_date) == ("case.record", ["a", "b"], None)

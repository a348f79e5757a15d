"""The demo runs any number of times in the same directory: each run starts from an empty data
directory of its own (.unstuck-demo), clearing the previous run's, and never touches the directory
`unstuck serve` uses (.unstuck). With --keep-running, the commands it prints work as printed.

Expected values: the demo opens the 13 samples of examples/cases on its simulated Monday 28 September
2026 in file-name order, so every run numbers them DD-20260928-0001 ... 0013 afresh, and the first
one, shown in the keep-running hint, is DD-20260928-0001 (01-chengguan-cannot-shop-sign)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from process_support import UNSTUCK, clean_env, cli, interrupt, started, wait_for_line

DEMO = ["demo", "--metrics-address", "127.0.0.1:0"]
CASE_IDS = [f"DD-20260928-{n:04d}" for n in range(1, 14)]


def serve_data_dir(cwd: Path) -> Path:
    """What `unstuck serve` keeps in .unstuck, standing in for the bus's real cases."""
    (cwd / ".unstuck").mkdir()
    (cwd / ".unstuck" / "nats-server.log").write_text("the bus's own log\n")
    return cwd / ".unstuck"


def test_the_demo_run_twice_in_the_same_directory_exits_0_both_times(tmp_path):
    serve_dir = serve_data_dir(tmp_path)
    runs = [
        subprocess.run(
            [str(UNSTUCK), *DEMO], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=240
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[1].stderr[-3000:]
    first, second = (r.stdout for r in runs)
    assert first.splitlines()[0] == (
        "unstuck demo: data in .unstuck-demo/ (a new directory; the next run clears it again; "
        "`unstuck serve` keeps its own in .unstuck/)"
    )
    assert second.splitlines()[0].startswith(
        "unstuck demo: data in .unstuck-demo/ (the previous run's data cleared;"
    )
    for text in (first, second):
        assert sorted(set(re.findall(r"DD-\d{8}-\d{4}", text))) == CASE_IDS
        assert "Cases by category and outcome" in text and "重辦" in text
    assert [p.name for p in serve_dir.iterdir()] == ["nats-server.log"]  # serve's data untouched
    assert (serve_dir / "nats-server.log").read_text() == "the bus's own log\n"
    assert not (tmp_path / ".unstuck-demo" / "nats.url").exists()  # the embedded server was stopped


def test_demo_keep_running_started_twice_in_a_row_reaches_its_hint_and_the_hint_works_as_printed(tmp_path):
    for run in (1, 2):
        out = tmp_path / f"demo{run}.out"
        demo = started([*DEMO, "--keep-running"], tmp_path, out)
        try:
            text = wait_for_line(out, "keeping everything up", demo, timeout=180)
            hint = text.split("in another shell: ", 1)[1].split("   (Ctrl-C stops)", 1)[0]
            commands = hint.split("  |  ")
            assert commands == [
                "unstuck case show DD-20260928-0001 --data-dir .unstuck-demo",
                "unstuck status --data-dir .unstuck-demo",
            ]
            # typed in another shell in the same directory, with `unstuck` on the PATH
            shown = cli(tmp_path, *shlex.split(commands[0])[1:], "--json")
            assert json.loads(shown)["state"]["case_id"] == "DD-20260928-0001"
            assert "scjg" in cli(tmp_path, *shlex.split(commands[1])[1:])
        finally:
            assert interrupt(demo) == 0
    assert not (tmp_path / ".unstuck").exists()  # nothing in the directory `unstuck serve` uses


def test_the_demo_refuses_the_directory_serve_uses_and_one_it_did_not_make(tmp_path):
    serve_dir = serve_data_dir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine\n")
    for data_dir, said in (
        (".unstuck", ".unstuck is where `unstuck serve` keeps the bus's data"),
        ("notes", "notes holds data the demo did not write"),
    ):
        out = subprocess.run(
            [str(UNSTUCK), *DEMO, "--data-dir", data_dir],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1 and said in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert (serve_dir / "nats-server.log").read_text() == "the bus's own log\n"
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine\n"

"""Personal data stays out of logs, tables and metrics: a whole `unstuck demo --secure` run, scanned.

The demo runs as a subprocess with debug logging (-vv) and --keep-running; while it is up, the
test scrapes /metrics and /healthz and uses the window's CLI (on the CLI's own credentials) to
list and show cases. Everything printed is then searched for the id and phone numbers of the
sample cases. The auditor's `replay --verify` runs too, on its own credentials.
`case show --reveal` is the control: it must show them, so the scan can see them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

from process_support import UNSTUCK, wait_for_line

from conftest import CASES

DEMO_DIR = ".unstuck-demo"  # where the demo keeps its data (and credentials), apart from `unstuck serve`'s


def personal_numbers() -> dict[str, str]:
    """Every id number and phone number of the sample cases, by where it comes from."""
    found = {}
    for path in sorted(CASES.glob("*.json")):
        applicant = json.loads(path.read_text(encoding="utf-8"))["applicant"]
        for field in ("id_number", "phone"):
            if applicant.get(field):
                found[f"{path.stem}.{field}"] = applicant[field]
    return found


def cli(cwd: Path, env: dict[str, str], *args: str) -> str:
    """The window's command against the demo's bus, found through the demo's data directory."""
    done = subprocess.run(
        [str(UNSTUCK), *args, "--data-dir", DEMO_DIR],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"unstuck {' '.join(args)}: {done.stderr}"
    return done.stdout + done.stderr


def test_a_secure_demo_run_shows_no_id_or_phone_number_in_logs_tables_or_metrics(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "UNSTUCK_"))}
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        demo = subprocess.Popen(
            [str(UNSTUCK), "-vv", "demo", "--secure", "--keep-running", "--metrics-address", "127.0.0.1:0"],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        printed = wait_for_line(out, "keeping everything up", demo)
        address = re.search(r"metrics http://(\S+)/metrics", printed)
        assert address, printed
        metrics = urllib.request.urlopen(f"http://{address[1]}/metrics", timeout=10).read().decode()
        health = urllib.request.urlopen(f"http://{address[1]}/healthz", timeout=10).read().decode()
        assert "unstuck_coordination_requests_total" in metrics
        window = {**env, "UNSTUCK_NATS_AUTH_FILE": str(tmp_path / DEMO_DIR / "credentials/cli.env")}
        case_ids = sorted(set(re.findall(r"DD-\d{8}-\d{4}", printed)))
        assert len(case_ids) == 13
        tables = cli(tmp_path, window, "case", "list")
        tables += cli(tmp_path, window, "status")
        for case_id in case_ids:
            tables += cli(tmp_path, window, "case", "show", case_id)
        tables += cli(tmp_path, window, "case", "show", case_ids[0], "--json")
        clerk = {**env, "UNSTUCK_NATS_AUTH_FILE": str(tmp_path / DEMO_DIR / "credentials/staff-w-zhang.env")}
        revealed = cli(tmp_path, clerk, "case", "show", case_ids[0], "--reveal", "核對申請人身份", "--json")
        auditor = {**env, "UNSTUCK_NATS_AUTH_FILE": str(tmp_path / DEMO_DIR / "credentials/auditor.env")}
        replayed = cli(tmp_path, auditor, "replay", "--verify")  # exit 0: the record is intact
        replayed += cli(tmp_path, auditor, "replay", "--case", case_ids[0])
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    assert demo.returncode == 0
    logs = err.read_text(encoding="utf-8", errors="replace")
    assert "DEBUG" in logs  # -vv really logged at debug level
    server_log = (tmp_path / DEMO_DIR / "nats-server.log").read_text(errors="replace")
    outputs = {
        "demo stdout": out.read_text(encoding="utf-8"),
        "demo log (-vv)": logs,
        "/metrics": metrics,
        "/healthz": health,
        "CLI tables": tables,
        "auditor's replay": replayed,
        "nats-server log": server_log,
    }
    numbers = personal_numbers()
    assert len(numbers) == 26
    leaks = [
        f"{where}: {key}"
        for key, value in numbers.items()
        for where, text in outputs.items()
        if value in text
    ]
    assert leaks == []
    # the control: the scan finds a number where one is shown on purpose, and the tables show it masked
    shown = [key for key, value in numbers.items() if value in revealed]
    assert len(shown) == 2, revealed
    assert "****" in tables

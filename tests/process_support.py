"""Helpers of the tests that run ``unstuck`` commands as processes in a directory, as an operator does
in a shell: started in the background with their output in a file, waited for by a line they print,
stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

UNSTUCK = Path(sys.executable).parent / "unstuck"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without NATS_* and UNSTUCK_* (so nothing points elsewhere), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "UNSTUCK_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def started(
    args: list[str], cwd: Path, out: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``unstuck *args`` in the background, stdout and stderr into ``out``."""
    with out.open("wb") as sink:
        return subprocess.Popen(
            [str(UNSTUCK), *args], cwd=cwd, env=env or clean_env(), stdout=sink, stderr=subprocess.STDOUT
        )


def wait_for_line(path: Path, marker: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> str:
    """The text of ``path`` once it holds ``marker``; fails if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(encoding="utf-8", errors="replace")
        if marker in text:
            return text
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before {marker!r}:\n{text[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(
        f"{marker!r} not printed within {timeout}s:\n{path.read_text(errors='replace')[-2000:]}"
    )


def interrupt(process: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    """Ctrl-C, as in the shell that started it; its exit code (killed if it does not stop in time)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``unstuck *args`` run to the end in ``cwd``; its stdout (it must exit 0)."""
    done = subprocess.run(
        [str(UNSTUCK), *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"unstuck {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout

"""`unstuck reset` deletes a scratch data directory: after asking (`--yes` skips the question), never
while an embedded server started there runs, never a directory unstuck did not make."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from process_support import UNSTUCK, clean_env

from unstuck.embedded import EmbeddedNats, running_url


def reset(cwd: Path, *args: str, answer: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(UNSTUCK), "reset", *args],
        cwd=cwd,
        env=clean_env(),
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def used_data_dir(tmp_path: Path) -> Path:
    """.unstuck in tmp_path as a stopped embedded server leaves it (its stream store, log, port)."""
    EmbeddedNats(tmp_path / ".unstuck").start().stop()
    return tmp_path / ".unstuck"


def test_reset_yes_deletes_the_data_directory_without_asking(used_data_dir, tmp_path):
    done = reset(tmp_path, "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "deleted .unstuck\n"
    assert not used_data_dir.exists()


def test_reset_asks_first_and_an_answer_of_n_keeps_the_directory(used_data_dir, tmp_path):
    before = sorted(p.name for p in used_data_dir.iterdir())
    done = reset(tmp_path, answer="n\n")
    assert done.returncode == 1
    assert done.stdout.startswith(
        "delete .unstuck and everything in it (jetstream, nats-server.log, nats.port"
    )
    assert "[y/N] " in done.stdout and done.stdout.endswith("kept .unstuck\n")
    assert sorted(p.name for p in used_data_dir.iterdir()) == before


def test_reset_asks_first_and_an_answer_of_y_deletes_the_named_directory(tmp_path):
    EmbeddedNats(tmp_path / "scratch").start().stop()
    done = reset(tmp_path, "--data-dir", "scratch", answer="y\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("deleted scratch\n")
    assert not (tmp_path / "scratch").exists()


def test_reset_refuses_while_the_embedded_server_of_the_directory_runs(tmp_path):
    server = EmbeddedNats(tmp_path / ".unstuck").start()
    try:
        done = reset(tmp_path, "--yes")
        assert done.returncode == 1
        pid = server.process.pid if server.process else None
        assert done.stderr == (
            f"unstuck: not deleting .unstuck: the embedded nats-server started in .unstuck still runs "
            f"(pid {pid}): stop it first (Ctrl-C in the shell of the `unstuck serve` or "
            f"`unstuck demo --keep-running` that started it; a server left behind by a killed process: "
            f"kill {pid})\n"
        )
        assert running_url(tmp_path / ".unstuck") == server.url  # untouched, still serving
    finally:
        server.stop()


def test_reset_leaves_alone_a_directory_unstuck_did_not_make_and_one_that_does_not_exist(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    refused = reset(tmp_path, "--data-dir", "photos", "--yes")
    assert refused.returncode == 1 and "photos does not look like an unstuck data directory" in refused.stderr
    assert (tmp_path / "photos" / "cat.jpg").exists()
    here = reset(tmp_path / "photos", "--data-dir", ".", "--yes")
    assert here.returncode == 2 and "holds the working directory" in here.stderr
    missing = reset(tmp_path, "--data-dir", "nowhere", "--yes")
    assert missing.returncode == 0 and missing.stdout == "nothing to delete: nowhere does not exist\n"

"""Restarts that heal: the embedded server comes back on the port it had, so processes connected to
it (adapters run from another shell) reconnect by themselves; when another program holds that port,
it takes a new one and says what must be restarted."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from process_support import clean_env, cli, interrupt, started, wait_for_line

from unstuck.embedded import PID_FILE, PORT_FILE, URL_FILE, EmbeddedNats, NatsStartError

ROOT = Path(__file__).resolve().parents[1]


def test_a_server_started_again_in_the_same_data_dir_takes_the_port_it_had(tmp_path):
    data = tmp_path / "data"
    first = EmbeddedNats(data).start()
    port = first.port
    first.stop()  # a clean stop: nats.url goes, nats.port stays
    assert not (data / URL_FILE).exists()
    assert (data / PORT_FILE).read_text().strip() == str(port)
    second = EmbeddedNats(data).start()
    try:
        assert second.port == port and second.port_notice is None
        assert (data / URL_FILE).read_text().strip() == f"nats://127.0.0.1:{port}"
        second.kill()  # a crash this time
        third = EmbeddedNats(data).start()
        assert third.port == port and third.port_notice is None
        third.stop()
    finally:
        second.stop()


def test_when_another_program_holds_the_old_port_a_new_one_is_taken_and_the_notice_says_what_to_restart(
    tmp_path, caplog
):
    data = tmp_path / "data"
    first = EmbeddedNats(data).start()
    old = first.port
    first.stop()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", old))
        squatter.listen()
        with caplog.at_level(logging.WARNING, logger="unstuck.embedded"):
            second = EmbeddedNats(data).start()
        try:
            assert second.port != old
            notice = second.port_notice or ""
            assert f"previous port {old} is taken" in notice
            assert f"now listens on nats://127.0.0.1:{second.port}" in notice
            assert "restart the adapters (`unstuck adapters run`)" in notice
            assert f"still connected to nats://127.0.0.1:{old}" in notice
            assert notice in caplog.text
            assert (data / PORT_FILE).read_text().strip() == str(second.port)  # the next start's port
            assert (data / URL_FILE).read_text().strip() == second.url
        finally:
            second.stop()


def test_an_explicit_port_is_used_as_given_and_never_replaced(tmp_path):
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data.mkdir()
        (data / PORT_FILE).write_text(f"{port}\n")
        with pytest.raises(NatsStartError, match=f"starting on nats://127.0.0.1:{port}"):
            EmbeddedNats(data, port=port).start(timeout=5)


# --- end to end: `unstuck serve` restarted under a running `unstuck adapters run scjg` -----------


STAFF_TOML = '[staff]\n"w-li" = "clerk"\n"w-wang" = "clerk"\n'  # the owners of the scjg samples below


def open_and_wait_answered(cwd: Path, sample: str) -> dict[str, object]:
    """Open a scjg sample with the CLI as its owner (their own credentials, found in the data
    directory: `serve` is secure by default); the case once scjg's answer is recorded."""
    path = ROOT / "examples/cases" / sample
    owner = json.loads(path.read_text(encoding="utf-8"))["owner"]
    opened = json.loads(
        cli(cwd, "case", "open", "--file", str(path), "--json", env=clean_env(UNSTUCK_STAFF=owner))
    )
    deadline = time.monotonic() + 60
    while True:
        shown = json.loads(cli(cwd, "case", "show", opened["case_id"], "--json"))
        if shown["state"]["state"] == "answered" or time.monotonic() > deadline:
            return shown
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_an_adapter_process_keeps_answering_after_serve_is_stopped_and_started_again(tmp_path, how):
    """SIGTERM: serve stops its embedded server cleanly. SIGKILL: serve and its nats-server are
    killed (a crash of the machine's bus), leaving nats.url and nats.pid behind. Either way the
    next serve in the same directory listens on the same URL, and the scjg adapter process started
    against the first one answers the case opened after the restart. All of it with authorisation on,
    as `serve` runs by default: the adapter and the clerks find their credentials in the data directory."""
    (tmp_path / "unstuck.toml").write_text(STAFF_TOML, encoding="utf-8")
    serve = started(["serve", "--metrics-address", "127.0.0.1:0"], tmp_path, tmp_path / "serve1.out")
    adapters = None
    try:
        line = wait_for_line(tmp_path / "serve1.out", "unstuck broker on", serve)
        url = line.split("unstuck broker on ", 1)[1].split(";", 1)[0]
        adapters = started(["adapters", "run", "scjg"], tmp_path, tmp_path / "adapters.out")
        wait_for_line(tmp_path / "adapters.out", f"serving scjg on {url}", adapters)
        before = open_and_wait_answered(tmp_path, "02-scjg-hard-name-registration.json")
        assert before["state"]["state"] == "answered"

        if how == "SIGTERM":
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(30) == 0
            assert not (tmp_path / ".unstuck" / URL_FILE).exists()
        else:
            nats_pid = int((tmp_path / ".unstuck" / PID_FILE).read_text())
            serve.kill()
            serve.wait(30)
            os.kill(nats_pid, signal.SIGKILL)  # it runs in its own session: it outlives serve otherwise
            assert (tmp_path / ".unstuck" / URL_FILE).exists()  # stale, as a crash leaves it

        serve = started(["serve", "--metrics-address", "127.0.0.1:0"], tmp_path, tmp_path / "serve2.out")
        again = wait_for_line(tmp_path / "serve2.out", "unstuck broker on", serve)
        assert f"unstuck broker on {url};" in again
        assert "is taken" not in again
        after = open_and_wait_answered(tmp_path, "12-scjg-cannot-restricted-name.json")
        assert after["state"]["state"] == "answered"
        replied = [e for e in after["events"] if e["type"] == "coordination.replied"]
        assert [e["data"]["department"] for e in replied] == ["scjg"]
        assert replied[0]["data"]["outcome"] == "cannot"
        assert adapters.poll() is None  # the very process started before the restart answered
    finally:
        interrupt(serve)
        if adapters is not None:
            interrupt(adapters)

"""The embedded nats-server: starts on a free port, records its URL, is found by other commands, restarts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import nats
import pytest

from unstuck.connection import NoServer, require_server
from unstuck.embedded import EmbeddedNats, NatsStartError, running_url


async def test_embedded_server_has_jetstream_and_records_its_url(tmp_path):
    server = EmbeddedNats(tmp_path / "data").start()
    try:
        assert (tmp_path / "data" / "nats.url").read_text().strip() == server.url
        assert running_url(tmp_path / "data") == server.url
        nc = await nats.connect(server.url)
        info = await nc.jetstream().account_info()
        assert info.limits is not None
        await nc.close()
    finally:
        server.stop()
    assert running_url(tmp_path / "data") is None
    assert not (tmp_path / "data" / "nats.url").exists()


def test_a_server_that_cannot_start_fails_with_a_readable_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NatsStartError) as exc:
            EmbeddedNats(tmp_path / "data", port=port).start(timeout=5)
    assert str(port) in str(exc.value) and "NATS_URL" in str(exc.value)


def test_killed_server_restarts_on_the_same_port_with_its_data(tmp_path):
    async def publish_and_count(url: str, publish: bool) -> int:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        if publish:
            await js.publish("keep.a", b"1")
        info = await js.stream_info("KEEP")
        await nc.close()
        return info.state.messages

    import asyncio

    server = EmbeddedNats(tmp_path / "data").start()
    try:
        assert asyncio.run(publish_and_count(server.url, True)) == 1
        url = server.url
        server.kill()
        server.restart()
        assert server.url == url
        assert asyncio.run(publish_and_count(server.url, False)) == 1
    finally:
        server.stop()


def test_other_commands_find_the_running_server_without_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("NATS_URL", raising=False)
    with pytest.raises(NoServer, match="unstuck serve"):
        require_server(tmp_path / "data")
    server = EmbeddedNats(tmp_path / "data").start()
    try:
        assert require_server(tmp_path / "data") == server.url
        env = {k: v for k, v in os.environ.items() if k != "NATS_URL"}
        out = subprocess.run(
            [sys.executable, "-m", "unstuck", "status", "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            env=env,
        )
        # the server is found; no broker runs, and the command says so
        assert out.returncode == 3 and "no broker answers" in out.stderr
    finally:
        server.stop()


def test_nats_url_wins_over_the_embedded_server(tmp_path, monkeypatch):
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")
    assert require_server(tmp_path / "nowhere") == "nats://127.0.0.1:1"

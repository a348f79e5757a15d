"""`unstuck serve` is secure by default: the embedded server starts with the generated users, the
commands run in the same directory find their credentials there, and the open mode must be asked
for (`--insecure`), loudly."""

from __future__ import annotations

import asyncio
import json
import subprocess

import nats
import nats.errors
from process_support import UNSTUCK, clean_env, cli, interrupt, started, wait_for_line

SERVE = ["serve", "--metrics-address", "127.0.0.1:0"]


def broker_url(line: str) -> str:
    return line.split("unstuck broker on ", 1)[1].split(";", 1)[0]


async def anonymous_connection_refused(url: str) -> bool:
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)
    except (nats.errors.Error, OSError) as exc:
        return "authorization" in str(exc).lower()
    await nc.close()
    return False


def test_plain_serve_requires_credentials_and_the_cli_here_finds_them(tmp_path):
    serve = started(SERVE, tmp_path, tmp_path / "serve.out")
    try:
        line = wait_for_line(tmp_path / "serve.out", "unstuck broker on", serve)
        assert asyncio.run(anonymous_connection_refused(broker_url(line)))  # no `>` for a passer-by
        printed = (tmp_path / "serve.out").read_text()
        assert "NATS authorisation on" in printed and "--insecure" not in printed
        listed = json.loads(cli(tmp_path, "case", "list", "--json"))  # the cli's credentials, found here
        assert listed["count"] == 0
        assert (tmp_path / ".unstuck" / "credentials" / "notifier.env").is_file()
    finally:
        assert interrupt(serve) == 0


def test_insecure_must_be_asked_for_and_says_what_it_gives_away(tmp_path):
    serve = started([*SERVE, "--insecure"], tmp_path, tmp_path / "serve.out")
    try:
        line = wait_for_line(tmp_path / "serve.out", "unstuck broker on", serve)
        assert not asyncio.run(anonymous_connection_refused(broker_url(line)))
        printed = (tmp_path / "serve.out").read_text()
        assert "WARNING: --insecure" in printed and "acts under any name" in printed
    finally:
        assert interrupt(serve) == 0


def test_secure_and_insecure_together_are_refused(tmp_path):
    done = subprocess.run(
        [str(UNSTUCK), *SERVE, "--secure", "--insecure"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "not allowed with argument --secure" in done.stderr

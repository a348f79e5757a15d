"""``unstuck adapters check``: the conformance check passes good adapters and names each fault of bad ones."""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client
from nats.aio.msg import Msg

from unstuck.adapters import hookimpl
from unstuck.cli import main
from unstuck.conformance import check_adapter
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department
from unstuck.testing import assert_conformant


def verdicts(report) -> dict[str, bool]:
    return {c.name: c.passed for c in report.checks}


async def test_builtin_adapters_pass_the_conformance_check(nats_client, builtin_adapters):
    for code in ("renshe", "scjg", "chengguan"):
        report = await assert_conformant(nats_client, code)
        assert len(report.checks) == 14
        assert {c.name.split(" (")[0] for c in report.checks if c.name.startswith("category")} == {
            "category cannot",
            "category hard",
            "category refused",
            "category guided",
        }


async def test_check_command_prints_a_passing_table_and_exits_0(nats_server, builtin_adapters, capsys):
    code = await asyncio.to_thread(main, ["adapters", "check", "scjg", "--nats", nats_server.url])
    out = capsys.readouterr().out
    assert code == 0
    assert "scjg: all 14 checks passed" in out
    assert "FAIL" not in out
    assert "silent on other departments' subjects" in out


async def test_check_command_fails_with_exit_1_when_no_adapter_serves_the_department(nats_server, capsys):
    code = await asyncio.to_thread(
        main, ["adapters", "check", "gongan", "--nats", nats_server.url, "--timeout", "0.3", "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert {"discoverable ($SRV.INFO)", "category hard (general_enquiry)", "repeated request_id"} <= failed


async def sloppy_responder(nc: Client) -> None:
    """A department system written without the contract: listens on every department's subject,
    stamps each answer with a counter (so a retry gets a different answer), ignores what it cannot parse."""
    answered = 0

    async def on_msg(msg: Msg) -> None:
        nonlocal answered
        try:
            request = CoordinationRequest.model_validate_json(msg.data)
        except ValueError:
            return
        answered += 1
        reply = CoordinationReply(
            request_id=request.request_id,
            department=request.department,
            outcome="resolved",
            message=f"第{answered}次答覆",
            handler="值班員",
        )
        await msg.respond(reply.model_dump_json().encode())

    await nc.subscribe("unstuck.dept.*.coordinate", cb=on_msg)
    await nc.flush()


async def test_check_fails_an_adapter_that_answers_on_every_department_subject(nats_client, capsys):
    await sloppy_responder(nats_client)
    report = await check_adapter(nats_client, "gongan", timeout_seconds=0.5)
    result = verdicts(report)
    assert not report.passed
    assert result["silent on other departments' subjects"] is False
    assert result["discoverable ($SRV.INFO)"] is False
    assert result["repeated request_id"] is False
    assert result["malformed: not JSON"] is False
    assert result["category hard (general_enquiry)"] is True


class SlowBackOffice:
    """城管 whose back-office system takes 50 ms to answer every request."""

    def __init__(self) -> None:
        from unstuck.adapters.chengguan import ChengguanAdapter

        self.inner = ChengguanAdapter()
        self.calls = 0

    @hookimpl
    def unstuck_department(self) -> Department:
        return self.inner.unstuck_department()

    @hookimpl
    async def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        self.calls += 1
        await asyncio.sleep(0.05)
        return self.inner.unstuck_coordinate(request)


async def test_check_fails_an_adapter_slower_than_the_department_timeout(nats_client, serve_adapter):
    # a reply timeout of 5 ms against answers that take at least 50 ms: every answer is late by
    # construction (a sleep never ends early), and the check still waits a second for each
    adapter = SlowBackOffice()
    await serve_adapter(adapter)
    report = await check_adapter(nats_client, "chengguan", timeout_seconds=0.005)
    result = verdicts(report)
    assert result["replies inside the timeout"] is False
    slow = next(c for c in report.checks if c.name == "replies inside the timeout")
    assert slow.detail.endswith("timeout 0.005s")
    # the late answers were still answers: every category was answered, the repeat from memory
    assert all(passed for name, passed in result.items() if name.startswith("category"))
    assert result["repeated request_id"] is True
    assert result["silent on other departments' subjects"] is True
    assert adapter.calls == 5  # four categories and the request after the malformed ones

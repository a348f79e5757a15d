"""The example department nodedemo in JavaScript, written from the published contract: it passes
`unstuck adapters check` and shows up, with its request and error counts, in `unstuck adapters list --live`."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require_tool
from unstuck.adapters.registry import discover
from unstuck.cli import main
from unstuck.config import DEFAULT_DEPARTMENTS
from unstuck.embedded import EmbeddedNats
from unstuck.testing import assert_reply, send_coordination

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "adapter-node"


@pytest.fixture
def node_adapter(nats_server: EmbeddedNats) -> Iterator[subprocess.Popen[str]]:
    """The Node adapter serving nodedemo on the test's nats-server (npm ci first on a fresh clone)."""
    hint = "the JavaScript adapter needs Node 20 or newer with npm"
    node, npm = require_tool("node", hint), require_tool("npm", hint)
    if not (EXAMPLE / "node_modules" / "nats").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=EXAMPLE,
            check=True,
            capture_output=True,
            timeout=300,
        )
    process = subprocess.Popen(
        [node, "adapter.js", "--nats", nats_server.url],
        cwd=EXAMPLE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith(f"serving nodedemo on {nats_server.url}"), first
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_node_adapter_passes_the_adapters_check_command(nats_server, node_adapter, capsys):
    code = await asyncio.to_thread(main, ["adapters", "check", "nodedemo", "--nats", nats_server.url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "nodedemo: all 14 checks passed" in out


async def test_node_adapter_answers_a_short_residence_cannot_with_the_regulation(nats_client, node_adapter):
    reply = await send_coordination(
        nats_client,
        "nodedemo",
        category="cannot",
        matter="residence_permit",
        matter_title="居住證申領",
        facts={"months_resided": 4},
    )
    assert_reply(reply, outcome="cannot", department="nodedemo", legal_basis="《居住證暫行條例》第二條")
    bounced = await send_coordination(
        nats_client, "nodedemo", matter="shop_sign", matter_title="門頭招牌設置", request_id="NODE-BOUNCE-c1"
    )
    assert_reply(bounced, outcome="not_ours", belongs_to="chengguan")


async def test_adapters_list_live_shows_the_node_department_with_its_counts(
    nats_server, node_adapter, nats_client, capsys
):
    await send_coordination(nats_client, "nodedemo", matter="id_card_reissue", request_id="NODE-LIVE-0001-c1")
    await nats_client.request("unstuck.dept.nodedemo.coordinate", b"not json", timeout=5)
    code = await asyncio.to_thread(main, ["adapters", "list", "--live", "--json", "--nats", nats_server.url])
    assert code == 0
    live = {row["department"]: row for row in json.loads(capsys.readouterr().out)["live"]}
    assert live["nodedemo"]["name"] == "示例部門（Node.js）"
    assert (live["nodedemo"]["instances"], live["nodedemo"]["requests"]) == (1, 2)
    assert live["nodedemo"]["errors"] == 1


def test_node_example_answers_for_an_example_code_no_installed_or_built_in_department_uses():
    # a real department's team (公安局 is gongan) installs its own adapter beside the example: the
    # example's code must be one that no installed adapter and no default department answers for
    source = (EXAMPLE / "adapter.js").read_text(encoding="utf-8")
    assert 'const CODE = "nodedemo";' in source
    package = json.loads((EXAMPLE / "package.json").read_text(encoding="utf-8"))
    assert package["name"] == "unstuck-adapter-nodedemo"
    assert "nodedemo" not in discover()
    assert "nodedemo" not in DEFAULT_DEPARTMENTS

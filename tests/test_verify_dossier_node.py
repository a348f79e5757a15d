"""examples/verify-dossier-node: a dossier's hash chain checked in JavaScript with a stock RFC 8785
library and none of unstuck's code, on a dossier written by `unstuck audit export`."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import closed_shop_sign, require_tool
from unstuck import cli
from unstuck.canonical import seal

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "verify-dossier-node"


@pytest.fixture
def verify() -> Any:
    """Runs ``node verify.js TARGET``: (exit code, output)."""
    node = require_tool("node", "the dossier verifier needs Node 20 or newer")
    if not (EXAMPLE / "node_modules" / "canonicalize").is_dir():
        pytest.fail(
            "examples/verify-dossier-node/node_modules is missing: run "
            "`(cd examples/verify-dossier-node && npm ci --no-audit --no-fund)` first (.ci/run does)"
        )

    def run(target: Path) -> tuple[int, str]:
        done = subprocess.run(
            [node, str(EXAMPLE / "verify.js"), str(target)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode, done.stdout + done.stderr

    return run


@pytest.fixture
async def dossier(broker, builtin_adapters, nats_client, nats_server, tmp_path) -> tuple[str, Path]:
    """A closed case (8 events) exported by `unstuck audit export`."""
    case_id = await closed_shop_sign(broker, nats_client)
    out = tmp_path / "dossier"
    args = ["audit", "export", case_id, "--out", str(out), "--nats", nats_server.url]
    assert await asyncio.to_thread(cli.main, args) == 0
    return case_id, out


def tampered(dossier: Path, into: Path, case_id: str, change: Any) -> Path:
    """A copy of the dossier whose event lines ``change`` rewrites."""
    copy = Path(shutil.copytree(dossier, into))
    events = copy / f"{case_id}.events.jsonl"
    lines = events.read_bytes().split(b"\n")[:-1]
    events.write_bytes(b"".join(line + b"\n" for line in change(lines)))
    return copy


async def test_an_exported_dossier_verifies_in_node(dossier, verify):
    case_id, out = dossier
    code, output = verify(out)
    assert code == 0, output
    lines = output.splitlines()
    assert len(lines) == 9
    assert all(
        line.startswith(f"line {n}  seq {n}  ") and line.endswith("  ok")
        for n, line in enumerate(lines[:8], 1)
    )
    assert "case.opened" in lines[0] and "case.evaluated" in lines[7]
    head = json.loads((out / f"{case_id}.events.jsonl").read_bytes().splitlines()[-1])["hash"]
    assert lines[8] == f"INTACT: 8 event(s) of case {case_id}, seq 1 to 8, head {head}"


async def test_one_edited_byte_fails_and_names_the_event(dossier, verify, tmp_path):
    case_id, out = dossier

    def edit(lines: list[bytes]) -> list[bytes]:
        at = lines[2].index(b'"actor":"') + len(b'"actor":"')  # seq 3: w-zhang becomes x-zhang, say
        lines[2] = lines[2][:at] + bytes([lines[2][at] ^ 1]) + lines[2][at + 1 :]
        return lines

    code, output = verify(tampered(out, tmp_path / "edited", case_id, edit))
    assert code == 1, output
    verdict = output.splitlines()[-1]
    assert verdict.startswith("NOT INTACT: line 3 (seq 3, ")
    assert verdict.endswith(
        "its hash does not match its content (sha256 of the event's JCS form without hash)"
    )
    assert sum("FAILED" in line for line in output.splitlines()) == 1  # the events after it link to it


async def test_bytes_re_encoded_with_the_same_content_fail_as_not_jcs(dossier, verify, tmp_path):
    case_id, out = dossier

    def respace(lines: list[bytes]) -> list[bytes]:
        lines[4] = json.dumps(json.loads(lines[4]), ensure_ascii=False).encode()  # spaces after : and ,
        return lines

    code, output = verify(tampered(out, tmp_path / "respaced", case_id, respace))
    assert code == 1, output
    assert output.splitlines()[-1].startswith("NOT INTACT: line 5 (seq 5, ")
    assert "its stored bytes are not the JCS form of the event" in output.splitlines()[-1]


async def test_a_dropped_event_breaks_the_chain_at_the_next(dossier, verify, tmp_path):
    case_id, out = dossier
    code, output = verify(tampered(out, tmp_path / "dropped", case_id, lambda lines: lines[:5] + lines[6:]))
    assert code == 1, output
    assert output.splitlines()[-1].startswith("NOT INTACT: line 6 (seq 7, ")
    assert output.splitlines()[-1].endswith("seq is 7 where 6 was due")


def test_no_dossier_is_exit_2(verify, tmp_path):
    assert verify(tmp_path / "nowhere")[0] == 2
    assert verify(tmp_path)[0] == 2  # a directory without a .events.jsonl file


# --- the same bytes in Python and in JavaScript ------------------------------------------------------

EDGE_KEYS = [
    "a",
    "hash_x",
    "\ufb33",
    "\U0001f600",
    "\ue000",
    "\uffff",
    "\U00010000",
    "€",
    "\r",
    "ö",
    "中文",
    "\x7f",
]
EDGE_NUMBERS = [0, -1, 2**53 - 1, -(2**53 - 1), 1.0, -0.0, 0.5, 1e21, 1e-7, 1e-6, 1e16, 2.0**60, 5e-324]
EDGE_TEXT = [
    "",
    "\x00\x1f",
    '"\\/',
    "\u2028\u2029",
    "中文，全形標點。",
    "\U0001f600",
    "a\nb\tc",
    "1.5",
    ":1e5",
]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value with the edges of JCS: key order, number form, escapes."""
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice([*EDGE_NUMBERS, None, True, False])
    if kind == 1:
        bits = rng.getrandbits(64)
        double = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
        return (
            double if double == double and abs(double) != float("inf") else rng.randrange(-(2**53) + 1, 2**53)
        )
    if kind in (2, 3):
        return rng.choice(EDGE_TEXT) + "".join(rng.choice(EDGE_KEYS) for _ in range(rng.randrange(3)))
    if kind == 4:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = {
        "".join(rng.choice(EDGE_KEYS) for _ in range(rng.randrange(1, 4))) for _ in range(rng.randrange(5))
    }
    return {key: random_value(rng, depth + 1) for key in keys}


def test_events_sealed_in_python_verify_in_node_whatever_their_data(verify, tmp_path):
    rng = random.Random(8785)
    case_id, prev_hash, lines = "DD-20260928-0001", "", []
    for seq in range(1, 301):
        fields = {
            "event_id": f"01JDZ6X3E4B3N8Q3M1ZK{seq:06d}",
            "case_id": case_id,
            "seq": seq,
            "type": "case.noted",
            "at": "2026-09-28T01:00:00Z",
            "actor": "w-zhang",
            "data": {"value": random_value(rng), **{k: random_value(rng) for k in rng.sample(EDGE_KEYS, 3)}},
            "prev_hash": prev_hash,
            "v": 1,
        }
        body, prev_hash = seal(fields)
        lines.append(body + b"\n")
    (tmp_path / f"{case_id}.events.jsonl").write_bytes(b"".join(lines))
    code, output = verify(tmp_path)
    assert code == 0, "\n".join(x for x in output.splitlines() if "FAILED" in x)[:2000]
    assert output.splitlines()[-1].startswith(f"INTACT: 300 event(s) of case {case_id}, seq 1 to 300")

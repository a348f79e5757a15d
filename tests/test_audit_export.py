"""`unstuck case timeline` and `unstuck audit export`: one case told and written out for an auditor."""

from __future__ import annotations

import asyncio
import hashlib
import json
from itertools import pairwise

import pytest
from nats.js.api import StorageType, StreamConfig

from conftest import closed_shop_sign
from unstuck import cli
from unstuck.canonical import canonical_json
from unstuck.schemas import EVENT_LABELS
from unstuck.schemas.subjects import FORMAT_METADATA_KEY, STORAGE_FORMAT, case_subject

ID_NUMBER = "92210603MA0KC8QX2K"  # the applicant of sample 01
PHONE = "13904151234"

FORMAT_2 = {FORMAT_METADATA_KEY: str(STORAGE_FORMAT)}  # a copy stream read as storage format 2


@pytest.fixture
async def shop_sign(broker, builtin_adapters, nats_client) -> str:
    """Sample 01 (a second-floor shop sign) answered cannot, closed and rated good."""
    return await closed_shop_sign(broker, nats_client)


async def run(*args: str) -> int:
    return await asyncio.to_thread(cli.main, list(args))


async def stored_bodies(nats_client, case_id: str) -> list[bytes]:
    js = nats_client.jetstream()
    out, seq = [], 0
    while True:
        try:
            msg = await js.get_msg("UNSTUCK_CASES", seq=seq + 1, subject=case_subject(case_id), next=True)
        except Exception:
            return out
        seq = msg.seq
        out += bytes(msg.data).split(b"\n")  # a decision: its events one per line


async def test_timeline_tells_who_did_what_when_in_chinese_and_english(shop_sign, nats_server, capsys):
    code = await run("case", "timeline", shop_sign, "--nats", nats_server.url)
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) == 8
    for row, event in zip(rows, ["case.opened", "case.classified", "coordination.requested"], strict=False):
        zh, en = EVENT_LABELS[event]
        assert zh in row and en in row
    assert "w-zhang" in rows[0] and "2026-09-28 09:00:00" in rows[0]  # the centre's time, UTC+8
    assert "chengguan: cannot" in rows[3]
    assert "銷號" in rows[6] and "好差評" in rows[7]
    assert "record intact" in out


async def test_timeline_masks_the_applicants_identifiers_unless_revealed(shop_sign, nats_server, capsys):
    await run("case", "timeline", shop_sign, "--nats", nats_server.url)
    masked = capsys.readouterr().out
    await run("case", "timeline", shop_sign, "--nats", nats_server.url, "--reveal", "--json")
    revealed = capsys.readouterr().out
    assert ID_NUMBER not in masked and "9221**********QX2K" in masked
    assert ID_NUMBER in revealed
    assert json.loads(revealed)["verification"]["ok"] is True


async def test_export_writes_the_exact_stored_bodies_the_state_and_a_checksum_file(
    shop_sign, nats_client, nats_server, tmp_path, capsys
):
    code = await run("audit", "export", shop_sign, "--out", str(tmp_path), "--nats", nats_server.url)
    assert code == 0
    lines = (tmp_path / f"{shop_sign}.events.jsonl").read_bytes().splitlines()
    assert lines == await stored_bodies(nats_client, shop_sign)
    for previous, line in pairwise(lines):  # an auditor can re-check the chain by hand
        event = json.loads(line)
        rest = {k: v for k, v in event.items() if k != "hash"}
        assert hashlib.sha256(canonical_json(rest)).hexdigest() == event["hash"]
        assert event["prev_hash"] == json.loads(previous)["hash"]
    document = json.loads((tmp_path / f"{shop_sign}.state.json").read_text(encoding="utf-8"))
    assert document["state"]["state"] == "evaluated"
    assert document["verification"]["ok"] is True
    assert document["verification"]["recorded_head"]["seq"] == 8
    assert document["state"]["intake"]["applicant"]["id_number"] == "9221**********QX2K"
    sums = (tmp_path / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 3
    for line in sums:
        digest, name = line.split("  ")
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest


async def test_export_html_is_self_contained_with_chain_hashes_and_masked_identifiers(
    shop_sign, nats_server, tmp_path, capsys
):
    await run("audit", "export", shop_sign, "--out", str(tmp_path), "--nats", nats_server.url)
    page = (tmp_path / f"{shop_sign}.html").read_text(encoding="utf-8")
    events = [json.loads(x) for x in (tmp_path / f"{shop_sign}.events.jsonl").read_text().splitlines()]
    assert page.startswith("<!DOCTYPE html>")
    assert "記錄完整 Record intact" in page
    assert all(e["hash"] in page for e in events)
    assert "受理" in page and "opened" in page and "好差評" in page
    assert ID_NUMBER not in page and PHONE not in page
    assert "9221**********QX2K" in page
    for outside in ("<script", "src=", "http://", "https://", "<link"):
        assert outside not in page


async def test_export_with_reveal_shows_the_identifiers(shop_sign, nats_server, tmp_path, capsys):
    await run("audit", "export", shop_sign, "--out", str(tmp_path), "--nats", nats_server.url, "--reveal")
    page = (tmp_path / f"{shop_sign}.html").read_text(encoding="utf-8")
    assert ID_NUMBER in page and PHONE in page


async def test_export_of_a_tampered_case_exits_1_and_the_report_names_the_finding(
    shop_sign, nats_client, nats_server, tmp_path, capsys
):
    js = nats_client.jetstream()
    await js.add_stream(
        StreamConfig(
            name="AUDIT_COPY",
            subjects=["audit.copy.case.>"],
            storage=StorageType.FILE,
            metadata=FORMAT_2,
            allow_direct=True,
        )
    )
    for i, body in enumerate(await stored_bodies(nats_client, shop_sign)):
        if i == 3:
            event = json.loads(body)
            body = canonical_json({**event, "data": {**event["data"], "outcome": "resolved"}})
        await js.publish(f"audit.copy.case.{shop_sign}", body, stream="AUDIT_COPY")
    code = await run(
        "audit",
        "export",
        shop_sign,
        "--out",
        str(tmp_path),
        "--nats",
        nats_server.url,
        "--stream",
        "AUDIT_COPY",
    )
    out = capsys.readouterr().out
    page = (tmp_path / f"{shop_sign}.html").read_text(encoding="utf-8")
    assert code == 1
    assert "hash_mismatch" in out and "seq 4" in out
    assert "記錄有誤 Record NOT intact" in page and "hash_mismatch" in page
    code = await run("case", "timeline", shop_sign, "--nats", nats_server.url, "--stream", "AUDIT_COPY")
    row = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("4 "))
    assert code == 1 and row.rstrip().endswith("hash_mismatch")

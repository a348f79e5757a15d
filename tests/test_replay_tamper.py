"""Tampering with a copy of a real case stream: `unstuck replay --verify` names each change precisely.

The broker records real cases in UNSTUCK_CASES (deny_delete, deny_purge). Each test republishes the
stored bytes into a copy stream, with one kind of tampering on the way, and verifies the copy against
the heads the broker recorded for the original (UNSTUCK_HEADS).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from nats.js.api import StorageType, StreamConfig

from conftest import sample
from unstuck import cli
from unstuck.canonical import canonical_json, seal
from unstuck.replay import FINDINGS, replay, verify_stream
from unstuck.replay.parallel import route, split_buckets
from unstuck.replay.replayer import bucket_of
from unstuck.schemas.subjects import FORMAT_METADATA_KEY, STORAGE_FORMAT
from unstuck.testing import api_call, wait_for

COPY = "AUDIT_COPY"
COPY_PREFIX = "audit.copy.case"

Message = tuple[str, dict[str, Any], bytes]  # (case id, parsed fields, exact stored body of one event)

FORMAT_2 = {FORMAT_METADATA_KEY: str(STORAGE_FORMAT)}  # a copy stream read as storage format 2


@pytest.fixture
async def recorded(broker, builtin_adapters, nats_client) -> dict[str, str]:
    """Four real cases: two closed and evaluated, two answered; returns {"A": case_id, ...}."""
    ids = {}
    for name, prefix in zip("ABCD", ("01", "02", "07", "12"), strict=True):
        ids[name] = (await api_call(nats_client, "case.open", sample(prefix)))["case_id"]
    await wait_for(lambda: all(broker.state_of(c).state == "answered" for c in ids.values()))
    for name in "AB":
        await api_call(
            nats_client,
            "case.close",
            {
                "case_id": ids[name],
                "actor": "leader-gao",
                "outcome": broker.state_of(ids[name]).resolution["outcome"],  # as the departments answered
                "explanation": "已向申請人說明",
            },
        )
        await api_call(nats_client, "case.evaluate", {"case_id": ids[name], "rating": "good"})
    await broker.store.heads.flush()  # the heads the tests compare copies against are all recorded
    return ids


async def stored_messages(js: Any, stream: str = "UNSTUCK_CASES") -> list[Message]:
    info = await js.stream_info(stream)
    out = []
    for seq in range(int(info.state.first_seq), int(info.state.last_seq) + 1):
        msg = await js.get_msg(stream, seq)
        for body in bytes(msg.data).split(b"\n"):  # a decision: its events one per line
            fields = json.loads(body)
            out.append((fields["case_id"], fields, body))
    return out


async def copy_stream(js: Any, messages: list[Message], name: str = COPY, prefix: str = COPY_PREFIX) -> None:
    """A tamperable copy: no deny_delete/deny_purge, subjects under another prefix, bodies as given,
    each event a decision of its own (storage format 2 allows a decision of one event)."""
    await js.add_stream(
        StreamConfig(
            name=name,
            subjects=[f"{prefix}.>"],
            storage=StorageType.FILE,
            metadata=FORMAT_2,
            allow_direct=True,
        )
    )
    for case_id, _, body in messages:
        await js.publish(f"{prefix}.{case_id}", body, stream=name)


def positions(messages: list[Message], case_id: str) -> list[int]:
    return [i for i, (c, _, _) in enumerate(messages) if c == case_id]


def resealed(fields: dict[str, Any], **changes: Any) -> bytes:
    """The event with ``changes``, correctly sealed again (a forger who knows the hash rule)."""
    body, _ = seal({**{k: v for k, v in fields.items() if k != "hash"}, **changes})
    return body


def found(report: Any) -> set[tuple[str, str | None, int | None]]:
    return {(f.code, f.case_id, f.seq) for f in report.findings}


async def test_the_untouched_record_and_its_copy_verify_clean(recorded, nats_client, broker):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    original = await verify_stream(nats_client)
    await copy_stream(js, messages)
    copy = await verify_stream(nats_client, COPY)
    for report in (original, copy):
        assert report.ok, [str(f) for f in report.findings]
        assert report.events == len(messages)
        assert len(report.cases) == 4
        assert report.heads_checked == 4
    for case_id in recorded.values():
        assert copy.cases[case_id].state.to_dict() == broker.state_of(case_id).to_dict()


async def test_changed_data_is_a_hash_mismatch_at_that_event(recorded, nats_client):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    i = positions(messages, recorded["A"])[3]  # seq 4: the department's reply
    case_id, fields, _ = messages[i]
    data = {**fields["data"], "message": "已辦結（改過的答覆）"}
    messages[i] = (case_id, fields, canonical_json({**fields, "data": data}))  # old hash kept
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("hash_mismatch", recorded["A"], 4)}
    assert report.findings[0].stream_seq == i + 1
    assert report.cases[recorded["A"]].state.seq == 3  # the state stops before the changed event


async def test_bytes_rewritten_in_another_json_form_are_not_canonical(recorded, nats_client):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    i = positions(messages, recorded["B"])[1]
    case_id, fields, _ = messages[i]
    messages[i] = (case_id, fields, json.dumps(fields, ensure_ascii=True, indent=1).encode())
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("not_canonical", recorded["B"], 2)}


async def test_a_dropped_event_is_a_sequence_gap(recorded, nats_client):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    del messages[positions(messages, recorded["A"])[4]]  # seq 5
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("seq_gap", recorded["A"], 5)}


async def test_two_swapped_events_are_reported_out_of_order(recorded, nats_client):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    i, j = positions(messages, recorded["C"])[1:3]  # seq 2 and seq 3
    messages[i], messages[j] = messages[j], messages[i]
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("seq_out_of_order", recorded["C"], 2)}


async def test_a_forged_event_that_does_not_continue_the_chain_breaks_it_and_passes_the_recorded_head(
    recorded, nats_client
):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    last = positions(messages, recorded["C"])[-1]
    case_id, fields, _ = messages[last]
    before = messages[positions(messages, case_id)[-2]][1]
    forged = resealed(
        fields,
        seq=fields["seq"] + 1,
        prev_hash=before["hash"],  # a fork from the event before the last
        event_id="01FORGEDFORGEDFORGEDFORGED",
        type="case.closed",
        actor="w-zhang",
        data={"outcome": "resolved", "explanation": "補記的銷號", "closed_by": "w-zhang", "on_time": True},
    )
    messages.append((case_id, json.loads(forged), forged))
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    n = fields["seq"] + 1
    assert found(report) == {("prev_hash_mismatch", case_id, n), ("untracked_tail", case_id, n)}


async def test_a_forged_tail_rehashed_to_a_perfect_chain_is_caught_only_by_the_recorded_head(
    recorded, nats_client
):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    where = positions(messages, recorded["A"])
    prev = messages[where[4]][1]["prev_hash"]
    for i in where[4:]:  # rewrite seq 5 to the end, each event sealed and chained anew
        case_id, fields, _ = messages[i]
        data = dict(fields["data"])
        if fields["type"] == "case.evaluated":
            data["level"], data["rating"] = "dissatisfied", "bad"  # a forged 差評, consistent in itself
        body = resealed(fields, prev_hash=prev, data=data)
        messages[i] = (case_id, json.loads(body), body)
        prev = json.loads(body)["hash"]
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("head_mismatch", recorded["A"], 8)}


async def test_a_forged_event_inserted_mid_chain_is_a_repeated_sequence_number(recorded, nats_client):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    where = positions(messages, recorded["B"])
    case_id, fields, _ = messages[where[3]]  # the original seq 4
    forged = resealed(
        fields, event_id="01FORGEDINSERTEDINSERTED00", data={**fields["data"], "message": "偽造答覆"}
    )
    messages.insert(where[3], (case_id, json.loads(forged), forged))  # stored before the original
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("seq_repeat", case_id, 4), ("prev_hash_mismatch", case_id, 5)}


async def test_a_cut_off_tail_is_caught_by_the_recorded_head(recorded, nats_client):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    for i in reversed(positions(messages, recorded["B"])[-2:]):  # seq 6 and 7 cut off
        del messages[i]
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("tail_missing", recorded["B"], 6)}
    assert "seq 6-7 cut off" in report.findings[0].message


async def test_a_whole_case_missing_from_the_stream_is_its_tail_missing(recorded, nats_client):
    js = nats_client.jetstream()
    messages = [m for m in await stored_messages(js) if m[0] != recorded["D"]]
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("tail_missing", recorded["D"], 1)}


async def test_an_event_stored_twice_is_a_repeat_with_a_duplicate_event_id(recorded, nats_client):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    messages.append(messages[positions(messages, recorded["C"])[2]])  # seq 3 again, at the end
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("seq_repeat", recorded["C"], 3), ("duplicate_event_id", recorded["C"], 3)}
    assert {f.stream_seq for f in report.findings} == {len(messages)}


async def test_an_event_moved_to_another_cases_subject_is_a_subject_mismatch(recorded, nats_client):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    await js.add_stream(
        StreamConfig(
            name=COPY,
            subjects=[f"{COPY_PREFIX}.>"],
            storage=StorageType.FILE,
            metadata=FORMAT_2,
            allow_direct=True,
        )
    )
    moved = positions(messages, recorded["D"])[2]
    for i, (case_id, _, body) in enumerate(messages):
        subject_case = recorded["A"] if i == moved else case_id
        await js.publish(f"{COPY_PREFIX}.{subject_case}", body, stream=COPY)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("subject_mismatch", recorded["D"], 3)}


async def test_a_resealed_event_whose_payload_breaks_its_schema_is_schema_invalid(recorded, nats_client):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    last = positions(messages, recorded["A"])[-1]  # seq 8, case.evaluated
    case_id, fields, _ = messages[last]
    body = resealed(fields, data={**fields["data"], "rating": "so-so"})
    messages[last] = (case_id, json.loads(body), body)
    await copy_stream(js, messages)
    report = await verify_stream(nats_client, COPY)
    assert found(report) == {("schema_invalid", case_id, 8), ("head_mismatch", case_id, 8)}
    assert "rating" in next(f.message for f in report.findings if f.code == "schema_invalid")


async def test_every_tampering_at_once_is_each_reported_by_the_cli_with_exit_1(
    recorded, nats_client, nats_server, capsys
):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    a, b, c, d = (positions(messages, recorded[k]) for k in "ABCD")
    case_a, fields, _ = messages[a[2]]
    changed = (case_a, fields, canonical_json({**fields, "data": {**fields["data"], "question": "改"}}))
    messages[a[2]] = changed  # A seq 3 changed
    drop = {b[1], c[-1]}  # B seq 2 dropped, C's tail (seq 5) cut off
    messages[d[1]], messages[d[2]] = messages[d[2]], messages[d[1]]  # D seq 2 and 3 swapped
    await copy_stream(js, [m for i, m in enumerate(messages) if i not in drop])
    code = await asyncio.to_thread(
        cli.main, ["replay", "--verify", "--stream", COPY, "--nats", nats_server.url, "--format", "json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert {(f["code"], f["case_id"], f["seq"]) for f in out["findings"]} == {
        ("hash_mismatch", recorded["A"], 3),
        ("seq_gap", recorded["B"], 2),
        ("tail_missing", recorded["C"], 5),
        ("seq_out_of_order", recorded["D"], 2),
    }
    assert out["summary"]["ok"] is False
    assert all(f["code"] in FINDINGS for f in out["findings"])


async def test_the_cli_exits_0_on_an_intact_record_and_names_each_finding_in_its_table(
    recorded, nats_client, nats_server, capsys
):
    code = await asyncio.to_thread(cli.main, ["replay", "--verify", "--nats", nats_server.url])
    out = capsys.readouterr().out
    assert code == 0
    assert "record intact (4 recorded head(s) match)" in out
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    del messages[positions(messages, recorded["B"])[2]]
    await copy_stream(js, messages)
    code = await asyncio.to_thread(
        cli.main, ["replay", "--verify", "--stream", COPY, "--nats", nats_server.url]
    )
    out = capsys.readouterr().out
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("seq_gap"))
    assert recorded["B"] in line and " 3 " in line
    assert "record NOT intact (seq_gap 1)" in out


async def test_a_copy_under_several_subject_prefixes_verifies_by_the_last_subject_token(
    recorded, nats_client
):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    await js.add_stream(
        StreamConfig(
            name=COPY,
            subjects=["audit.a.>", "audit.b.>"],
            storage=StorageType.FILE,
            metadata=FORMAT_2,
            allow_direct=True,
        )
    )
    for i, (case_id, _, body) in enumerate(messages):
        await js.publish(f"audit.{'ab'[i % 2]}.{case_id}", body, stream=COPY)
    report = await verify_stream(nats_client, COPY)
    assert report.ok, [str(f) for f in report.findings]
    assert report.subject_prefix is None and report.events == len(messages)
    one = await verify_stream(nats_client, COPY, case_id=recorded["A"])
    assert one.ok and list(one.cases) == [recorded["A"]]


async def split_and_single(nats_server, tmp_path) -> tuple[int, dict, int, dict]:
    """The CLI's JSON of the copy, replayed in one process and split over two: the same bytes but
    for the time taken."""
    codes, texts = [], []
    for jobs in ("1", "2"):
        target = tmp_path / f"jobs{jobs}.json"
        args = ["replay", "--verify", "--stream", COPY, "--nats", nats_server.url, "--format", "json"]
        codes.append(await asyncio.to_thread(cli.main, [*args, "--jobs", jobs, "--out", str(target)]))
        lines = target.read_text(encoding="utf-8").splitlines(keepends=True)
        texts.append("".join(line for line in lines if not line.startswith('  "seconds": ')))
    assert texts[1] == texts[0]
    return codes[0], json.loads(texts[0]), codes[1], json.loads(texts[1])


async def test_a_replay_split_over_two_processes_reports_what_one_process_reports(
    recorded, nats_client, nats_server, tmp_path, capsys
):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    a, b, c, d = (positions(messages, recorded[k]) for k in "ABCD")
    # A and D are replayed by the reading process, B and C by the worker (their ids' buckets)
    case_a, fields, _ = messages[a[2]]  # A seq 3 changed, its old hash kept
    messages[a[2]] = (
        case_a,
        fields,
        canonical_json({**fields, "data": {**fields["data"], "question": "改"}}),
    )
    case_b, fields, _ = messages[b[3]]  # B seq 4 resealed with the event id of A seq 2
    reused = resealed(fields, event_id=messages[a[1]][1]["event_id"])
    messages[b[3]] = (case_b, json.loads(reused), reused)
    messages[c[1]], messages[c[2]] = messages[c[2]], messages[c[1]]  # C seq 2 and 3 swapped
    await js.add_stream(
        StreamConfig(
            name=COPY,
            subjects=[f"{COPY_PREFIX}.>"],
            storage=StorageType.FILE,
            metadata=FORMAT_2,
            allow_direct=True,
        )
    )
    for i, (case_id, _, body) in enumerate(messages):
        on = recorded["B"] if i == d[2] else case_id  # D seq 3 stored on B's subject
        await js.publish(f"{COPY_PREFIX}.{on}", body, stream=COPY)
    await js.publish(f"{COPY_PREFIX}.{recorded['C']}", b"not json", stream=COPY)

    code_1, single, code_2, split = await split_and_single(nats_server, tmp_path)
    assert code_1 == code_2 == 1
    assert split == single
    assert {(f["code"], f["case_id"], f["seq"]) for f in split["findings"]} == {
        ("hash_mismatch", recorded["A"], 3),
        ("duplicate_event_id", recorded["B"], 4),
        ("prev_hash_mismatch", recorded["B"], 5),
        ("seq_out_of_order", recorded["C"], 2),
        ("unreadable", recorded["C"], None),
        ("subject_mismatch", recorded["D"], 3),
    }
    states = {c["case_id"]: (c["state"]["seq"], c["stopped"]) for c in split["cases"]}
    assert states == {
        recorded["A"]: (2, "record broken at seq 3"),
        recorded["B"]: (4, "record broken at seq 5"),
        recorded["C"]: (1, "record broken at seq 3"),
        recorded["D"]: (len(d), ""),  # its moved event is still in its place in the stream
    }
    one = await replay(nats_client, COPY, verify=True, jobs=1)
    two = await replay(nats_client, COPY, verify=True, jobs=2)
    assert two.findings == one.findings and two.summary() | {"seconds": 0} == one.summary() | {"seconds": 0}
    assert {c: t.state for c, t in two.cases.items()} == {c: t.state for c, t in one.cases.items()}


async def test_a_body_whose_case_cannot_be_read_from_its_bytes_is_replayed_again_in_one_process(
    recorded, nats_client, nats_server, tmp_path
):
    js = nats_client.jetstream()
    messages = await stored_messages(js)
    i = positions(messages, recorded["A"])[1]
    case_id, fields, body = messages[i]
    owner = {part: buckets for part, buckets in enumerate(split_buckets(2))}
    # the case id with one character escaped: the same JSON, other bytes, routed to the other part
    mine = next(p for p, buckets in owner.items() if bucket_of(case_id.encode()) in buckets)
    for at in range(len(case_id)):
        escaped = case_id[:at] + f"\\u{ord(case_id[at]):04x}" + case_id[at + 1 :]
        rewritten = body.replace(f'"case_id":"{case_id}"'.encode(), f'"case_id":"{escaped}"'.encode())
        if route("x", rewritten) not in owner[mine]:
            break
    else:
        raise AssertionError("no escaped form of the case id is routed to the other part")
    messages[i] = (case_id, fields, rewritten)
    await copy_stream(js, messages)
    code_1, single, code_2, split = await split_and_single(nats_server, tmp_path)
    assert code_1 == code_2 == 1
    assert split == single
    assert [(f["code"], f["case_id"], f["seq"]) for f in split["findings"]] == [
        ("not_canonical", recorded["A"], 2)
    ]

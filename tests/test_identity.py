"""Who acted is proven by NATS, never typed: against a real nats-server running the generated configuration.

Each staff member has a NATS user of their own (``staff-<id>``) that may publish only on
``unstuck.api.as.staff-<id>.>``; the console only on ``unstuck.api.web.<staff>.>`` and the
applicant's evaluation screen; a department on its own ``case.record``. The broker takes the actor
from the subject, refuses a body that names someone else, and the record says how each actor was
proven (``auth`` in the envelope).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats.errors
import pytest
import pytest_asyncio
from nats.aio.client import Client
from test_security_permissions import Violations

from conftest import sample
from unstuck.broker import Broker
from unstuck.clock import SimulatedClock
from unstuck.config import Config
from unstuck.connection import Connection
from unstuck.embedded import EmbeddedNats
from unstuck.natsconfig import CredentialStore, generate
from unstuck.replay import verify_stream
from unstuck.schemas.subjects import VIA_WEB, api_subject
from unstuck.testing import DEFAULT_START, fast_config

DEPARTMENTS = ["chengguan", "renshe", "scjg"]
STAFF = {"w-zhang": "clerk", "w-li": "clerk", "leader-gao": "leader_in_charge", "director-ma": "director"}


@pytest.fixture(scope="module")
def secure_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("identity")
    generate(directory, DEPARTMENTS, staff=sorted(STAFF))
    return directory


@pytest.fixture(scope="module")
def secure_server(secure_dir: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(secure_dir, config_file=secure_dir / "nats-server.conf").start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def connect(secure_server: EmbeddedNats, secure_dir: Path) -> AsyncIterator[Any]:
    """``await connect("staff-w-zhang")`` -> (client, violations), on that principal's own credentials."""
    store = CredentialStore(secure_dir)
    conn = Connection(url=secure_server.url)

    async def open_as(principal: str) -> tuple[Client, Violations]:
        violations = Violations()
        nc = await conn.connect(
            f"test-{principal}",
            auth=store.get(principal),
            error_cb=violations.callback,
            allow_reconnect=False,
        )
        return nc, violations

    yield open_as
    await conn.close()


def identity_config() -> Config:
    config = fast_config()
    config.staff.update(STAFF)
    config.broker.require_identity = True
    return config


@pytest_asyncio.fixture
async def broker(connect: Any) -> AsyncIterator[Broker]:
    nc, _ = await connect("broker")
    b = Broker(nc, identity_config(), SimulatedClock(DEFAULT_START))
    await b.start()
    yield b
    await b.stop()


async def ask(
    nc: Client, principal: str | None, verb: str, body: dict[str, Any], via: str = "as"
) -> dict[str, Any]:
    """One API request on the principal's own subject (None: anonymous); the broker's whole reply."""
    msg = await nc.request(api_subject(verb, principal, via), json.dumps(body).encode(), timeout=10)
    return json.loads(msg.data)


async def stored(broker: Broker, case_id: str, event_type: str) -> list[dict[str, Any]]:
    return [e.fields for e in await broker.store.read_case(case_id) if e.type == event_type]


async def opened_by(nc: Client, principal: str, broker: Broker) -> str:
    body = sample("13")  # hard, scjg; no department answers here (no adapter runs): it stays coordinating
    body.pop("owner")
    reply = await ask(nc, principal, "case.open", body)
    assert reply["ok"], reply
    return str(reply["result"]["case_id"])


async def test_a_clerk_cannot_publish_as_another_nor_read_their_inbox(connect: Any, broker: Broker) -> None:
    zhang, zhang_errors = await connect("staff-w-zhang")
    await zhang.publish(api_subject("case.close", "staff-w-li"), b"{}")
    await zhang_errors.expect("publish", "unstuck.api.as.staff-w-li.case.close")
    await zhang.subscribe("_INBOX.staff-w-li.>")
    await zhang_errors.expect("subscription", "_INBOX.staff-w-li.>")
    cli, cli_errors = await connect("cli")  # the shared anonymous user cannot borrow anyone's subject
    await cli.publish(api_subject("case.close", "staff-w-zhang"), b"{}")
    await cli_errors.expect("publish", "unstuck.api.as.staff-w-zhang.case.close")
    await cli.publish(api_subject("case.evaluate", "applicant", VIA_WEB), b"{}")
    await cli_errors.expect("publish", "unstuck.api.web.applicant.case.evaluate")


async def test_the_actor_comes_from_the_credentials_and_a_body_naming_another_is_refused(
    connect: Any, broker: Broker
) -> None:
    zhang, _ = await connect("staff-w-zhang")
    case_id = await opened_by(zhang, "staff-w-zhang", broker)
    [opened] = await stored(broker, case_id, "case.opened")
    assert (opened["actor"], opened["auth"]) == ("w-zhang", "nats")
    assert opened["data"]["owner"] == "w-zhang"

    forged = await ask(
        zhang,
        "staff-w-zhang",
        "case.handover",
        {"case_id": case_id, "actor": "leader-gao", "owner": "w-li", "reason": "換人"},
    )
    assert forged["ok"] is False and forged["error"]["code"] == "actor_mismatch"
    assert forged["error"]["field"] == "actor" and "signed in as 'w-zhang'" in forged["error"]["message"]

    cli, _ = await connect("cli")
    anonymous = await ask(
        cli,
        None,
        "case.handover",
        {"case_id": case_id, "actor": "w-zhang", "owner": "w-li", "reason": "換人"},
    )
    assert anonymous["error"]["code"] == "unauthenticated"
    assert "本人身份" in anonymous["error"]["message_zh"]


async def test_an_extension_is_never_approved_by_the_leader_who_requested_it(
    connect: Any, broker: Broker
) -> None:
    zhang, _ = await connect("staff-w-zhang")
    gao, _ = await connect("staff-leader-gao")
    ma, _ = await connect("staff-director-ma")
    case_id = await opened_by(zhang, "staff-w-zhang", broker)
    asked = await ask(
        gao,
        "staff-leader-gao",
        "case.extend",
        {"case_id": case_id, "working_days": 2, "reason": "等省廳回函"},
    )
    assert asked["ok"], asked
    own = await ask(gao, "staff-leader-gao", "case.approve_extension", {"case_id": case_id})
    assert own["ok"] is False and own["error"]["field"] == "actor"
    assert (
        own["error"]["message_zh"]
        == "延期由 leader-gao 本人申請，不能自己批准：須由另一位領導（分管領導及以上）批准"
    )
    approved = await ask(ma, "staff-director-ma", "case.approve_extension", {"case_id": case_id})
    assert approved["ok"], approved
    [extended] = await stored(broker, case_id, "case.extended")
    assert (extended["actor"], extended["auth"], extended["data"]["approved_by"]) == (
        "director-ma",
        "nats",
        "director-ma",
    )


async def test_only_the_department_records_its_answer_and_only_the_applicant_rates(
    connect: Any, broker: Broker
) -> None:
    zhang, _ = await connect("staff-w-zhang")
    scjg, _ = await connect("dept-scjg")
    console, _ = await connect("console")
    case_id = await opened_by(zhang, "staff-w-zhang", broker)
    answer = {
        "case_id": case_id,
        "department": "scjg",
        "outcome": "resolved",
        "message": "已核准",
        "handler": "登記註冊科",
    }
    by_clerk = await ask(zhang, "staff-w-zhang", "case.record", answer)
    assert by_clerk["ok"] is False and "部門答覆只能由該部門" in by_clerk["error"]["message_zh"]
    by_department = await ask(scjg, "dept-scjg", "case.record", answer)
    assert by_department["ok"], by_department
    [replied] = await stored(broker, case_id, "coordination.replied")
    assert (replied["actor"], replied["auth"]) == ("scjg", "nats")

    closing = {"case_id": case_id, "outcome": "resolved", "explanation": "已當場辦結"}
    assert (await ask(zhang, "staff-w-zhang", "case.close", closing))["ok"]
    typed = await ask(zhang, "staff-w-zhang", "case.evaluate", {"case_id": case_id, "rating": "good"})
    assert (
        typed["ok"] is False
        and typed["error"]["message_zh"] == "好差評由申請人本人在評價屏或網上作出，工作人員不能代評"
    )
    rated = await ask(
        console, "applicant", "case.evaluate", {"case_id": case_id, "rating": "good"}, via=VIA_WEB
    )
    assert rated["ok"], rated
    [evaluated] = await stored(broker, case_id, "case.evaluated")
    assert (evaluated["actor"], evaluated["auth"]) == ("applicant", "web")


async def test_the_console_acts_for_the_staff_member_signed_in_and_no_one_acts_as_system(
    connect: Any, broker: Broker
) -> None:
    console, _ = await connect("console")
    body = sample("13")
    body.pop("owner")
    opened = await ask(console, "w-li", "case.open", body, via=VIA_WEB)
    assert opened["ok"], opened
    case_id = opened["result"]["case_id"]
    [event] = await stored(broker, case_id, "case.opened")
    assert (event["actor"], event["auth"]) == ("w-li", "web")
    zhang, _ = await connect("staff-w-zhang")
    as_system = await ask(
        zhang,
        "staff-w-zhang",
        "case.handover",
        {"case_id": case_id, "actor": "system", "owner": "w-zhang", "reason": "x"},
    )
    assert as_system["error"]["code"] == "actor_mismatch"  # the body cannot name system either


async def test_a_reveal_is_recorded_with_who_when_and_why_and_the_record_still_verifies(
    connect: Any, broker: Broker
) -> None:
    zhang, _ = await connect("staff-w-zhang")
    case_id = await opened_by(zhang, "staff-w-zhang", broker)
    no_reason = await ask(zhang, "staff-w-zhang", "case.get", {"case_id": case_id, "reveal": True})
    assert no_reason["error"]["field"] == "reveal_reason"
    masked = await ask(zhang, "staff-w-zhang", "case.get", {"case_id": case_id})
    assert masked["ok"] and not await stored(
        broker, case_id, "case.personal_data_revealed"
    )  # a plain read is no reveal
    shown = await ask(
        zhang,
        "staff-w-zhang",
        "case.get",
        {"case_id": case_id, "reveal": True, "reveal_reason": "核對申請人身份"},
    )
    assert (
        shown["result"]["state"]["intake"]["applicant"]["id_number"] == sample("13")["applicant"]["id_number"]
    )
    [revealed] = await stored(broker, case_id, "case.personal_data_revealed")
    assert (revealed["actor"], revealed["auth"]) == ("w-zhang", "nats")
    assert revealed["data"] == {"fields": ["id_number", "phone"], "reason": "核對申請人身份"}
    cli, _ = await connect("cli")
    anonymous = await ask(
        cli, None, "case.get", {"case_id": case_id, "reveal": True, "reveal_reason": "看看"}
    )
    assert anonymous["ok"] is False and anonymous["error"]["field"] == "actor"
    report = await verify_stream(broker.js, "UNSTUCK_CASES", case_id=case_id)
    assert report.findings == [], report.findings


async def test_one_staff_members_credentials_are_rotated_and_retired_while_the_bus_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_security_config import nats_config  # the real command line, `unstuck nats-config`

    config = tmp_path / "unstuck.toml"
    config.write_text("[staff]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in STAFF.items()), encoding="utf-8")
    nats_config(capsys, tmp_path, "--config", str(config))
    server = EmbeddedNats(tmp_path, config_file=tmp_path / "nats-server.conf").start()
    store = CredentialStore(tmp_path)
    old = store.get("staff-w-zhang")

    async def accepted(credential: Any) -> bool:
        try:
            nc = await nats.connect(
                server.url, **credential.connect_options(), allow_reconnect=False, max_reconnect_attempts=0
            )
        except (nats.errors.Error, OSError):
            return False
        await nc.close()
        return True

    async def eventually(credential: Any, wanted: bool) -> bool:
        for _ in range(100):
            if await accepted(credential) == wanted:
                return True
            await asyncio.sleep(0.1)
        return False

    try:
        li_before = store.get("staff-w-li")
        nats_config(capsys, tmp_path, "--config", str(config), "--rotate", "w-zhang", "--reload")
        new = store.get("staff-w-zhang")
        assert new.user == "staff-w-zhang-r2" and new.password != old.password
        assert await eventually(new, True) and await accepted(old)  # both work during the rotation
        nats_config(capsys, tmp_path, "--config", str(config), "--retire", "w-zhang", "--reload")
        assert await eventually(old, False)  # the retired password is refused
        assert await accepted(new) and await accepted(li_before)  # the others never noticed
    finally:
        server.stop()

"""NATS authorisation of the bus, against a real nats-server running the configuration `unstuck nats-config` writes.

Every refusal is observed: nats-server answers a forbidden subscribe or publish with a
permissions violation, which nats-py hands to the connection's error callback; the tests wait
for that error and check that nothing was delivered or stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js.api import ConsumerConfig

from conftest import sample
from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import discover, installed_departments
from unstuck.broker import Broker
from unstuck.clock import SimulatedClock
from unstuck.connection import Connection
from unstuck.embedded import EmbeddedNats
from unstuck.natsconfig import AUDIT_JS_PREFIX, CredentialStore, generate
from unstuck.replay import read_heads, verify_stream
from unstuck.testing import DEFAULT_START, ApiError, api_call, fast_config, wait_for

DEPARTMENTS = ["chengguan", "renshe", "scjg"]
STREAM = "UNSTUCK_CASES"


class Violations:
    """The errors nats-server sent one connection; ``expect`` waits for a permissions violation."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.changed = asyncio.Event()

    async def callback(self, exc: Exception) -> None:
        self.errors.append(str(exc).lower())
        self.changed.set()

    async def expect(self, operation: str, subject: str, timeout: float = 10.0) -> str:
        """The violation for ``operation`` ('publish' or 'subscription') to ``subject``; fails if none comes."""
        wanted = f'permissions violation for {operation} to "{subject.lower()}"'

        async def arrived() -> str:
            while True:
                for error in self.errors:
                    if wanted in error:
                        return error
                self.changed.clear()
                await self.changed.wait()

        try:
            return await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {wanted!r}; errors seen: {self.errors}") from None


@pytest.fixture(scope="module")
def secure_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("secure")
    generate(directory, DEPARTMENTS)
    return directory


@pytest.fixture(scope="module")
def secure_server(secure_dir: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(secure_dir, config_file=secure_dir / "nats-server.conf").start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def connect(secure_server: EmbeddedNats, secure_dir: Path) -> AsyncIterator[Any]:
    """``await connect("dept-renshe")`` -> (client, violations), on that principal's own credentials."""
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


@pytest_asyncio.fixture
async def secure_broker(connect: Any) -> AsyncIterator[Broker]:
    nc, _ = await connect("broker")
    broker = Broker(nc, fast_config(), SimulatedClock(DEFAULT_START), departments=installed_departments())
    await broker.start()
    yield broker
    await broker.stop()


async def stream_messages(broker: Broker) -> int:
    return int((await broker.js.stream_info(STREAM)).state.messages)


async def test_a_department_cannot_subscribe_to_another_departments_requests(connect: Any) -> None:
    renshe, renshe_errors = await connect("dept-renshe")
    scjg, _ = await connect("dept-scjg")
    broker, _ = await connect("broker")
    snooped = await renshe.subscribe("unstuck.dept.scjg.coordinate")
    await renshe_errors.expect("subscription", "unstuck.dept.scjg.coordinate")
    own = await scjg.subscribe("unstuck.dept.scjg.coordinate")
    await scjg.flush()
    await broker.publish("unstuck.dept.scjg.coordinate", b'{"request_id": "only-for-scjg"}')
    assert (await own.next_msg(timeout=10)).data == b'{"request_id": "only-for-scjg"}'
    await renshe.flush()  # anything sent to renshe before this round trip has arrived by now
    assert snooped.pending_msgs == 0
    with pytest.raises(nats.errors.TimeoutError):
        await snooped.next_msg(timeout=0.2)


async def test_a_department_cannot_read_the_bus_inboxes(connect: Any) -> None:
    renshe, errors = await connect("dept-renshe")
    await renshe.subscribe("_INBOX.>")
    await errors.expect("subscription", "_INBOX.>")
    await renshe.subscribe("_INBOX.broker.>")
    await errors.expect("subscription", "_INBOX.broker.>")


async def test_a_department_cannot_publish_into_the_case_stream(connect: Any, secure_broker: Broker) -> None:
    renshe, errors = await connect("dept-renshe")
    before = await stream_messages(secure_broker)
    await renshe.publish("unstuck.case.DD-20260928-9999", b'{"forged": true}')
    await errors.expect("publish", "unstuck.case.DD-20260928-9999")
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):  # and no PubAck
        await renshe.jetstream().publish("unstuck.case.DD-20260928-9999", b"{}", timeout=0.5)
    assert await stream_messages(secure_broker) == before


async def test_a_department_cannot_call_the_brokers_admin_api(connect: Any, secure_broker: Broker) -> None:
    renshe, errors = await connect("dept-renshe")
    ticks = secure_broker.metrics.api_requests.labels("admin.tick")._value.get()
    with pytest.raises(nats.errors.TimeoutError):  # the request never reaches the broker
        await renshe.request("unstuck.api.admin.tick", b"{}", timeout=0.5)
    await errors.expect("publish", "unstuck.api.admin.tick")
    assert secure_broker.metrics.api_requests.labels("admin.tick")._value.get() == ticks


async def test_a_department_may_answer_only_requests_it_received(connect: Any) -> None:
    renshe, errors = await connect("dept-renshe")
    await renshe.publish("_INBOX.broker.forged.1", b'{"outcome": "resolved"}')
    await errors.expect("publish", "_INBOX.broker.forged.1")
    await renshe.publish("unstuck.dept.scjg.coordinate", b"{}")
    await errors.expect("publish", "unstuck.dept.scjg.coordinate")


async def test_the_window_cli_may_call_the_api_and_nothing_else(connect: Any, secure_broker: Broker) -> None:
    cli, errors = await connect("cli")
    status = await api_call(cli, "status", {})
    assert "departments" in status
    await cli.subscribe("unstuck.dept.renshe.coordinate")
    await errors.expect("subscription", "unstuck.dept.renshe.coordinate")
    await cli.publish("unstuck.case.DD-20260928-9998", b"{}")
    await errors.expect("publish", "unstuck.case.DD-20260928-9998")
    await cli.publish(f"$JS.API.STREAM.INFO.{STREAM}", b"")
    await errors.expect("publish", f"$JS.API.STREAM.INFO.{STREAM}")
    await cli.publish("$SRV.PING", b"")
    await errors.expect("publish", "$SRV.PING")


async def test_the_broker_answers_the_api_only_to_an_inbox(connect: Any, secure_broker: Broker) -> None:
    """A CLI naming unstuck.case.X as its reply subject would have the broker write the answer into the record."""
    cli, _ = await connect("cli")
    opened = await api_call(cli, "case.open", sample("05"))
    before = await stream_messages(secure_broker)
    refused = secure_broker.metrics.api_errors.labels("not_allowed")._value.get()
    await cli.publish(
        "unstuck.api.case.get",
        json.dumps({"case_id": opened["case_id"]}).encode(),
        reply=f"unstuck.case.{opened['case_id']}",
    )
    await wait_for(
        lambda: secure_broker.metrics.api_errors.labels("not_allowed")._value.get() == refused + 1,
        what="the broker refusing a non-inbox reply subject",
    )
    assert await stream_messages(secure_broker) == before


async def test_the_auditor_cannot_publish_or_manage_streams(connect: Any, secure_broker: Broker) -> None:
    auditor, errors = await connect("auditor")
    before = await stream_messages(secure_broker)
    await auditor.publish("unstuck.case.DD-20260928-9997", b"{}")
    await errors.expect("publish", "unstuck.case.DD-20260928-9997")
    for api in (
        f"STREAM.DELETE.{STREAM}",
        f"STREAM.PURGE.{STREAM}",
        f"STREAM.UPDATE.{STREAM}",
        "STREAM.CREATE.X",
    ):
        await auditor.publish(f"{AUDIT_JS_PREFIX}.{api}", b"{}")
        await errors.expect("publish", f"{AUDIT_JS_PREFIX}.{api}")
        await auditor.publish(f"$JS.API.{api}", b"{}")
        await errors.expect("publish", f"$JS.API.{api}")
    await auditor.publish("$KV.UNSTUCK_HEADS.DD-20260928-0001", b"{}")
    await errors.expect("publish", "$KV.UNSTUCK_HEADS.DD-20260928-0001")
    assert await stream_messages(secure_broker) == before


async def test_the_auditor_cannot_write_the_record_through_a_reply_subject(
    connect: Any, secure_broker: Broker
) -> None:
    """In one account a JetStream answer sent to unstuck.case.X is stored; the auditor's account keeps it out."""
    cli, _ = await connect("cli")
    await api_call(cli, "case.open", sample("09"))
    auditor, _ = await connect("auditor")
    before = await stream_messages(secure_broker)
    for api, body in ((f"STREAM.INFO.{STREAM}", b""), (f"STREAM.MSG.GET.{STREAM}", b'{"seq": 1}')):
        await auditor.publish(f"{AUDIT_JS_PREFIX}.{api}", body, reply="unstuck.case.DD-20260928-9996")
    await auditor.flush()
    got = await auditor.request(f"{AUDIT_JS_PREFIX}.STREAM.INFO.{STREAM}", b"", timeout=5)  # a round trip
    assert json.loads(got.data)["state"]["messages"] == before
    with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):  # no consumer API at all
        await auditor.jetstream().add_consumer(
            STREAM, ConsumerConfig(deliver_subject="unstuck.case.DD-20260928-9996")
        )
    assert await stream_messages(secure_broker) == before


async def test_the_auditor_cannot_forward_the_record_to_a_department(
    connect: Any, secure_broker: Broker
) -> None:
    """A push consumer delivers wherever its creator says: the auditor may create none, so a renshe
    case cannot be routed into scjg's subjects or its adapter's queue."""
    cli, _ = await connect("cli")
    opened = await api_call(cli, "case.open", sample("09"))
    scjg, _ = await connect("dept-scjg")
    leak = await scjg.subscribe("unstuck.dept.scjg.>")
    await scjg.flush()
    auditor, _ = await connect("auditor")
    js = auditor.jetstream()
    for config in (
        ConsumerConfig(
            deliver_subject="unstuck.dept.scjg.leak", filter_subject=f"unstuck.case.{opened['case_id']}"
        ),
        ConsumerConfig(deliver_subject="unstuck.dept.scjg.coordinate", deliver_group="unstuck.dept.scjg"),
        ConsumerConfig(durable_name="keep-300"),
    ):
        with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
            await js.add_consumer(STREAM, config, timeout=2)
    with pytest.raises(nats.errors.TimeoutError):
        await leak.next_msg(timeout=1)  # nothing reached the department
    assert (await verify_stream(auditor)).ok  # and it still reads the whole record


async def test_the_auditor_replays_and_verifies_the_record(connect: Any, secure_broker: Broker) -> None:
    cli, _ = await connect("cli")
    opened = await api_call(cli, "case.open", sample("09"))
    auditor, _ = await connect("auditor")
    report = await verify_stream(auditor)
    assert report.ok, report.findings
    assert report.events >= 2
    heads = await read_heads(auditor.jetstream())
    assert heads[opened["case_id"]][0] == secure_broker.state_of(opened["case_id"]).seq
    kv = await auditor.jetstream().key_value("UNSTUCK_HEADS")
    head = json.loads((await kv.get(opened["case_id"])).value)
    assert head["hash"] == secure_broker.state_of(opened["case_id"]).head_hash


async def test_a_wrong_password_is_refused(secure_server: EmbeddedNats, secure_dir: Path) -> None:
    real = CredentialStore(secure_dir).get("dept-renshe")
    for user, password in ((real.user, real.password + "x"), ("nobody", real.password), (None, None)):
        auth = {"user": user, "password": password} if user else {}
        with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
            await nats.connect(
                secure_server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **auth
            )


async def test_the_broker_opens_a_case_end_to_end_with_each_party_on_its_own_credentials(
    connect: Any, secure_broker: Broker
) -> None:
    chengguan, chengguan_errors = await connect("dept-chengguan")
    host = AdapterHost(chengguan, [discover()["chengguan"]])
    await host.start()
    try:
        cli, cli_errors = await connect("cli")
        opened = await api_call(cli, "case.open", sample("01"))  # shop sign: chengguan answers cannot
        case_id = opened["case_id"]
        await wait_for(lambda: secure_broker.state_of(case_id).state == "answered", what="chengguan's answer")
        got = await api_call(cli, "case.get", {"case_id": case_id})
        types = [e["type"] for e in got["events"]]
        assert "coordination.replied" in types
        assert got["events"][types.index("coordination.replied")]["data"]["department"] == "chengguan"
        auditor, _ = await connect("auditor")
        report = await verify_stream(auditor, case_id=case_id)
        assert report.ok and list(report.cases) == [case_id]
        # the ledger's projector works on the broker's credentials: the list sees the case
        listed = {c["case_id"]: c for c in (await api_call(cli, "case.list", {}))["cases"]}
        assert listed[case_id]["state"] == "answered"  # the server is shared: other tests' cases too
        assert chengguan_errors.errors == [] and cli_errors.errors == []
    finally:
        await host.stop()


async def test_the_api_still_validates_and_refuses_with_secure_credentials(
    connect: Any, secure_broker: Broker
) -> None:
    cli, _ = await connect("cli")
    with pytest.raises(ApiError) as refused:
        await api_call(cli, "case.open", {"applicant": {}})
    assert refused.value.error["code"] == "invalid_request"


async def test_no_consumer_may_hold_more_unacknowledged_messages_than_the_account_allows(
    connect: Any, secure_broker: Broker
) -> None:
    """A consumer asking to hold 10,001 unacknowledged messages is refused; 10,000 is the bus account's bound."""
    broker, _ = await connect("broker")
    js = broker.jetstream()
    with pytest.raises(nats.js.errors.APIError) as refused:
        await js.add_consumer(STREAM, ConsumerConfig(inactive_threshold=30.0, max_ack_pending=10_001))
    assert "ack" in str(refused.value).lower()
    allowed = await js.add_consumer(STREAM, ConsumerConfig(inactive_threshold=30.0, max_ack_pending=10_000))
    assert allowed.config.max_ack_pending == 10_000


async def test_the_bus_account_keeps_no_more_consumers_than_its_limit(
    connect: Any, secure_broker: Broker
) -> None:
    """Even the one principal that may create consumers cannot make the server keep thousands."""
    from unstuck.natsconfig import ACCOUNT_JETSTREAM_LIMITS

    broker, _ = await connect("broker")
    js = broker.jetstream()
    made = refused = 0
    for _ in range(ACCOUNT_JETSTREAM_LIMITS["max_consumers"] + 1):
        try:
            await js.add_consumer(STREAM, ConsumerConfig(inactive_threshold=30.0))
            made += 1
        except nats.js.errors.BadRequestError as exc:
            assert "maximum consumers" in str(exc).lower()
            refused += 1
            break
    assert refused == 1 and made < ACCOUNT_JETSTREAM_LIMITS["max_consumers"] + 1

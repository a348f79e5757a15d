"""Notifications that always arrive: stored in UNSTUCK_NOTIFY by the broker, delivered by `unstuck notify`
to a real SMTP server (aiosmtpd on a loopback port) and to an SMS plugin, acknowledged only after
delivery; through SMTP outages and a SIGKILLed notifier, nothing is lost."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from nats.aio.client import Client
from process_support import clean_env, started, wait_for_line

from conftest import sample
from unstuck.broker import Broker
from unstuck.clock import SimulatedClock
from unstuck.config import Config, DepartmentConfig, NotifyConfig
from unstuck.embedded import EmbeddedNats
from unstuck.notify import Delivery, NotifyRunner
from unstuck.plugins import hookimpl
from unstuck.plugins.manager import make_plugin_manager
from unstuck.schemas.subjects import NOTIFY_STREAM
from unstuck.testing import DEFAULT_START, api_call, fast_config, wait_for

APPLICANT_EMAIL = "wangli@example.com"
LEADER_EMAIL = "ma@example.gov.cn"
ID_NUMBER = "92210603MA0KC8QX2K"  # sample 01's
PHONE = "13904151234"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """What the SMTP server received: each mail parsed, with its envelope recipients."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.mails.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpt, m in self.mails if address in rcpt]


class Smtp:
    """A real SMTP server on a fixed loopback port, which can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp()
    server.start()
    yield server
    server.stop()


def notify_settings(smtp: Smtp) -> NotifyConfig:
    return NotifyConfig(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="window@example.gov.cn",
        smtp_timeout_seconds=2.0,
        staff_email={"director-ma": LEADER_EMAIL},
        redelivery_seconds=[0.5, 0.5, 1.0],
        max_deliver=10,
        ack_wait_seconds=3.0,
        metrics_address="127.0.0.1:0",
    )


@pytest.fixture
def unstuck_config() -> Config:
    config = fast_config()
    config.departments["chengguan"] = DepartmentConfig(chain={"director": "director-ma"})
    return config


class Notifier:
    """`unstuck notify`'s delivery loop, in this process (so a test can register an SMS plugin)."""

    def __init__(self, nc: Client, settings: NotifyConfig, plugins: Sequence[object] = ()) -> None:
        pm = make_plugin_manager({}, {})
        for plugin in plugins:
            pm.register(plugin)
        self.runner = NotifyRunner(nc.jetstream(), Delivery(settings, pm))
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> NotifyRunner:
        ready = asyncio.Event()
        self.task = asyncio.create_task(self.runner.run(ready))
        await asyncio.wait_for(ready.wait(), 10)
        return self.runner

    async def stop(self) -> None:
        self.runner.stopping.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


@pytest_asyncio.fixture
async def notifier(nats_client: Client, smtp: Smtp, broker: Broker) -> AsyncIterator[NotifyRunner]:
    running = Notifier(nats_client, notify_settings(smtp))
    yield await running.start()
    await running.stop()


async def closed_case(client: Client, broker: Broker, **applicant: Any) -> str:
    """Sample 01 opened with ``applicant`` changes, answered cannot by chengguan, then 銷號."""
    body = sample("01")
    body["applicant"] = {**body["applicant"], **applicant}
    body["applicant"] = {k: v for k, v in body["applicant"].items() if v is not None}
    case_id = str((await api_call(client, "case.open", body))["case_id"])
    await wait_for(lambda: broker.state_of(case_id).state == "answered", what="chengguan's answer")
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
    return case_id


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def stored_notifications(nc: Client) -> list[dict[str, Any]]:
    js = nc.jetstream()
    info = await js.stream_info(NOTIFY_STREAM)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        out.append(json.loads((await js.get_msg(NOTIFY_STREAM, seq)).data))
    return out


def stored_count(broker: Broker) -> float:
    value = broker.metrics.registry.get_sample_value("unstuck_notifications_total", {"outcome": "stored"})
    return float(value or 0)


# --- stored, not fired --------------------------------------------------------------------------------


async def test_a_notification_is_stored_once_with_whom_it_is_for(broker, builtin_adapters, nats_client):
    case_id = await closed_case(nats_client, broker, email=APPLICANT_EMAIL)
    await wait_for(lambda: stored_count(broker) >= 2, what="the 複核 and 銷號 notices stored")
    [closed] = [n for n in await stored_notifications(nats_client) if n["type"] == "case.closed"]
    assert closed["to"] == {"phone": PHONE, "email": APPLICANT_EMAIL}
    assert closed["case_id"] == case_id and closed["audience"] == "applicant"
    assert closed["id"].endswith(":applicant")
    assert ID_NUMBER not in json.dumps(closed)
    # a retried publish of the same notification (same Nats-Msg-Id) is stored once
    before = (await nats_client.jetstream().stream_info(NOTIFY_STREAM)).state.messages
    body = json.dumps(closed, ensure_ascii=False).encode()
    await broker.notifier._publish("applicant", closed["id"], body)
    assert (await nats_client.jetstream().stream_info(NOTIFY_STREAM)).state.messages == before
    assert stored_count(broker) == 3


# --- delivered by email -------------------------------------------------------------------------------


async def test_a_closed_case_mails_the_applicant_in_chinese_without_the_id_number(
    broker, builtin_adapters, nats_client, smtp, notifier
):
    case_id = await closed_case(nats_client, broker, email=APPLICANT_EMAIL)

    def closing_mails() -> list[EmailMessage]:
        return [m for m in smtp.inbox.to(APPLICANT_EMAIL) if "已辦結銷號" in text_of(m)]

    await wait_for(closing_mails, what="the applicant's mail on 銷號")
    [mail] = closing_mails()
    assert f"案件{case_id}已辦結銷號，請對本次服務進行評價（好差評）" in text_of(mail)
    assert case_id in str(mail["Subject"])
    assert ID_NUMBER not in mail.as_string() and PHONE not in mail.as_string()
    [closed] = [n for n in await stored_notifications(nats_client) if n["type"] == "case.closed"]
    assert mail["Message-ID"] == f"<{closed['id'].replace(':', '.')}@unstuck>"
    await wait_for(lambda: notifier.count("delivered") >= 1, what="counted delivered")


async def test_an_escalation_mails_the_leader_it_names(broker, builtin_adapters, nats_client, smtp, notifier):
    case_id = (await api_call(nats_client, "case.open", sample("06")))["case_id"]
    await api_call(
        nats_client,
        "case.escalate",
        {
            "case_id": case_id,
            "actor": "leader-gao",
            "department": "chengguan",
            "level": "director",
            "note": "請督辦",
        },
    )
    await wait_for(lambda: smtp.inbox.to(LEADER_EMAIL), what="the leader's mail")
    [mail] = smtp.inbox.to(LEADER_EMAIL)
    assert f"督辦：案件{case_id}已升級至director-ma" in text_of(mail)


async def test_a_mail_sent_while_smtp_is_down_arrives_after_it_returns(
    broker, builtin_adapters, nats_client, smtp, notifier
):
    smtp.stop()
    case_id = await closed_case(nats_client, broker, email=APPLICANT_EMAIL)
    await wait_for(lambda: notifier.count("retried") >= 2, what="failed deliveries retried")
    assert notifier.count("delivered") == 0
    smtp.start()
    await wait_for(
        lambda: any("已辦結銷號" in text_of(m) for m in smtp.inbox.to(APPLICANT_EMAIL)),
        what="the mail on 銷號 after SMTP returned",
    )
    assert all(case_id in text_of(m) for m in smtp.inbox.to(APPLICANT_EMAIL))
    assert notifier.count("dead") == 0


async def test_an_applicant_with_only_a_phone_and_no_sms_plugin_is_undeliverable(
    broker, builtin_adapters, nats_client, smtp, notifier, caplog
):
    await closed_case(nats_client, broker)
    await wait_for(lambda: notifier.count("undeliverable") >= 1, what="counted undeliverable")
    assert smtp.inbox.mails == []
    assert PHONE not in caplog.text and "phone 1******1234 (no SMS plugin)" in caplog.text


class SmsGateway:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    @hookimpl
    def unstuck_send_sms(self, phone: str, text: str) -> bool:
        self.sent.append((phone, text))
        return True


async def test_unstuck_send_sms_plugin_receives_the_applicants_text(
    broker, builtin_adapters, nats_client, smtp
):
    gateway = SmsGateway()
    running = Notifier(nats_client, notify_settings(smtp), [gateway])
    runner = await running.start()
    try:
        case_id = await closed_case(nats_client, broker)
        closing = (PHONE, f"案件{case_id}已辦結銷號，請對本次服務進行評價（好差評）")
        await wait_for(lambda: closing in gateway.sent, what="the SMS on 銷號")
        assert {phone for phone, _ in gateway.sent} == {PHONE}  # 複核 notice and 銷號
        await wait_for(lambda: runner.count("delivered") == len(gateway.sent), what="counted delivered")
        assert runner.count("undeliverable") == 0
    finally:
        await running.stop()


# --- `unstuck notify` killed and restarted -----------------------------------------------------------


def notify_toml(path: Path, smtp: Smtp) -> Path:
    path.write_text(
        f"""[notify]
smtp_host = "127.0.0.1"
smtp_port = {smtp.port}
smtp_from = "window@example.gov.cn"
smtp_timeout_seconds = 2.0
redelivery_seconds = [0.5, 0.5, 1.0]
ack_wait_seconds = 3.0
metrics_address = "127.0.0.1:0"
""",
        encoding="utf-8",
    )
    return path


async def test_unstuck_notify_killed_mid_stream_and_restarted_loses_nothing(
    broker, builtin_adapters, nats_client, nats_server: EmbeddedNats, smtp, tmp_path
):
    config = notify_toml(tmp_path / "unstuck.toml", smtp)
    env = clean_env(NATS_URL=nats_server.url)
    args = ["notify", "--config", str(config), "--data-dir", str(tmp_path / "data")]
    first = started(args, tmp_path, tmp_path / "notify-1.log", env)
    try:
        wait_for_line(tmp_path / "notify-1.log", "delivering from UNSTUCK_NOTIFY", first, timeout=30)
        addresses = [f"applicant{i}@example.com" for i in range(6)]
        cases = {}
        for i, address in enumerate(addresses):
            cases[address] = await closed_case(nats_client, broker, email=address)
            if i == 1:
                await wait_for(lambda: smtp.inbox.mails, what="a first mail")
                first.send_signal(
                    signal.SIGKILL
                )  # mid-stream: some delivered, some stored, maybe one in flight
                first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    await wait_for(lambda: stored_count(broker) >= 2 * len(addresses), what="every notification stored")
    stored = {f"<{n['id'].replace(':', '.')}@unstuck>" for n in await stored_notifications(nats_client)}
    assert len(stored) == 2 * len(addresses)
    second = started(args, tmp_path, tmp_path / "notify-2.log", env)
    try:
        await wait_for(lambda: len(smtp.inbox.mails) >= len(stored), timeout=30, what="every mail")
        await wait_for(
            lambda: {str(m["Message-ID"]) for _, m in smtp.inbox.mails} == set(stored),
            timeout=30,
            what="a mail for every stored notification",
        )
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(20)
    for address, case_id in cases.items():
        # 複核 notice and 銷號 each; at least once: a mail in flight at the kill may come twice
        texts = {str(m["Message-ID"]): text_of(m) for m in smtp.inbox.to(address)}
        assert len(texts) == 2 and all(case_id in t for t in texts.values())
        assert any("已辦結銷號" in t for t in texts.values())
    assert second.returncode == 0


async def test_a_notification_that_fails_every_delivery_is_dead_once(
    broker, builtin_adapters, nats_client, smtp, caplog
):
    smtp.stop()  # and never back
    settings = notify_settings(smtp).model_copy(update={"max_deliver": 3, "redelivery_seconds": [0.2]})
    running = Notifier(nats_client, settings)
    runner = await running.start()
    try:
        case_id = (await api_call(nats_client, "case.open", sample("06")))["case_id"]
        escalate = {"case_id": case_id, "actor": "leader-gao", "department": "chengguan", "level": "director"}
        await api_call(nats_client, "case.escalate", {**escalate, "note": "請督辦"})
        await wait_for(lambda: runner.count("dead") >= 1, what="counted dead")
        assert runner.count("retried") == 2 and runner.count("delivered") == 0
        dead = [r for r in caplog.records if "dead after 3 deliveries" in r.getMessage()]
        assert len(dead) == 1 and case_id not in dead[0].getMessage()  # the id, not the case, is logged
    finally:
        await running.stop()


# --- on a secured bus, as the notifier principal --------------------------------------------------------


async def test_unstuck_notify_delivers_on_its_own_credentials_from_the_data_directory(smtp, tmp_path):
    from unstuck.connection import Connection
    from unstuck.natsconfig import CredentialStore, generate

    data = tmp_path / "data"
    generate(data, ["chengguan"], staff=["leader-gao", "director-ma"], hash_passwords=False)
    server = EmbeddedNats(data, config_file=data / "nats-server.conf").start()
    conn = Connection(url=server.url)
    store = CredentialStore(data)
    config = fast_config()
    config.departments["chengguan"] = DepartmentConfig(chain={"director": "director-ma"})
    toml = notify_toml(tmp_path / "unstuck.toml", smtp)
    toml.write_text(toml.read_text() + '\n[notify.staff_email]\n"director-ma" = "ma@example.gov.cn"\n')
    process = None
    try:
        b = Broker(
            await conn.connect("broker", auth=store.get("broker")), config, SimulatedClock(DEFAULT_START)
        )
        await b.start()
        client = await conn.connect("cli", auth=store.get("cli"))
        process = started(
            ["notify", "--config", str(toml), "--data-dir", str(data)],
            tmp_path,
            tmp_path / "notify.log",
            clean_env(NATS_URL=server.url),
        )
        wait_for_line(tmp_path / "notify.log", "delivering from UNSTUCK_NOTIFY", process, timeout=30)
        case_id = (await api_call(client, "case.open", sample("06")))["case_id"]
        escalate = {"case_id": case_id, "actor": "leader-gao", "department": "chengguan", "level": "director"}
        await api_call(client, "case.escalate", {**escalate, "note": "請督辦"})
        await wait_for(lambda: smtp.inbox.to(LEADER_EMAIL), what="the leader's mail")
        assert "permissions violation" not in (tmp_path / "notify.log").read_text().lower()
        await b.stop()
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(20)
        await conn.close()
        server.stop()

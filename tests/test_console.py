"""The window console without a browser: its files (passwords, secret), signing in (argon2, limits, the
record, an outside identity provider), the checks of what staff type, which actions are offered, and
its HTTP answers on a real bus (nats-server, broker, the built-in adapters): acts are made on
``unstuck.api.web.<staff>.<verb>`` as the signed-in staff member, a POST without the session's CSRF
token, an oversized body and an unknown case id each get a Chinese page and no traceback."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from test_console_helpers import INTAKE, PASSWORD, STAFF, ConsoleBus, csrf_of, signed_in

from unstuck.console import PasswordError, PasswordStore, actions_for
from unstuck.console.auth import Authenticator, ProviderError, load_provider
from unstuck.console.forms import check, intake_fields
from unstuck.console.store import LoginLog, TicketQueue, session_secret
from unstuck.console.text import simplified, zh_label

ROOT = Path(__file__).resolve().parents[1]
HTMX_SHA256 = (
    "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"  # htmx.org@2.0.11 dist/htmx.min.js
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the console's files --------------------------------------------------------------------------------


def test_passwords_are_argon2id_hashes_in_a_0600_file_in_a_0700_folder(tmp_path: Path) -> None:
    store = PasswordStore(tmp_path)
    store.set("w-zhang", "a long enough secret")
    text = store.path.read_text(encoding="utf-8")
    assert "$argon2id$" in text and "a long enough secret" not in text
    assert mode(store.path) == 0o600 and mode(store.path.parent) == 0o700
    assert store.verify("w-zhang", "a long enough secret")
    assert not store.verify("w-zhang", "a long enough secreT")
    assert not store.verify("nobody", "a long enough secret")
    with pytest.raises(PasswordError, match="至少 10"):
        store.set("w-zhang", "short")


def test_the_session_secret_is_made_once_and_kept_0600(tmp_path: Path) -> None:
    first = session_secret(tmp_path)
    assert len(first) >= 32 and session_secret(tmp_path) == first
    assert mode(tmp_path / "console" / "secret") == 0o600


def test_tickets_are_numbered_in_order_and_called_once(tmp_path: Path) -> None:
    queue = TicketQueue(tmp_path)
    assert [queue.take().number for _ in range(3)] == ["A001", "A002", "A003"]
    called = queue.call_next("w-zhang")
    assert called is not None and called.number == "A001"
    assert queue.call_next("w-li").number == "A002"  # type: ignore[union-attr]
    queue.done("A001", "DD-20260928-0001")
    assert [(t.number, t.status) for t in queue.today()] == [
        ("A001", "done"),
        ("A002", "called"),
        ("A003", "waiting"),
    ]
    assert called.ref.startswith("ticket-") and called.ref.endswith("-A001")


def write_config(tmp_path: Path, extra: str = "") -> Path:
    staff = "\n".join(f'"{k}" = "{v}"' for k, v in STAFF.items())
    path = tmp_path / "unstuck.toml"
    path.write_text(f"[staff]\n{staff}\n{extra}", encoding="utf-8")
    return path


def cli(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unstuck", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "UNSTUCK_DATA_DIR": str(tmp_path / "data")},
        timeout=60,
    )


def test_console_passwd_sets_a_password_from_stdin_and_refuses_an_id_not_in_staff(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = cli(
        tmp_path, "console", "passwd", "w-zhang", "--config", str(config), stdin="a long enough secret\n"
    )
    assert done.returncode == 0, done.stderr
    assert "a long enough secret" not in done.stdout + done.stderr
    assert PasswordStore(tmp_path / "data").verify("w-zhang", "a long enough secret")
    refused = cli(
        tmp_path, "console", "passwd", "w-nobody", "--config", str(config), stdin="a long enough secret\n"
    )
    assert refused.returncode == 2 and "'w-nobody' is not in [staff]" in refused.stderr
    assert "Traceback" not in refused.stderr
    short = cli(tmp_path, "console", "passwd", "w-li", "--config", str(config), stdin="short\n")
    assert short.returncode == 2 and "至少 10" in short.stderr


def test_console_refuses_to_start_without_staff_or_without_a_bus(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    no_staff = cli(tmp_path, "console", "--config", str(empty))
    assert no_staff.returncode == 2 and "no [staff]" in no_staff.stderr
    env_without_nats = {k: v for k, v in os.environ.items() if k != "NATS_URL"}
    no_bus = subprocess.run(
        [sys.executable, "-m", "unstuck", "console", "--config", str(write_config(tmp_path))],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={**env_without_nats, "UNSTUCK_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert no_bus.returncode == 3 and "no NATS server" in no_bus.stderr


# --- signing in ----------------------------------------------------------------------------------------------


class Ticking:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def authenticator(tmp_path: Path, clock: Ticking, provider: Any = None) -> Authenticator:
    passwords = PasswordStore(tmp_path)
    passwords.set("w-zhang", PASSWORD)
    return Authenticator(
        dict(STAFF), passwords, LoginLog(tmp_path), CollectorRegistry(), provider=provider,
        per_account=3, per_address=5, window_seconds=600, clock=clock,
    )  # fmt: skip


def test_sign_in_is_limited_per_account_then_per_address_and_every_attempt_is_recorded(
    tmp_path: Path,
) -> None:
    clock = Ticking()
    auth = authenticator(tmp_path, clock)
    assert [auth.sign_in("w-zhang", "wrong", "10.0.0.1").reason for _ in range(3)] == ["bad_password"] * 3
    limited = auth.sign_in("w-zhang", PASSWORD, "10.0.0.2")  # the right password, too late: the account waits
    assert (limited.staff_id, limited.reason) == (None, "limited") and 0 < limited.wait_seconds <= 600
    assert auth.sign_in("w-li", "wrong", "10.0.0.1").reason == "bad_password"
    assert auth.sign_in("w-nobody", "wrong", "10.0.0.1").reason == "unknown_account"
    assert (
        auth.sign_in("director-ma", "wrong", "10.0.0.1").reason == "limited"
    )  # 5 failures from this address
    clock.now += 601
    assert auth.sign_in("w-zhang", PASSWORD, "10.0.0.1").staff_id == "w-zhang"
    entries = LoginLog(tmp_path).entries()
    assert [e["outcome"] for e in entries] == [
        "bad_password", "bad_password", "bad_password", "limited", "bad_password", "unknown_account", "limited", "ok",
    ]  # fmt: skip
    assert entries[-1]["staff"] == "w-zhang" and entries[0]["address"] == "10.0.0.1"
    assert all(PASSWORD not in str(e) for e in entries)
    assert mode(LoginLog(tmp_path).path) == 0o600
    counted = auth.counter.labels("limited")._value.get()
    assert counted == 2


def outside_provider(username: str, password: str) -> str | None:
    """An identity provider for the tests: ``ldap-<staff id>`` with password ``from-ldap``."""
    if password == "from-ldap" and username.startswith("ldap-"):
        return username.removeprefix("ldap-")
    return None


def test_an_outside_identity_provider_is_asked_first_and_may_name_only_staff(tmp_path: Path) -> None:
    provider = load_provider("test_console:outside_provider")
    auth = authenticator(tmp_path, Ticking(), provider)
    assert auth.sign_in("ldap-leader-gao", "from-ldap", "10.0.0.1").staff_id == "leader-gao"
    assert auth.sign_in("ldap-w-stranger", "from-ldap", "10.0.0.1").staff_id is None
    assert (
        auth.sign_in("w-zhang", PASSWORD, "10.0.0.1").staff_id == "w-zhang"
    )  # then the console's own passwords
    with pytest.raises(ProviderError, match="identity_provider"):
        load_provider("no_such_module_here:check")


# --- what staff type, and what they are offered ----------------------------------------------------------


def test_the_intake_form_names_each_bad_field_in_chinese() -> None:
    bad = {
        **INTAKE,
        "applicant_name": "",
        "id_number": "2106031980",
        "phone": "12345",
        "matter": "Shop Sign",
        "department": "nowhere",
        "description": "<script>alert(1)</script>",
        "window": "窗口\x1b[31m",
        "facts": "floor 2",
        "matter_title": "長" * 201,
    }
    values, errors = check(bad, intake_fields(["chengguan", "renshe", "scjg"]))
    assert errors == {
        "applicant_name": "申请人姓名或名称：必填，请填写",
        "id_number": "证件号码：居民身份证号码应为 18 位，现为 10 位，请核对",
        "phone": "联系电话：应为 11 位手机号码或带区号的固定电话（如 0415-1234567）",
        "matter": "事项代码：只能用小写英文字母、数字和下划线，以字母开头，例如 shop_sign",
        "department": "原窗口所属部门：请从列表中选择",
        "description": "情况说明：请勿输入 HTML 标记（如 <b>、<script>），请用文字描述",
        "window": "原办理窗口：含有控制字符或转义序列（U+001B），请删去后重新输入",
        "facts": "案情要素：第 1 行应写成「名称=值」，名称用小写英文字母、数字和下划线，例如 floor=2",
        "matter_title": "事项名称：最多 200 个字，现有 201 个，请精简",
    }
    values, errors = check(INTAKE, intake_fields(["chengguan", "renshe", "scjg"]))
    assert errors == {} and values["facts"] == {"floor": 2, "building": "臨街商住樓"}


def state(name: str, **more: Any) -> dict[str, Any]:
    return {"state": name, "owner": "w-zhang", "duty_leader": "leader-gao", "due_date": "2026-10-08", **more}


def test_only_the_actions_the_broker_would_allow_this_person_are_offered() -> None:
    clerk, leader, director = 0, 3, 4
    answered = state("answered")
    assert actions_for(answered, "w-zhang", clerk) == ["classify", "handover", "extend", "close", "escalate"]
    assert actions_for(answered, "w-li", clerk) == ["classify", "extend", "escalate"]  # not the owner
    pending = state("coordinating", pending_extension={"requested_by": "leader-gao", "working_days": 2})
    assert "approve_extension" not in actions_for(pending, "w-zhang", clerk)
    assert "approve_extension" not in actions_for(pending, "leader-gao", leader)  # asked for it himself
    assert "approve_extension" in actions_for(pending, "director-ma", director)
    assert "extend" not in actions_for(pending, "w-zhang", clerk)  # one request at a time
    bounced = state("coordinating", bounce_ruling_needed=True)
    assert "rule_bounce" in actions_for(bounced, "leader-gao", leader)
    assert "rule_bounce" not in actions_for(bounced, "director-ma", director)  # the duty leader rules
    closed = state("closed")
    assert actions_for(closed, "w-zhang", clerk) == []  # evaluate is the applicant's, record the department's
    assert actions_for(closed, "leader-gao", leader) == ["reopen", "accountability"]


def test_labels_are_shown_in_simplified_characters() -> None:
    assert zh_label("state", "answered") == "已答复待销号"
    assert zh_label("category", "refused") == "不给办"
    assert zh_label("event", "case.extended") == "批准延期"
    assert simplified("辦結期限") == "办结期限"


def test_htmx_is_vendored_unchanged() -> None:
    path = ROOT / "core" / "console" / "static" / "htmx.min.js"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == HTMX_SHA256
    assert HTMX_SHA256 in (path.parent / "VENDORED.txt").read_text(encoding="utf-8")


# --- over HTTP, on a real bus ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleBus]:
    running = ConsoleBus(tmp_path_factory.mktemp("console")).start()
    yield running
    running.stop()


def test_a_case_opened_in_the_console_is_recorded_as_the_signed_in_staff_member(bus: ConsoleBus) -> None:
    client, token = signed_in(bus, "w-li")
    page = client.post("/intake", data={**INTAKE, "csrf": token, "ticket": ""})
    assert page.status_code == 200 and "已受理 " in page.text
    case_id = str(page.url).rsplit("/", 1)[1]
    [opened] = [e for e in bus.events(case_id) if e["type"] == "case.opened"]
    assert (opened["actor"], opened["auth"], opened["data"]["owner"]) == ("w-li", "web", "w-li")
    assert "9221**********QX2K" in page.text and "92210603MA0KC8QX2K" not in page.text
    assert "13904151234" not in page.text


def test_a_bad_form_comes_back_with_every_message_and_everything_typed(bus: ConsoleBus) -> None:
    client, token = signed_in(bus, "w-zhang")
    typed = {**INTAKE, "csrf": token, "ticket": "", "id_number": "123", "description": "<b>急</b>\x1b[2J"}
    page = client.post("/intake", data=typed)
    assert page.status_code == 422
    assert "证件号码：居民身份证号码应为 18 位" in page.text and "情况说明：" in page.text
    assert "&lt;b&gt;急&lt;/b&gt;" in page.text and "<b>急</b>" not in page.text  # kept, and shown as text
    assert 'value="丹東市振興區味道小廚餐飲店"' in page.text and 'value="123"' in page.text


def test_a_post_without_the_sessions_csrf_token_is_refused(bus: ConsoleBus) -> None:
    client, token = signed_in(bus, "w-zhang")
    before = bus.ask("case.list", {})["result"]["count"]
    for data in ({**INTAKE}, {**INTAKE, "csrf": "forged-" + token[:20]}):
        page = client.post("/intake", data=data)
        assert page.status_code == 403 and "防伪令牌（CSRF）" in page.text
    refused = client.post("/queue/take", data={})
    assert refused.status_code == 403
    assert bus.ask("case.list", {})["result"]["count"] == before


def test_unknown_case_ids_oversized_bodies_and_failures_get_chinese_pages_without_a_traceback(
    bus: ConsoleBus,
) -> None:
    client, token = signed_in(bus, "w-zhang")
    missing = client.get("/cases/DD-20990101-9999")
    assert missing.status_code == 404 and "案件 DD-20990101-9999 不存在" in missing.text
    odd = client.get("/cases/..%2F..%2Fetc%2Fpasswd")
    assert odd.status_code == 404 and "Traceback" not in odd.text
    marked = client.get("/cases/<script>")
    assert marked.status_code == 404 and "<script>" not in marked.text
    huge = client.post("/intake", data={**INTAKE, "csrf": token, "description": "長" * 40000})
    assert huge.status_code == 413 and "提交的内容过大" in huge.text
    unknown = client.post("/cases/DD-20990101-9999/act/escalate", data={"csrf": token, "department": "scjg",
                          "level": "director", "note": "請回覆"})  # fmt: skip
    assert unknown.status_code == 404 and "不存在" in unknown.text
    nowhere = client.get("/no-such-page")
    assert nowhere.status_code == 404 and "找不到这个页面" in nowhere.text
    for page in (missing, odd, huge, unknown, nowhere):
        assert "Traceback" not in page.text and 'lang="zh-CN"' in page.text


def test_pages_need_a_signed_in_session_and_say_so_with_security_headers(bus: ConsoleBus) -> None:
    anonymous = httpx.Client(base_url=bus.url, timeout=30)
    page = anonymous.get("/cases")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=%2Fcases")
    login = anonymous.get("/login")
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"
    wrong = anonymous.post(
        "/login", data={"csrf": csrf_of(login.text), "username": "w-zhang", "password": "nope"}
    )
    assert wrong.status_code == 401 and "工号或密码不正确" in wrong.text
    metrics = anonymous.get("/metrics").text
    assert 'unstuck_console_logins_total{outcome="bad_password"}' in metrics


# --- on a bus with NATS users: the console's own principal ------------------------------------------------


async def test_on_a_secure_bus_the_console_acts_on_its_own_nats_user_for_staff_and_the_applicant(
    tmp_path: Path,
) -> None:
    from test_console_helpers import console_config

    from unstuck.broker import Broker
    from unstuck.clock import SimulatedClock
    from unstuck.connection import Connection
    from unstuck.console import serve_in_background
    from unstuck.embedded import EmbeddedNats
    from unstuck.natsconfig import CredentialStore, generate
    from unstuck.testing import DEFAULT_START

    generate(tmp_path, ["chengguan", "renshe", "scjg"], staff=sorted(STAFF))
    server = EmbeddedNats(tmp_path, config_file=tmp_path / "nats-server.conf").start()
    conn = Connection(url=server.url)
    config = console_config()
    config.broker.require_identity = True
    for staff_id in STAFF:
        PasswordStore(tmp_path).set(staff_id, PASSWORD)
    try:
        nc = await conn.connect("broker", auth=CredentialStore(tmp_path).get("broker"))
        broker = Broker(nc, config, SimulatedClock(DEFAULT_START))
        await broker.start()
        console = await serve_in_background(config, tmp_path, nats_url=server.url, secure=True)
        try:
            async with httpx.AsyncClient(base_url=console.url, follow_redirects=True, timeout=30) as web:
                token = csrf_of((await web.get("/login")).text)
                form = {"csrf": token, "username": "w-zhang", "password": PASSWORD, "next": "/queue"}
                token = csrf_of((await web.post("/login", data=form)).text)
                page = await web.post("/intake", data={**INTAKE, "csrf": token, "ticket": ""})
                assert page.status_code == 200 and "已受理 " in page.text, page.text[:800]
                case_id = str(page.url).rsplit("/", 1)[1]
                closing = {"csrf": token, "outcome": "withdrawn", "explanation": "申請人撤回"}
                page = await web.post(f"/cases/{case_id}/act/close", data=closing)
                assert "销号：已办理" in page.text, page.text[:800]
                page = await web.post(f"/cases/{case_id}/rate", data={"csrf": token})
                page = await web.post(str(page.url), data={"rating": "bad", "comment": "等太久"})
                assert "感谢您的评价" in page.text, page.text[:800]
            stored = {e.type: e.fields for e in await broker.store.read_case(case_id)}
            assert (stored["case.opened"]["actor"], stored["case.opened"]["auth"]) == ("w-zhang", "web")
            assert (stored["case.closed"]["actor"], stored["case.closed"]["auth"]) == ("w-zhang", "web")
            assert (stored["case.evaluated"]["actor"], stored["case.evaluated"]["auth"]) == (
                "applicant",
                "web",
            )
        finally:
            await console.stop()
            await broker.stop()
    finally:
        await conn.close()
        server.stop()


def test_serve_in_background_as_the_demo_starts_it(bus: ConsoleBus, tmp_path: Path) -> None:
    """What ``unstuck demo --keep-running`` calls: the configured address taken, a free port instead;
    a fresh password for each staff id named in ``sign_in`` that has none, to print."""
    from unstuck.console import serve_in_background

    assert bus.server is not None
    taken = bus.url.removeprefix("http://")
    started = bus.run(
        serve_in_background(
            bus.config, tmp_path, nats_url=bus.server.url, address=taken, or_free_port=True,
            sign_in=["w-zhang", "w-nobody"],
        )
    )  # fmt: skip
    try:
        assert started.url.startswith("http://127.0.0.1:") and started.url.rstrip("/") != bus.url
        assert list(started.passwords) == ["w-zhang"]  # only staff of [staff]
        with httpx.Client(base_url=started.url, follow_redirects=True, timeout=30) as web:
            token = csrf_of(web.get("/login").text)
            form = {
                "csrf": token,
                "username": "w-zhang",
                "password": started.passwords["w-zhang"],
                "next": "/cases",
            }
            page = web.post("/login", data=form)
            assert page.status_code == 200 and "台账" in page.text
    finally:
        bus.run(started.stop())
    assert PasswordStore(tmp_path).has("w-zhang")

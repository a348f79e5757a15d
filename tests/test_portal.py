"""The applicant's portal over real HTTP (uvicorn) on a real bus (nats-server, broker, the built-in
adapters): a report gets a receipt code, shown once; the code and the phone's last 4 digits look the
case up, anything else gets one 找不到; the limits per address and per phone; a POST without the CSRF
token, an oversized body, HTML and escape sequences, a bad id number: each refused in Chinese with
nothing sent to the bus; the security headers; and a fuzz of the forms that never gets a 5xx."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_console_helpers import ONLINE_OWNER, ConsoleBus

from unstuck.portal import Buckets, Limits
from unstuck.schemas.identifiers import with_check_character

CITIZEN_ID = with_check_character("21060219800101002")
REPORT = {
    "applicant_kind": "citizen",
    "applicant_name": "王小明",
    "id_number": CITIZEN_ID,
    "phone": "13904151234",
    "department": "chengguan",
    "window": "城管局户外广告审批窗口",
    "matter_title": "二楼门头招牌设置",
    "description": "餐饮店位于临街商住楼二楼，申请设置门头招牌，窗口说多层招牌不符合规定，未予办理。",
}
RECEIPT = re.compile(r'<p class="code" id="receipt">([A-Z0-9-]+)</p>')
FUZZ_EXAMPLES = int(os.environ.get("UNSTUCK_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleBus]:
    running = ConsoleBus(tmp_path_factory.mktemp("portal"), portal=Limits()).start()
    yield running
    running.stop()


class Visitor:
    """One browser's worth of requests: its cookie, and the CSRF token of the last page read."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=20, follow_redirects=False)
        self.csrf = ""

    def get(self, path: str) -> httpx.Response:
        page = self.http.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        if found:
            self.csrf = found.group(1)
        return page

    def post(self, path: str, form: dict[str, Any], csrf: bool = True) -> httpx.Response:
        if not self.csrf:
            self.get("/")
        return self.http.post(path, data={**form, **({"csrf": self.csrf} if csrf else {})})


def cases(bus: ConsoleBus) -> int:
    return len(bus.ask("case.list", {})["result"]["cases"])


def reported(bus: ConsoleBus, visitor: Visitor | None = None, **changes: str) -> str:
    visitor = visitor or Visitor(bus.portal_url())
    page = visitor.post("/report", {**REPORT, **changes})
    assert page.status_code == 200, page.text
    found = RECEIPT.search(page.text)
    assert found, page.text
    return found.group(1)


def test_a_report_gets_a_receipt_code_once_and_the_code_finds_the_case(bus: ConsoleBus) -> None:
    visitor = Visitor(bus.portal_url())
    form = visitor.get("/")
    assert form.status_code == 200 and "城市管理局" in form.text  # the departments come from the bus
    receipt = reported(bus, visitor)
    case_id = receipt.rsplit("-", 1)[0]
    opened = bus.events(case_id)[0]
    assert (opened["actor"], opened["data"]["channel"], opened["data"]["owner"]) == (
        "applicant",
        "online",
        ONLINE_OWNER,
    )
    assert opened["data"]["matter"] == "online_report"
    status = visitor.post("/lookup", {"receipt": receipt, "phone_last4": "1234"})
    assert status.status_code == 200
    assert "二楼门头招牌设置" in status.text and "当前状态" in status.text
    assert CITIZEN_ID not in status.text and "13904151234" not in status.text and case_id not in status.text
    lowered = visitor.post("/lookup", {"receipt": receipt.lower(), "phone_last4": "1234"})
    assert lowered.status_code == 200  # typed in lower case: the same code
    metrics = visitor.get("/metrics").text
    assert 'unstuck_portal_requests_total{outcome="ok",page="report"}' in metrics
    assert visitor.get("/healthz").text == "ok\n"


def test_wrong_digits_or_a_wrong_code_get_one_answer(bus: ConsoleBus) -> None:
    visitor = Visitor(bus.portal_url())
    receipt = reported(bus, visitor, phone="13904155678")
    other = "0" if receipt[-1] != "0" else "1"
    answers = [
        visitor.post("/lookup", {"receipt": receipt, "phone_last4": "1234"}),
        visitor.post("/lookup", {"receipt": receipt[:-1] + other, "phone_last4": "5678"}),
        visitor.post("/lookup", {"receipt": "DD-20991231-9999-" + receipt[-16:], "phone_last4": "5678"}),
    ]
    assert {a.status_code for a in answers} == {404}
    texts = {re.search(r'role="alert">([^<]+)<', a.text).group(1) for a in answers}  # type: ignore[union-attr]
    assert len(texts) == 1 and "找不到" in texts.pop()


def test_failed_lookups_are_limited_per_address_and_reports_per_phone(bus: ConsoleBus) -> None:
    limits = Limits(failed_lookups_per_address=(3, 3600.0), reports_per_phone=(2, 3600.0))
    strict = bus.run(bus.start_portal(limits))
    visitor = Visitor(bus.portal_url(strict))
    receipt = reported(bus, visitor, phone="13800001111")
    assert reported(bus, visitor, phone="138 0000 1111")  # the same phone, however typed
    third = visitor.post("/report", {**REPORT, "phone": "13800001111"})
    assert third.status_code == 429 and "太频繁" in third.text
    assert reported(bus, visitor, phone="13800002222")  # another phone may still report
    wrong = [visitor.post("/lookup", {"receipt": receipt, "phone_last4": "9999"}) for _ in range(4)]
    assert [w.status_code for w in wrong] == [404, 404, 404, 429]
    # the right digits now wait as well: guessing cannot go on from this address
    assert visitor.post("/lookup", {"receipt": receipt, "phone_last4": "1111"}).status_code == 429
    assert 'outcome="limited"' in visitor.get("/metrics").text


def test_token_buckets_refill_with_time() -> None:
    now = [0.0]
    buckets = Buckets(2, 10.0, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [True, True, False]
    assert buckets.take("b")
    now[0] = 5.0
    assert buckets.take("a") and not buckets.take("a")
    small = Buckets(1, 10.0, max_keys=2)
    for key in "xyz":
        small.take(key)
    assert small.allows("x")  # dropped as the oldest: bounded memory


def test_a_post_without_the_csrf_token_or_too_large_is_refused(bus: ConsoleBus) -> None:
    before = cases(bus)
    visitor = Visitor(bus.portal_url())
    visitor.get("/")
    refused = visitor.post("/report", REPORT, csrf=False)
    assert refused.status_code == 403 and "防伪令牌" in refused.text
    stranger = httpx.post(f"{bus.portal_url()}/report", data={**REPORT, "csrf": visitor.csrf})
    assert stranger.status_code == 403  # another browser's token without its cookie
    huge = visitor.post("/report", {**REPORT, "description": "长" * 20000})
    assert huge.status_code == 413 and "过大" in huge.text
    assert cases(bus) == before


def test_security_headers_on_every_page(bus: ConsoleBus) -> None:
    visitor = Visitor(bus.portal_url())
    for path in ("/", "/lookup", "/nowhere", "/static/portal.css"):
        page = visitor.get(path)
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "script-src 'self'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
    assert visitor.get("/nowhere").status_code == 404
    assert "<script" not in visitor.get("/").text  # no JavaScript at all


def test_html_and_escape_sequences_are_refused_and_shown_inert(bus: ConsoleBus) -> None:
    before = cases(bus)
    visitor = Visitor(bus.portal_url())
    page = visitor.post(
        "/report",
        {**REPORT, "description": "<script>alert(1)</script>很急", "applicant_name": "王\x1b[31m小明"},
    )
    assert page.status_code == 400
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;很急" in page.text
    assert "窗口怎么答复的：请勿输入 HTML 标记" in page.text and "姓名或企业名称：含有控制字符" in page.text
    assert cases(bus) == before


def test_a_bad_id_number_or_phone_is_named_in_chinese_and_nothing_is_sent(bus: ConsoleBus) -> None:
    before = cases(bus)
    visitor = Visitor(bus.portal_url())
    bad = CITIZEN_ID[:-1] + ("0" if CITIZEN_ID[-1] != "0" else "1")
    page = visitor.post("/report", {**REPORT, "id_number": bad, "phone": "", "department": "nowhere"})
    assert page.status_code == 400
    assert "证件号码：居民身份证号码校验位不符" in page.text
    assert "联系电话：必填" in page.text and "窗口所属部门：请从列表中选择" in page.text
    assert f'value="{bad}"' in page.text  # nothing typed is lost
    firm = visitor.post("/report", {**REPORT, "applicant_kind": "enterprise"})
    assert "统一社会信用代码" in firm.text and firm.status_code == 400
    assert cases(bus) == before
    assert 'unstuck_portal_form_errors_total{field="id_number"}' in visitor.get("/metrics").text


def test_the_brokers_refusal_is_its_chinese_sentence(bus: ConsoleBus) -> None:
    visitor = Visitor(bus.portal_url())
    receipt = reported(bus, visitor)
    early = visitor.post("/rate", {"receipt": receipt, "phone_last4": "1234", "level": "satisfied"})
    assert early.status_code == 400 and "Traceback" not in early.text
    message = re.search(r'role="alert">([^<]+)<', early.text).group(1)  # type: ignore[union-attr]
    assert re.search(r"[\u4e00-\u9fff]", message) and "case.evaluate" not in message


def test_portal_qr_writes_an_svg(tmp_path: Path) -> None:
    out = tmp_path / "portal.svg"
    done = subprocess.run(
        [sys.executable, "-m", "unstuck", "portal", "qr", "--url", "https://portal.example.gov.cn/", "--out",
         str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
    bad = subprocess.run(
        [sys.executable, "-m", "unstuck", "portal", "qr", "--url", "portal", "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and "https://" in bad.stderr


TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", " ", "<b>", "\x00", "\u202e", "１３９０４１５１２３４", "X" * 300, "\r\n", "%00"]),
)


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(["/report", "/lookup", "/rate"]),
    form=st.dictionaries(
        st.sampled_from([*REPORT, "receipt", "phone_last4", "level", "comment", "csrf", "extra"]), TEXT
    ),
)
def test_fuzzed_forms_never_get_a_server_error(bus: ConsoleBus, path: str, form: dict[str, str]) -> None:
    visitor = fuzz_visitor(bus)
    answer = visitor.post(path, {**REPORT, **form} if path == "/report" else form)
    assert answer.status_code < 500 or answer.status_code == 503, answer.text
    assert "Traceback" not in answer.text


_FUZZ: dict[str, Visitor] = {}


def fuzz_visitor(bus: ConsoleBus) -> Visitor:
    """One visitor on a portal without limits that matter, so every example reaches the checks."""
    if "v" not in _FUZZ:
        roomy = Limits(
            pages_per_address=(10**6, 1.0),
            reports_per_address=(10**6, 1.0),
            reports_per_phone=(10**6, 1.0),
            lookups_per_address=(10**6, 1.0),
            failed_lookups_per_address=(10**6, 1.0),
            failed_lookups_per_case=(10**6, 1.0),
        )
        _FUZZ["v"] = Visitor(bus.portal_url(bus.run(bus.start_portal(roomy))))
        _FUZZ["v"].get("/")
    return _FUZZ["v"]

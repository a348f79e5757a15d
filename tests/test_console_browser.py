"""The window console in a real browser: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright,
on a real nats-server, broker and the built-in adapters, so cases are routed and answered.

The three steps (叫號, intake, the answer, 延期 asked by one leader and approved by another, 銷號 and
the applicant's rating on the evaluation screen), then the refusals: a clerk is offered no approval and
a forged one is refused by the broker; a session cookie copied to another browser acts only as its own
user, and a tampered or signed-out one not at all; a POST without the CSRF token does nothing.
axe-core checks every screen against WCAG 2.1 AA. The screenshots in docs/console/ come from here
(docs/console.md). One browser serves the whole module.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_console_helpers import PASSWORD, ConsoleBus

from conftest import WCAG_AA
from unstuck.schemas.subjects import VIA_WEB, api_subject

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "console"

try:
    from playwright.sync_api import Browser, BrowserContext, Page
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("playwright is not installed: pip install -e '.[test]'", allow_module_level=True)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleBus]:
    running = ConsoleBus(tmp_path_factory.mktemp("console-browser")).start()
    yield running
    running.stop()


def context(browser: Browser, **options: Any) -> BrowserContext:
    made = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN", **options)
    made.set_default_timeout(20000)
    return made


def sign_in(browser: Browser, bus: ConsoleBus, staff: str) -> Page:
    page = context(browser).new_page()
    page.goto(f"{bus.url}/login")
    page.fill("#username", staff)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('登录')")
    page.wait_for_url(re.compile(r".*/queue$"))
    return page


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def case_state_text(page: Page, bus: ConsoleBus, case_id: str, text: str) -> None:
    """Reload the case page until its state reads ``text`` (the broker works while the page waits)."""
    for _ in range(100):
        page.goto(f"{bus.url}/cases/{case_id}")
        if page.inner_text("#case-state") == text:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"case {case_id} never reached {text}: {page.inner_text('#case-state')}")


def act_on_web(bus: ConsoleBus, verb: str, staff: str, body: dict[str, Any]) -> dict[str, Any]:
    """A request on the console's own subject for ``staff`` (this test bus has no NATS users)."""

    async def ask() -> dict[str, Any]:
        msg = await bus.nc.request(api_subject(verb, staff, VIA_WEB), json.dumps(body).encode(), timeout=10)
        return dict(json.loads(msg.data))

    return bus.run(ask())


def opened_case(bus: ConsoleBus, staff: str = "w-zhang") -> str:
    """Sample 13's matter (scjg, hard; no built-in answer: it stays coordinating), opened as ``staff``."""
    body = json.loads(next((ROOT / "examples" / "cases").glob("13*.json")).read_text(encoding="utf-8"))
    for key in ("owner", "client_ref"):
        body.pop(key, None)
    reply = act_on_web(bus, "case.open", staff, body)
    assert reply["ok"], reply
    return str(reply["result"]["case_id"])


def events_of(bus: ConsoleBus, case_id: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in bus.events(case_id) if e["type"] == event_type]


def fill_intake(page: Page) -> None:
    page.select_option("#f-applicant_kind", "enterprise")
    page.fill("#f-applicant_name", "丹东市振兴区味道小厨餐饮店")
    page.fill("#f-id_number", "92210603MA0KC8QX2K")
    page.fill("#f-phone", "13904151234")
    page.fill("#f-contact", "王丽")
    page.fill("#f-matter_title", "二楼门头招牌设置")
    page.fill("#f-matter", "shop_sign")
    page.fill("#f-window", "城管局户外广告审批窗口")
    page.select_option("#f-department", "chengguan")
    page.fill(
        "#f-description",
        "餐饮店位于临街商住楼二楼，申请在二楼外立面设置门头招牌，窗口以不符合规定为由未予办理。",
    )
    page.fill("#f-facts", "floor=2\nbuilding=临街商住楼")


def test_the_three_steps_from_a_number_to_the_applicants_rating(browser: Browser, bus: ConsoleBus) -> None:
    clerk = context(browser).new_page()
    clerk.goto(f"{bus.url}/")
    assert clerk.url.endswith("/login?next=%2F")
    shot(clerk, "login")
    clerk.fill("#username", "w-zhang")
    clerk.fill("#password", PASSWORD)
    clerk.click("button:has-text('登录')")
    clerk.wait_for_url(re.compile(r".*/queue$"))

    # ① 叫號: a number is taken and called; the intake form opens for it
    clerk.click("button:has-text('取号')")
    clerk.click("button:has-text('取号')")
    shot(clerk, "queue")
    clerk.click("button:has-text('叫下一个号')")
    clerk.wait_for_url(re.compile(r".*/intake\?ticket=A001$"))
    assert clerk.inner_text("h1") == "受理登记：A001 号"

    # ② intake: the due date appears as soon as the category is chosen (1-3-5: cannot, 3 working days)
    fill_intake(clerk)
    clerk.wait_for_function("typeof htmx !== 'undefined'")
    clerk.select_option("#f-category", "cannot")
    clerk.wait_for_selector("#due:has-text('办结期限：2026-10-08')")
    assert "3 个工作日" in clerk.inner_text("#due")
    shot(clerk, "intake")
    clerk.click("button:has-text('受理'):not(:has-text('登记'))")
    clerk.wait_for_url(re.compile(r".*/cases/DD-20260928-\d{4}$"))
    case_id = clerk.url.rsplit("/", 1)[1]
    assert f"已受理 {case_id}，办结期限 2026-10-08：请告知申请人" in clerk.inner_text(".flash")

    # the case is routed to 城管 and answered by its adapter: the answer in full, legal basis included
    case_state_text(clerk, bus, case_id, "已答复待销号")
    answer = clerk.inner_text("article.answer")
    assert "城市管理局（chengguan）" in answer and "不能办理" in answer
    assert "法律依据" in answer and "門頭招牌只設於建築物一層" in answer
    assert clerk.inner_text("#id-number") == "9221**********QX2K"  # masked
    assert "approve_extension" not in clerk.inner_html("section[aria-labelledby=h-actions]")
    shot(clerk, "case")

    # 延期: asked by one leader, who is offered no approval of his own request ...
    gao = sign_in(browser, bus, "leader-gao")
    gao.goto(f"{bus.url}/cases/{case_id}")
    gao.click("#action-extend summary")
    gao.fill("#f-extend-working_days", "2")
    gao.fill("#f-extend-reason", "需城管委员会会商")
    gao.click("#action-extend button[type=submit]")
    assert "申请延期：已办理" in gao.inner_text(".flash")
    assert gao.locator("#action-approve_extension").count() == 0
    gao.goto(f"{bus.url}/inbox")
    assert "须由另一位领导批准" in gao.inner_text("section[aria-labelledby=h-ext]")

    # ... and approved by another leader from the inbox
    ma = sign_in(browser, bus, "director-ma")
    ma.goto(f"{bus.url}/inbox")
    shot(ma, "inbox")
    ma.click(f"form[action='/cases/{case_id}/act/approve_extension'] button")
    assert "批准延期：已办理；办结期限 2026-10-10" in ma.inner_text(
        ".flash"
    )  # Saturday 10 October is a make-up working day
    [extended] = events_of(bus, case_id, "case.extended")
    assert (extended["actor"], extended["auth"], extended["data"]["approved_by"]) == (
        "director-ma",
        "web",
        "director-ma",
    )
    [asked] = events_of(bus, case_id, "case.extension_requested")
    assert (asked["actor"], asked["auth"]) == ("leader-gao", "web")

    # ③ 銷號, then the evaluation screen turned to the applicant: big buttons, no staff controls
    clerk.goto(f"{bus.url}/cases/{case_id}")
    clerk.click("#action-close summary")
    clerk.select_option("#f-close-outcome", "cannot")
    clerk.fill("#f-close-explanation", "已向申请人说明：门头招牌只设于一层，可在一层入口处设置指示牌。")
    clerk.click("#action-close button[type=submit]")
    assert clerk.inner_text("#case-state") == "已销号待评价"
    clerk.click("#open-rating")
    clerk.wait_for_url(re.compile(r".*/rate/.+"))
    clerk.set_viewport_size({"width": 1024, "height": 768})  # a tablet facing the applicant
    assert clerk.locator("nav").count() == 0 and clerk.locator("text=退出").count() == 0
    assert clerk.locator("button.good").inner_text() == "满意"
    shot(clerk, "rate")
    clerk.fill("#comment", "说明得很清楚")
    clerk.click("button.good")
    assert "感谢您的评价" in clerk.inner_text("h1")
    [rated] = events_of(bus, case_id, "case.evaluated")
    assert (rated["actor"], rated["auth"], rated["data"]["rating"]) == ("applicant", "web", "good")
    assert bus.state(case_id).state == "evaluated"

    # the ledger and who stalls, as the clerk sees them afterwards
    clerk.set_viewport_size({"width": 1280, "height": 900})
    clerk.goto(f"{bus.url}/cases?state=evaluated")
    row = clerk.locator(f"tr:has(a[href='/cases/{case_id}'])").inner_text()
    assert "已评价" in row and "2026-10-10" in row and "按期" in row
    shot(clerk, "ledger")
    with clerk.expect_response(re.compile(r".*/departments/table$"), timeout=15000):
        clerk.goto(f"{bus.url}/departments")  # the table asks again by itself (htmx, every 5 s)
    assert "城市管理局（chengguan）" in clerk.inner_text("#departments")
    shot(clerk, "departments")
    clerk.goto(f"{bus.url}/cases/{case_id}")
    shot(clerk, "case-closed")
    for page in (clerk, gao, ma):
        page.context.close()


def test_a_clerk_is_offered_no_approval_and_a_forged_one_is_refused(
    browser: Browser, bus: ConsoleBus
) -> None:
    case_id = opened_case(bus)
    asked = act_on_web(
        bus, "case.extend", "w-zhang", {"case_id": case_id, "working_days": 1, "reason": "待材料"}
    )
    assert asked["ok"], asked
    clerk = sign_in(browser, bus, "w-li")
    clerk.goto(f"{bus.url}/cases/{case_id}")
    assert clerk.locator("#action-approve_extension").count() == 0
    assert "延期申请待批准" in clerk.inner_text("section[aria-labelledby=h-coord]")
    clerk.goto(f"{bus.url}/inbox")
    assert clerk.locator(f"form[action='/cases/{case_id}/act/approve_extension']").count() == 0

    # the same POST the leader's button sends, forged with the clerk's own valid session and token
    token = clerk.locator("input[name=csrf]").first.get_attribute("value")
    answer = clerk.request.post(
        f"{bus.url}/cases/{case_id}/act/approve_extension", form={"csrf": token or ""}
    )
    assert answer.status == 422
    assert "延期须由领导（分管领导及以上）批准" in answer.text()
    assert events_of(bus, case_id, "case.extended") == []
    assert bus.state(case_id).pending_extension is not None
    clerk.context.close()


def cookie_value(page: Page) -> dict[str, Any]:
    [cookie] = [c for c in page.context.cookies() if c["name"] == "unstuck_console"]
    return dict(cookie)


def test_a_session_cookie_acts_only_as_its_own_user(browser: Browser, bus: ConsoleBus) -> None:
    case_id = opened_case(bus)
    owner = sign_in(browser, bus, "w-li")
    stolen = cookie_value(owner)
    other = context(browser)
    other.add_cookies([stolen])  # another browser holding w-li's cookie
    page = other.new_page()
    page.goto(f"{bus.url}/cases/{case_id}")
    assert "w-li（经办人）" in page.inner_text("header")
    token = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    # a form that names someone else changes nothing: who acts is the cookie's own user
    answer = page.request.post(
        f"{bus.url}/cases/{case_id}/act/escalate",
        form={"csrf": token, "department": "scjg", "level": "section_head", "note": "请尽快答复",
              "actor": "leader-gao", "owner": "leader-gao"},
    )  # fmt: skip
    assert answer.status == 200
    [direct] = [e for e in events_of(bus, case_id, "case.escalated") if e["data"].get("reason") == "direct"]
    assert (direct["actor"], direct["auth"]) == ("w-li", "web")

    # a cookie whose content is changed to name a leader fails its signature: not signed in at all
    payload, signature = stolen["value"].split(".", 1)
    session = json.loads(base64.b64decode(payload))
    session["staff"] = "leader-gao"
    forged = base64.b64encode(json.dumps(session).encode()).decode()
    tampered = context(browser)
    tampered.add_cookies([{**stolen, "value": f"{forged}.{signature}"}])
    tampered_page = tampered.new_page()
    tampered_page.goto(f"{bus.url}/inbox")
    assert "/login" in tampered_page.url

    # once w-li signs out, the copy stops working too
    owner.click("button:has-text('退出')")
    page.goto(f"{bus.url}/inbox")
    assert "/login" in page.url
    for made in (owner.context, other, tampered):
        made.close()


def test_a_post_without_the_csrf_token_does_nothing(browser: Browser, bus: ConsoleBus) -> None:
    page = sign_in(browser, bus, "w-zhang")
    before = len(bus.console.console.tickets.today()) if bus.console else 0
    answer = page.request.post(f"{bus.url}/queue/take", form={"note": "no token"})
    assert answer.status == 403 and "防伪令牌（CSRF）" in answer.text()
    # a page of another site posting to the console: the SameSite=Strict cookie is not sent with it
    page.set_content(
        f'<form id="f" method="post" action="{bus.url}/queue/take"><input name="csrf" value="guess"></form>'
    )
    with page.expect_navigation():
        page.eval_on_selector("#f", "f => f.submit()")
    assert "/login" in page.url or "防伪令牌" in page.content()
    assert bus.console is not None and len(bus.console.console.tickets.today()) == before
    page.context.close()


def test_bad_input_is_named_in_chinese_and_nothing_typed_is_lost(browser: Browser, bus: ConsoleBus) -> None:
    page = sign_in(browser, bus, "w-zhang")
    page.goto(f"{bus.url}/intake")
    fill_intake(page)
    page.fill("#f-id_number", "2106")
    page.fill("#f-description", "<img src=x onerror=alert(1)>申请人很着急")
    page.click("button:has-text('受理'):not(:has-text('登记'))")
    problems = page.inner_text("div.problem")
    assert "证件号码：居民身份证号码应为 18 位" in problems and "情况说明：请勿输入 HTML 标记" in problems
    assert page.input_value("#f-applicant_name") == "丹东市振兴区味道小厨餐饮店"
    assert page.input_value("#f-description") == "<img src=x onerror=alert(1)>申请人很着急"
    assert page.locator("img").count() == 0
    shot(page, "intake-errors")
    page.goto(f"{bus.url}/cases/DD-20990101-0001")
    assert "案件 DD-20990101-0001 不存在" in page.inner_text("main")
    page.context.close()


def test_every_screen_meets_wcag_2_1_aa(browser: Browser, bus: ConsoleBus) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    case_id = opened_case(bus)
    act_on_web(bus, "case.extend", "w-zhang", {"case_id": case_id, "working_days": 1, "reason": "待材料"})
    anonymous = context(browser).new_page()
    anonymous.goto(f"{bus.url}/login")
    page = sign_in(browser, bus, "leader-gao")
    screens: list[tuple[str, Page, str | None]] = [
        ("login", anonymous, None),
        ("queue", page, "/queue"),
        ("intake", page, "/intake"),
        ("case", page, f"/cases/{case_id}"),
        ("ledger", page, "/cases"),
        ("inbox", page, "/inbox"),
        ("departments", page, "/departments"),
        ("not found", page, "/cases/DD-20990101-0001"),
    ]
    found = {}
    for name, on, path in screens:
        if path is not None:
            on.goto(f"{bus.url}{path}")
        for opened in on.locator("details").all():
            opened.evaluate("d => d.open = true")  # the action forms too
        result = axe.run(on, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
        if result.violations_count:
            found[name] = result.generate_report()
    page.goto(f"{bus.url}/intake")
    page.click("button:has-text('受理'):not(:has-text('登记'))")  # every field's message shown
    result = axe.run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
    if result.violations_count:
        found["intake with errors"] = result.generate_report()
    # the evaluation screen, opened the way staff open it, on a case closed as withdrawn
    closing = {"case_id": case_id, "outcome": "withdrawn", "explanation": "申请人撤回"}
    assert act_on_web(bus, "case.close", "w-zhang", closing)["ok"]
    page.goto(f"{bus.url}/cases/{case_id}")
    page.click("#open-rating")
    page.wait_for_url(re.compile(r".*/rate/.+"))
    result = axe.run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
    if result.violations_count:
        found["rating screen"] = result.generate_report()
    assert found == {}, "\n".join(f"== {k}\n{v}" for k, v in found.items())
    for made in (anonymous.context, page.context):
        made.close()

"""The clerk's command line in Chinese: labels instead of codes, Beijing time, the due date to tell the
applicant, on time or late, who a case was escalated to, refusals in the staff's language, and no
terminal escape sequence let through from a case's data.

The commands run in this process (``cli.main``) against a real broker on a simulated clock that starts
on Monday 28 September 2026 at 09:00 in Dandong (01:00 UTC). The deadlines, worked out by hand on the
2026 calendar (National Day holiday 1-7 October, Saturday 10 October a make-up working day): a refused
case gets 1 working day (due Tuesday 29 September), a cannot case 3 (29, 30 September and 8 October:
due 8 October), a hard case 5 (29, 30 September, 8, 9 and 10 October: due Saturday 10 October).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import get_args

import pytest

from conftest import closed_shop_sign, on_a_terminal, sample
from unstuck import cli
from unstuck import lifecycle as lc
from unstuck.cli.common import ApiCallError
from unstuck.clock import CHINA
from unstuck.config import Config, ConfigError, DepartmentConfig, load_config
from unstuck.schemas import EVENT_TYPES, Category, Level, Outcome, api, label
from unstuck.schemas import events as ev
from unstuck.schemas.labels import LABELS
from unstuck.testing import api_call, fast_config, wait_for
from unstuck.texttable import clean, table

NEUTRAL = "申請人要求辦理，窗口記錄如下"  # no phrase the built-in classifier knows: the case waits in intake


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch, tmp_path, nats_server):
    """Each command as a clerk's shell would run it here: the test's server, no language or
    configuration set, in a directory without unstuck.toml."""
    for name in ("UNSTUCK_LANG", "UNSTUCK_CONFIG", "UNSTUCK_STAFF"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NATS_URL", nats_server.url)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def unstuck_config():
    """scjg's chain names its people (王局 is its leader in charge)."""
    config = fast_config()
    config.departments["scjg"] = DepartmentConfig(
        chain={"section_head": "登記科李科長", "leader_in_charge": "王局", "director": "趙局長"}
    )
    return config


async def run(capsys, *args: str) -> tuple[int, str, str]:
    """``unstuck ARGS``: the exit code, stdout and stderr."""
    code = await asyncio.to_thread(cli.main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def lines_of(out: str) -> dict[str, str]:
    """The printed rows by their first cell."""
    return {line.split()[0]: line for line in out.splitlines() if line.strip()}


# --- the label tables ------------------------------------------------------------------------------


def test_every_code_staff_can_see_has_a_label_in_chinese_and_english():
    literal = {
        "state": lc.STATES,
        "category": tuple(Category),
        "outcome": (*Outcome, *get_args(ev.CaseClosed.model_fields["outcome"].annotation)),
        "level": tuple(Level),
        "role": get_args(ev.CaseEscalated.model_fields["role"].annotation),
        "reason": get_args(ev.CaseEscalated.model_fields["reason"].annotation),
        "rating": get_args(ev.CaseEvaluated.model_fields["rating"].annotation),
        "event": tuple(EVENT_TYPES),
    }
    measures = ev.AccountabilityRecorded.model_fields["measures"].annotation
    literal["measure"] = get_args(get_args(measures)[0])
    assert set(get_args(api.Close.model_fields["outcome"].annotation)) <= set(literal["outcome"])
    for kind, codes in literal.items():
        missing = [c for c in codes if c not in LABELS[kind]]
        assert not missing, f"no {kind} label for {missing}: add it beside its list in unstuck.schemas"
        for code in codes:
            zh, en = LABELS[kind][code]
            assert zh and en, (kind, code)


def test_labels_read_as_the_window_says_them():
    assert [label("state", s) for s in lc.STATES] == [
        "受理待分類",
        "引導中",
        "協調中",
        "已答覆待銷號",
        "已銷號待評價",
        "已評價",
    ]
    assert [label("category", c) for c in ("cannot", "hard", "refused", "guided")] == [
        "不能辦",
        "很難辦",
        "不給辦",
        "引導辦",
    ]
    assert label("outcome", "not_ours") == "非本部門" and label("outcome", "withdrawn") == "申請人撤回"
    assert label("role", "leader_in_charge") == "分管領導" and label("level", 3) == "局長"
    assert label("measure", "performance_review") == "績效考核" and label("rating", "bad") == "差評"
    assert label("reason", "direct") == "直接督辦"
    assert label("state", "coordinating", "en") == "coordinating"
    assert label("role", "section_head", "en") == "section head"
    assert label("outcome", "someday") == "someday" and label("category", None) == "-"  # unknown, absent


# --- case open and case classify: the due date ------------------------------------------------------


async def test_case_open_prints_the_due_date_to_tell_the_applicant(
    broker, builtin_adapters, capsys, tmp_path
):
    case = tmp_path / "case.json"
    case.write_text(json.dumps(sample("08"), ensure_ascii=False), encoding="utf-8")  # hard, renshe
    code, out, _ = await run(capsys, "case", "open", "--file", str(case))
    assert code == 0
    assert out.splitlines() == [
        "已受理 DD-20260928-0001，狀態：協調中",
        "辦結期限：2026-10-10（請告知申請人）",
    ]
    code, out, _ = await run(capsys, "case", "open", "--file", str(case), "--json")
    result = json.loads(out)
    assert result["due_date"] == "2026-10-10" and result["state"] == "coordinating"
    assert result["case_id"] == "DD-20260928-0002"


async def test_an_unclassified_case_gets_its_due_date_from_case_classify(
    broker, builtin_adapters, capsys, tmp_path
):
    case = tmp_path / "case.json"
    case.write_text(
        json.dumps(sample("03", category=None, description=NEUTRAL), ensure_ascii=False), encoding="utf-8"
    )
    code, out, _ = await run(capsys, "case", "open", "--file", str(case))
    assert code == 0
    assert out.splitlines() == [
        "已受理 DD-20260928-0001，狀態：受理待分類",
        "尚未分類：須於 2026-09-28 前完成分類，分類後確定辦結期限",  # the day it opened, a Monday
    ]
    code, out, _ = await run(
        capsys,
        "case",
        "classify",
        "DD-20260928-0001",
        "--actor",
        "w-zhang",
        "--category",
        "refused",
        "--reason",
        "經辦人推諉",
    )
    assert code == 0
    assert out.splitlines() == [
        "DD-20260928-0001：#3 分類, #4 發起協調；狀態：協調中",  # #2 set the intake deadline
        "辦結期限：2026-09-29（請告知申請人）",
    ]
    code, out, _ = await run(
        capsys,
        "--lang",
        "en",
        "case",
        "handover",
        "DD-20260928-0001",
        "--actor",
        "w-zhang",
        "--to",
        "w-li",
        "--reason",
        "休假",
    )
    (line,) = out.splitlines()  # no new due date to tell (renshe may have answered meanwhile)
    assert line.startswith("DD-20260928-0001: #") and " handed over; state " in line


# --- case show: labels, Beijing time, on time -------------------------------------------------------


async def test_case_show_in_chinese_with_beijing_time(broker, builtin_adapters, nats_client, capsys):
    case_id = await closed_shop_sign(broker, nats_client)  # opened at 09:00 in Dandong, closed at once
    code, out, _ = await run(capsys, "case", "show", case_id)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{case_id}  二樓門頭招牌設置  [已評價]"
    facts = {line.split()[0]: line.split()[1:] for line in lines[1:7]}
    assert facts["類別"] == ["不能辦"] and facts["辦結期限"] == ["2026-10-08", "按期"]
    assert facts["申請人"][-1] == "(企業)"
    rows = lines_of(out)
    assert rows["#"].split()[:3] == ["#", "時間（北京時間）", "操作人"]
    assert rows["1"].split()[1:5] == ["2026-09-28", "09:00:00", "w-zhang", "受理"]
    assert "不能辦理" in rows["4"] and "部門答覆" in rows["4"]
    assert rows["7"].split()[4:6] == ["銷號", "不能辦理，按期：已說明多層招牌不符規定（w-zhang銷號）"]
    assert rows["8"].split()[4:] == ["好差評", "好評"]
    assert "01:00:00" not in out

    code, out, _ = await run(capsys, "case", "show", case_id, "--json")  # codes and UTC, as stored
    shown = json.loads(out)
    assert shown["state"]["state"] == "evaluated" and shown["state"]["category"] == "cannot"
    assert shown["events"][0]["at"].startswith("2026-09-28T01:00:00")


async def test_case_show_in_english_and_in_another_zone(
    broker, builtin_adapters, nats_client, capsys, monkeypatch
):
    case_id = await closed_shop_sign(broker, nats_client)
    code, out, _ = await run(capsys, "case", "show", case_id, "--lang", "en")
    assert code == 0
    assert out.splitlines()[0] == f"{case_id}  二樓門頭招牌設置  [evaluated]"
    rows = lines_of(out)
    assert rows["category"].split() == ["category", "cannot"] and rows["due"].split() == [
        "due",
        "2026-10-08",
        "on",
        "time",
    ]
    assert rows["#"].split()[:4] == ["#", "at", "(Asia/Shanghai)", "actor"]
    assert rows["1"].split()[1:5] == ["2026-09-28", "09:00:00", "w-zhang", "opened"]

    monkeypatch.setenv("UNSTUCK_LANG", "en")
    code, out, _ = await run(capsys, "case", "show", case_id, "--tz", "UTC")
    rows = lines_of(out)
    assert rows["#"].split()[:3] == ["#", "at", "(UTC)"]
    assert rows["1"].split()[1:3] == ["2026-09-28", "01:00:00"]
    code, out, _ = await run(capsys, "--lang", "zh", "case", "show", case_id)  # the option over the variable
    assert "[已評價]" in out.splitlines()[0]


async def test_the_display_zone_comes_from_the_configuration_and_a_bad_one_is_named(
    broker, builtin_adapters, nats_client, capsys, tmp_path
):
    case_id = await closed_shop_sign(broker, nats_client)
    config = tmp_path / "unstuck.toml"
    config.write_text('[display]\ntimezone = "Europe/Berlin"\n', encoding="utf-8")
    code, out, _ = await run(capsys, "case", "show", case_id)
    assert code == 0
    rows = lines_of(out)
    assert rows["#"].split()[1] == "時間（Europe/Berlin）"
    assert rows["1"].split()[1:3] == ["2026-09-28", "03:00:00"]  # 01:00 UTC in Berlin's summer time

    config.write_text('[display]\ntimezone = "Asia/Dandong"\n', encoding="utf-8")
    code, out, err = await run(capsys, "case", "show", case_id)
    assert code == 2 and out == ""
    assert "display.timezone" in err and "'Asia/Dandong'" in err and "Asia/Shanghai" in err
    with pytest.raises(ConfigError, match=r"display\.timezone"):
        load_config(config)
    code, _, err = await run(capsys, "case", "show", case_id, "--tz", "Mars/Base")
    assert code == 2 and "--tz" in err and "'Mars/Base'" in err
    config.unlink()
    with pytest.raises(SystemExit, match="2"):
        await run(capsys, "case", "show", case_id, "--lang", "fr")
    assert "invalid choice: 'fr'" in capsys.readouterr().err


def test_the_example_configuration_shows_the_display_default():
    example = load_config(Path(__file__).resolve().parents[1] / "examples" / "unstuck.toml")
    assert example.display.timezone == "Asia/Shanghai" == Config().display.timezone


async def test_an_unknown_unstuck_lang_is_refused(capsys, monkeypatch):
    monkeypatch.setenv("UNSTUCK_LANG", "fr")
    code, out, err = await run(capsys, "case", "show", "DD-20260928-0001")
    assert code == 2 and out == "" and err == "unstuck: UNSTUCK_LANG='fr': use zh or en\n"


async def test_on_time_late_and_past_due_in_case_show_and_case_list(
    broker, builtin_adapters, nats_client, sim_clock, capsys
):
    on_time = await closed_shop_sign(broker, nats_client)  # cannot, due 8 October, closed 28 September
    late = (await api_call(nats_client, "case.open", sample("03")))["case_id"]  # refused, due 29 September
    open_ = (await api_call(nats_client, "case.open", sample("13")))["case_id"]  # hard, due 10 October
    await wait_for(lambda: broker.state_of(late).state == "answered")
    sim_clock.set(datetime(2026, 9, 30, 10, 0, tzinfo=CHINA))
    finding = {"staff": "renshe-clerk-07", "section": "養老保險科", "leader_in_charge": "分管副局長"}
    await api_call(  # 不給辦 closes only with its accountability
        nats_client,
        "accountability.record",
        {"case_id": late, "actor": "leader-gao", **finding, "finding": "推諉", "measures": ["interview"]},
    )
    await api_call(
        nats_client,
        "case.close",
        {"case_id": late, "actor": "w-zhang", "outcome": "resolved", "explanation": "已當場受理"},
    )
    sim_clock.set(datetime(2026, 10, 12, 9, 0, tzinfo=CHINA))  # Monday: 13 is past its due date

    code, out, _ = await run(capsys, "case", "list")
    assert code == 0
    rows = lines_of(out)
    assert rows["案件編號"].split() == [
        "案件編號",
        "狀態",
        "類別",
        "協調部門",
        "承辦人",
        "辦結期限",
        "時效",
        "事項",
    ]
    assert rows[on_time].split()[1:] == [
        "已評價",
        "不能辦",
        "chengguan",
        "w-zhang",
        "2026-10-08",
        "按期",
        "二樓門頭招牌設置",
    ]
    assert rows[late].split()[1:] == [
        "已銷號待評價",
        "不給辦",
        "renshe",
        "w-zhang",
        "2026-09-29",
        "逾期",
        "跨省養老保險關係轉移",
    ]
    assert rows[open_].split()[1:] == [
        "協調中",
        "很難辦",
        "scjg",
        "w-li",
        "2026-10-10",
        "已逾期",
        "儲能新業態經營範圍",
    ]
    assert out.splitlines()[-1] == "共 3 件"
    listed = {c["case_id"]: c for c in json.loads((await run(capsys, "case", "list", "--json"))[1])["cases"]}
    assert [listed[c]["on_time"] for c in (on_time, late, open_)] == [True, False, None]

    shown = {}
    for case_id in (late, open_):
        code, out, _ = await run(capsys, "case", "show", case_id)
        shown[case_id] = lines_of(out)["辦結期限"].split()[1:]
    assert shown == {late: ["2026-09-29", "逾期"], open_: ["2026-10-10", "已逾期"]}
    code, out, _ = await run(capsys, "case", "list", "--lang", "en")
    rows = lines_of(out)
    assert rows["case"].split()[6:8] == ["on", "time"]
    assert rows[late].split()[1:7] == ["closed", "refused", "renshe", "w-zhang", "2026-09-29", "late"]
    assert rows[open_].split()[6] == "overdue"


# --- escalation rows name the level and the person --------------------------------------------------


async def test_escalation_rows_name_the_level_role_person_and_reason(
    broker, builtin_adapters, nats_client, sim_clock, capsys
):
    case_id = (await api_call(nats_client, "case.open", sample("13")))[
        "case_id"
    ]  # scjg accepts, never finishes
    await wait_for(lambda: not broker.state_of(case_id).coordinations[f"{case_id}-c1"].awaiting_reply)
    sim_clock.set(datetime(2026, 10, 11, 9, 0, tzinfo=CHINA))  # Sunday: overdue, the ladder waits
    await api_call(nats_client, "admin.tick", {})
    sim_clock.set(datetime(2026, 10, 12, 9, 0, tzinfo=CHINA))  # Monday: the section head
    await api_call(nats_client, "admin.tick", {})
    code, out, _ = await run(
        capsys,
        "case",
        "escalate",
        case_id,
        "--actor",
        "w-li",
        "--department",
        "scjg",
        "--level",
        "leader_in_charge",
        "--note",
        "請分管領導督辦",
    )
    assert code == 0 and "督辦升級" in out
    code, out, _ = await run(capsys, "case", "show", case_id)
    escalations = [line.split()[4:] for line in out.splitlines() if "督辦升級" in line]
    assert escalations == [
        ["督辦升級", "scjg", "第1級", "科長", "登記科李科長（逾期）"],
        ["督辦升級", "scjg", "第2級", "分管領導", "王局（直接督辦）：請分管領導督辦"],
    ]
    code, out, _ = await run(capsys, "--lang", "en", "case", "show", case_id)
    escalations = [
        line.split("escalated", 1)[1].split() for line in out.splitlines() if " escalated " in line
    ]
    assert escalations == [
        ["scjg", "level", "1", "section", "head", "登記科李科長", "(overdue)"],
        ["scjg", "level", "2", "leader", "in", "charge", "王局", "(addressed", "directly)", "請分管領導督辦"],
    ]


# --- refusals ---------------------------------------------------------------------------------------


def test_a_refusal_prints_the_chinese_message_then_its_code():
    error = api.ApiError(
        code="not_allowed",
        message="only the owner (clerk-1) or a leader above them can close case DD-20260928-0001",
        message_zh="只有承辦人（clerk-1）或領導可以銷號此案",
        field="actor",
    ).model_dump()
    refusal = ApiCallError(error)
    assert refusal.text("zh") == "錯誤：只有承辦人（clerk-1）或領導可以銷號此案 [not_allowed]"
    assert refusal.text("en") == (
        "error: only the owner (clerk-1) or a leader above them can close case DD-20260928-0001 [not_allowed]"
    )
    english_only = ApiCallError({**error, "message_zh": None, "fix": "ask the owner"})
    assert english_only.text("zh") == (
        "錯誤：only the owner (clerk-1) or a leader above them can close case DD-20260928-0001"
        " (fix: ask the owner) [not_allowed]"
    )


async def test_a_refusal_from_the_broker_ends_with_its_stable_code(
    broker, builtin_adapters, nats_client, capsys
):
    case_id = (await api_call(nats_client, "case.open", sample("05")))[
        "case_id"
    ]  # guided: cannot be closed yet
    close = ("case", "close", case_id, "--actor", "w-wang", "--outcome", "resolved", "--explanation", "x")
    code, out, err = await run(capsys, *close)
    assert code == 1 and out == ""
    assert err.startswith("錯誤：") and err.endswith(" [not_allowed]\n") and err.count("\n") == 1
    code, _, err = await run(capsys, "--lang", "en", *close)
    assert code == 1 and err.startswith("error: ") and "guiding" in err and err.endswith(" [not_allowed]\n")


# --- nothing from a case's data reaches the terminal as an escape sequence --------------------------


async def test_a_matter_title_with_escape_sequences_prints_without_them(
    broker, builtin_adapters, nats_client, nats_server, capsys
):
    title = "招牌\x1b[31m紅字\x1b[0m設置\x1b]0;pwned\x07"
    case_id = (await api_call(nats_client, "case.open", sample("01", matter_title=title)))["case_id"]
    await wait_for(lambda: broker.state_of(case_id).state == "answered")
    outputs = [
        (await run(capsys, "case", "show", case_id))[1],
        (await run(capsys, "case", "list"))[1],
        (await run(capsys, "case", "timeline", case_id, "--nats", nats_server.url))[1],
    ]
    for out in outputs:
        assert "\x1b" not in out and "\x07" not in out
        assert "招牌紅字設置" in out
    assert outputs[0].splitlines()[0] == f"{case_id}  招牌紅字設置  [已答覆待銷號]"
    _, out, _ = await run(capsys, "case", "show", case_id, "--json")  # the record as stored, for machines
    assert json.loads(out)["state"]["intake"]["matter_title"] == title


def test_clean_takes_out_escape_sequences_and_control_characters():
    assert clean("a\x1b[2J\x1b[Hb\x1b]8;;http://x\x1b\\c\x9b31md\x1bce\x07f\u202eg\th\ni") == "abcdefg h i"
    assert clean(None) == "" and clean(12) == "12"
    assert table(["事項", "n"], [["紅\x1b[31m字", 1]], right=[1]).splitlines() == [
        "事項  n",
        "----- -",
        "紅字  1",
    ]


# --- the progress bar -------------------------------------------------------------------------------


async def test_replay_draws_its_progress_bar_on_a_terminal_only(
    broker, builtin_adapters, nats_client, nats_server, tmp_path, capsys
):
    await closed_shop_sign(broker, nats_client)
    drawn = await asyncio.to_thread(
        on_a_terminal,
        [sys.executable, "-m", "unstuck.cli", "replay", "--nats", nats_server.url],
        {**os.environ, "COLUMNS": "120"},
        tmp_path,
        "stderr",
    )
    assert "replay" in drawn and "4/4" in drawn and "messages" in drawn  # 8 events in 4 decisions
    code, out, err = await run(capsys, "replay", "--nats", nats_server.url)
    assert code == 0 and err == "" and "\x1b" not in out

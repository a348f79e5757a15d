"""The configuration file as documented (README "Configuration", docs/lifecycle.md "Configuration keys",
docs/operations.md, docs/security.md, examples/unstuck.toml): every key is accepted and lands where the
code reads it, an unknown key or a bad value is an error naming it, and the example files load.

Expected values are written out from the documentation, never produced by the code under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest

from conftest import running_broker, sample
from unstuck.config import Config, ConfigError, load_config
from unstuck.plugins.manager import make_plugin_manager
from unstuck.schemas import Category
from unstuck.testing import ApiError, api_call, wait_for
from unstuck.workcalendar import WorkingCalendar

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "unstuck.toml"
EXAMPLE_OVERRIDE = ROOT / "examples" / "calendar-override.toml"

# The documented defaults, section by section (README, docs/lifecycle.md, docs/security.md, docs/operations.md).
DOCUMENTED_BROKER = {
    "case_prefix": "DD",
    "metrics_address": "127.0.0.1:9464",
    "max_payload_bytes": 65536,
    "api_concurrency": 256,
    "tick_seconds": 60.0,
    "require_identity": False,
    "discovery_seconds": 10.0,
    "stream": "UNSTUCK_CASES",
    "replicas": 1,
    "snapshot_seconds": 300.0,
    "online_owner": None,
}
DOCUMENTED_WINDOW = {
    "duty_leader": "duty-leader",
    "chain": {
        "clerk": "窗口經辦人",
        "section_head": "窗口負責人",
        "leader_in_charge": "值班領導",
        "director": "政務服務中心主任",
    },
}
DOCUMENTED_DEADLINES = {  # working_days is checked by its effect: the 1-3-5 rule
    "warn_at": [1, 0],
    "intake_working_days": 0,
    "escalation_working_hours": 8.0,
    "office_hours": "09:00-17:00",
    "review_working_days": 5,
    "max_extension_days": 10,
    "max_bounces": 2,
    "review_notify_days": 3,
    "follow_up_working_days": 15,
    "invite_rating_days": 3,
    "calendar_override": None,
}
DOCUMENTED_LIMITS = {"api_requests_per_second": 100.0, "api_burst": 200, "cases_per_applicant_per_day": 20}
DOCUMENTED_RETRY = {
    "timeout_seconds": 2.0,
    "attempts": 3,
    "backoff_initial_seconds": 0.5,
    "backoff_max_seconds": 5.0,
    "jitter_seconds": 0.25,
    "stalled_retry_seconds": 60.0,
    "concurrency": 64,
}
ONE_THREE_FIVE = {"guided": 1, "refused": 1, "cannot": 3, "hard": 5}


def write(tmp_path: Path, text: str, name: str = "unstuck.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def deadline_days(config: Config) -> dict[str, int]:
    """Working days per category as the broker's plugins answer them for this configuration."""
    pm = make_plugin_manager(config.deadlines.working_days, config.escalation_chains())
    return {c.value: pm.hook.unstuck_deadline_working_days(category=c) for c in Category}


def sections(config: Config) -> dict[str, Any]:
    dumped = config.model_dump()
    dumped["deadlines"].pop("working_days")
    return {k: dumped[k] for k in ("broker", "window", "deadlines", "limits", "retry")}


DOCUMENTED_SECTIONS = {
    "broker": DOCUMENTED_BROKER,
    "window": DOCUMENTED_WINDOW,
    "deadlines": DOCUMENTED_DEADLINES,
    "limits": DOCUMENTED_LIMITS,
    "retry": DOCUMENTED_RETRY,
}


# --- defaults and the example files -----------------------------------------------------------------


def test_the_defaults_are_the_documented_ones():
    config = Config()
    assert sections(config) == DOCUMENTED_SECTIONS
    assert deadline_days(config) == ONE_THREE_FIVE
    assert config.departments == {} and config.staff == {}
    assert config.department_codes() == ["chengguan", "renshe", "scjg"]
    assert config.department("renshe").name == "人力資源和社會保障局"
    assert config.department("scjg").name == "市場監督管理局"
    assert config.department("chengguan").name == "城市管理局"


def test_no_file_and_no_unstuck_config_gives_the_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("UNSTUCK_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.source is None
    assert sections(config) == DOCUMENTED_SECTIONS


def test_example_unstuck_toml_shows_every_default_except_the_keys_marked_example():
    config = load_config(EXAMPLE)
    assert config.source == EXAMPLE
    assert sections(config) == DOCUMENTED_SECTIONS
    assert deadline_days(config) == ONE_THREE_FIVE
    # the sections marked "example"
    assert config.staff == {"w-zhang": "clerk", "leader-gao": "leader_in_charge"}
    assert set(config.departments) == {"renshe"}
    renshe = config.department("renshe")
    assert renshe.name == "人力資源和社會保障局"
    assert renshe.higher == "省人力資源和社會保障廳"
    assert renshe.chain == {
        "clerk": "養老保險科經辦人",
        "section_head": "養老保險科科長",
        "leader_in_charge": "分管副局長",
        "director": "局長",
    }
    assert config.retry_policy("renshe").model_dump() == {**DOCUMENTED_RETRY, "timeout_seconds": 3.0}
    assert config.retry_policy("scjg").model_dump() == DOCUMENTED_RETRY


def test_example_calendar_override_is_found_next_to_the_config_that_names_it(tmp_path):
    # the example's commented line, switched on, in a copy of the two example files
    text = EXAMPLE.read_text(encoding="utf-8")
    line = '# calendar_override = "calendar-override.toml"'
    assert line in text
    write(tmp_path, text.replace(line, line[2:]))
    write(tmp_path, EXAMPLE_OVERRIDE.read_text(encoding="utf-8"), "calendar-override.toml")
    config = load_config(tmp_path / "unstuck.toml")
    assert config.deadlines.calendar_override == tmp_path / "calendar-override.toml"
    # the example override only shows the shape (all comments): it loads and knows no extra year
    calendar = WorkingCalendar(config.deadlines.calendar_override)
    assert calendar.knows(2031) is False


def test_unstuck_config_names_the_file_and_unstuck_toml_here_is_read_without_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UNSTUCK_CONFIG", raising=False)
    write(tmp_path, '[broker]\ncase_prefix = "HERE"\n')
    assert load_config().broker.case_prefix == "HERE"
    other = write(tmp_path, '[broker]\ncase_prefix = "ENV"\n', "city.toml")
    monkeypatch.setenv("UNSTUCK_CONFIG", str(other))
    assert load_config().broker.case_prefix == "ENV"
    assert load_config(tmp_path / "unstuck.toml").broker.case_prefix == "HERE"  # an explicit path wins


def test_a_missing_file_named_by_unstuck_config_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSTUCK_CONFIG", str(tmp_path / "nowhere.toml"))
    with pytest.raises(ConfigError) as exc:
        load_config()
    assert "nowhere.toml" in str(exc.value) and "UNSTUCK_CONFIG" in str(exc.value)


def test_a_file_that_is_not_toml_is_an_error_naming_the_file(tmp_path):
    path = write(tmp_path, "[broker\ncase_prefix = 1\n", "broken.toml")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_config(path)


# --- every documented key is accepted and lands ----------------------------------------------------

EVERY_KEY = """
[broker]
case_prefix = "SY"
metrics_address = "127.0.0.1:9555"
max_payload_bytes = 131072
api_concurrency = 32
tick_seconds = 15
require_identity = true
discovery_seconds = 2
snapshot_seconds = 30
online_owner = "w-zhang"
stream = "SY_CASES"
replicas = 3

[window]
duty_leader = "leader-zhou"
chain = { clerk = "甲窗口", section_head = "乙負責人", leader_in_charge = "丙領導", director = "丁主任" }

[deadlines]
working_days = { guided = 2, refused = 2, cannot = 4, hard = 7 }
warn_at = [2, 1, 0]
escalation_working_hours = 4
office_hours = "08:30-17:30"
intake_working_days = 1
review_working_days = 7
max_extension_days = 6
max_bounces = 3
review_notify_days = 5
follow_up_working_days = 10
invite_rating_days = 5
calendar_override = "holidays.toml"

[limits]
api_requests_per_second = 5.5
api_burst = 11
cases_per_applicant_per_day = 0

[retry]
timeout_seconds = 1.5
attempts = 5
backoff_initial_seconds = 0.1
backoff_max_seconds = 2.0
jitter_seconds = 0.05
stalled_retry_seconds = 120.0
concurrency = 16

[departments.zhujian]
name = "住房和城鄉建設局"
higher = "省住房和城鄉建設廳"
chain = { clerk = "住建經辦人", section_head = "住建科長", leader_in_charge = "住建分管", director = "住建局長" }
retry = { timeout_seconds = 5.0, attempts = 2 }

[staff]
"w-zhang" = "clerk"
"head-sun" = "section_head"
"leader-gao" = "leader_in_charge"
"director-ma" = "director"
"""


def test_every_documented_key_is_accepted_and_lands_in_the_config(tmp_path):
    write(tmp_path, '[2031]\nholidays = ["2031-10-01"]\nworkdays = []\n', "holidays.toml")
    config = load_config(write(tmp_path, EVERY_KEY))
    assert config.model_dump(include={"broker"})["broker"] == {
        "case_prefix": "SY",
        "metrics_address": "127.0.0.1:9555",
        "max_payload_bytes": 131072,
        "api_concurrency": 32,
        "tick_seconds": 15.0,
        "require_identity": True,
        "discovery_seconds": 2.0,
        "stream": "SY_CASES",
        "replicas": 3,
        "snapshot_seconds": 30.0,
        "online_owner": "w-zhang",
    }
    assert config.window.duty_leader == "leader-zhou"
    assert config.window.chain == {
        "clerk": "甲窗口",
        "section_head": "乙負責人",
        "leader_in_charge": "丙領導",
        "director": "丁主任",
    }
    d = config.deadlines
    assert dict(d.working_days) == {"guided": 2, "refused": 2, "cannot": 4, "hard": 7}
    assert deadline_days(config) == {"guided": 2, "refused": 2, "cannot": 4, "hard": 7}
    assert d.warn_at == [2, 1, 0]
    assert d.escalation_working_hours == 4.0
    assert d.office_hours == "08:30-17:30"
    assert d.office() == (time(8, 30), time(17, 30))
    assert d.intake_working_days == 1
    assert d.review_working_days == 7
    assert d.max_extension_days == 6
    assert d.max_bounces == 3
    assert d.review_notify_days == 5
    assert d.follow_up_working_days == 10 and d.invite_rating_days == 5
    assert d.calendar_override == tmp_path / "holidays.toml"  # relative to the configuration file
    assert config.limits.model_dump() == {
        "api_requests_per_second": 5.5,
        "api_burst": 11,
        "cases_per_applicant_per_day": 0,
    }
    retry = {
        "timeout_seconds": 1.5,
        "attempts": 5,
        "backoff_initial_seconds": 0.1,
        "backoff_max_seconds": 2.0,
        "jitter_seconds": 0.05,
        "stalled_retry_seconds": 120.0,
        "concurrency": 16,
    }
    assert config.retry.model_dump() == retry
    assert config.department_codes() == ["chengguan", "renshe", "scjg", "zhujian"]
    zhujian = config.department("zhujian")
    assert (zhujian.name, zhujian.higher) == ("住房和城鄉建設局", "省住房和城鄉建設廳")
    assert zhujian.chain["section_head"] == "住建科長" and zhujian.chain["director"] == "住建局長"
    # a department's retry overrides only the keys it names; the rest come from [retry]
    assert config.retry_policy("zhujian").model_dump() == {**retry, "timeout_seconds": 5.0, "attempts": 2}
    assert config.retry_policy("renshe").model_dump() == retry
    # [staff] roles and the duty leader decide who counts as what (0 clerk ... 3 director)
    assert [config.rank(s) for s in ("w-zhang", "head-sun", "leader-gao", "director-ma")] == [0, 1, 2, 3]
    assert config.rank("leader-zhou") == 2  # the window's duty leader counts as a leader
    assert config.rank("somebody-else") == 0  # unknown staff are clerks


def test_a_config_with_only_some_keys_keeps_the_documented_defaults_for_the_rest(tmp_path):
    config = load_config(write(tmp_path, "[deadlines]\nworking_days = { hard = 7 }\nmax_bounces = 4\n"))
    assert deadline_days(config) == {"guided": 1, "refused": 1, "cannot": 3, "hard": 7}
    assert config.deadlines.max_bounces == 4
    assert config.deadlines.warn_at == [1, 0] and config.deadlines.max_extension_days == 10
    assert config.broker.tick_seconds == 60.0 and config.retry.attempts == 3


# --- unknown keys and bad values ---------------------------------------------------------------------

UNKNOWN_KEYS = [
    ("[broker]\ntick_secs = 5\n", ["broker.tick_secs"]),
    ("[window]\nduty = 'leader-gao'\n", ["window.duty"]),
    ("[deadlines]\nwarn_days = [1]\n", ["deadlines.warn_days"]),
    ("[deadlines]\nworking_days = { hard = 5, hrad = 7 }\n", ["deadlines.working_days", "hrad"]),
    ("[limits]\nburst = 5\n", ["limits.burst"]),
    ("[retry]\ntimeout = 1.0\n", ["retry.timeout"]),
    ("[departments.renshe]\nhigher_department = '省廳'\n", ["departments.renshe.higher_department"]),
    ("[departments.renshe]\nretry = { timeout = 3.0 }\n", ["[departments.renshe.retry]", "timeout"]),
    ("[departments.renshe]\nchain = { boss = '局長' }\n", ["[departments.renshe.chain]", "boss"]),
    ("[window]\nchain = { boss = '主任' }\n", ["[window.chain]", "boss"]),
    ("[brokers]\ncase_prefix = 'DD'\n", ["brokers"]),
]


@pytest.mark.parametrize(("text", "named"), UNKNOWN_KEYS, ids=[n[0] for _, n in UNKNOWN_KEYS])
def test_an_unknown_key_is_an_error_naming_the_key_and_its_section(tmp_path, text, named):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    for part in named:
        assert part in message, message


BAD_VALUES = [
    ('[broker]\ncase_prefix = "dd"\n', ["broker.case_prefix"]),
    ("[broker]\ntick_seconds = 0\n", ["broker.tick_seconds", "greater than 0"]),
    ("[broker]\nmax_payload_bytes = 100\n", ["broker.max_payload_bytes"]),
    ("[broker]\nreplicas = 7\n", ["broker.replicas"]),
    ("[window]\nduty_leader = 5\n", ["window.duty_leader"]),
    ("[deadlines]\nworking_days = { hard = 0 }\n", ["deadlines.working_days.hard"]),
    ('[deadlines]\nwarn_at = "1"\n', ["deadlines.warn_at"]),
    ("[deadlines]\nescalation_working_hours = 0\n", ["deadlines.escalation_working_hours"]),
    ('[deadlines]\noffice_hours = "17:00-09:00"\n', ["deadlines.office_hours", "open before it closes"]),
    ('[deadlines]\noffice_hours = "9-5"\n', ["deadlines.office_hours"]),
    ("[deadlines]\nintake_working_days = -1\n", ["deadlines.intake_working_days"]),
    (
        "[deadlines]\nescalation_period_hours = 24\n",
        ["escalation_period_hours was replaced by escalation_working_hours"],
    ),
    ("[deadlines]\nmax_extension_days = 11\n", ["deadlines.max_extension_days", "10"]),
    ("[deadlines]\nmax_bounces = 0\n", ["deadlines.max_bounces"]),
    ("[deadlines]\nreview_notify_days = 0\n", ["deadlines.review_notify_days"]),
    ("[limits]\napi_burst = 0\n", ["limits.api_burst"]),
    ("[limits]\ncases_per_applicant_per_day = -1\n", ["limits.cases_per_applicant_per_day"]),
    ('[retry]\nattempts = "three"\n', ["retry.attempts"]),
    ("[retry]\ntimeout_seconds = 0\n", ["retry.timeout_seconds"]),
    ("[departments.scjg]\nretry = { attempts = 0 }\n", ["[departments.scjg.retry]", "attempts"]),
    ('[staff]\n"leader-gao" = "leader-in-charge"\n', ["[staff]", "leader-gao", "leader-in-charge"]),
]


@pytest.mark.parametrize(("text", "named"), BAD_VALUES, ids=[n[0] for _, n in BAD_VALUES])
def test_a_bad_value_is_an_error_naming_the_field(tmp_path, text, named):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    for part in named:
        assert part in message, message


def test_a_staff_role_typo_is_refused_rather_than_making_a_leader_a_clerk(tmp_path):
    path = write(tmp_path, '[staff]\n"leader-gao" = "leader-in-charge"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "clerk, section_head, leader_in_charge, director" in str(exc.value)


def test_serve_with_a_bad_config_exits_2_naming_the_key_without_a_traceback(tmp_path):
    path = write(tmp_path, "[broker]\ntick_secs = 5\n", "bad.toml")
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "UNSTUCK_CONFIG")}
    for args, extra_env in (
        (["serve", "--config", str(path)], {}),
        (["serve"], {"UNSTUCK_CONFIG": str(path)}),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "unstuck", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**env, **extra_env},
            timeout=60,
        )
        assert out.returncode == 2, out.stderr
        assert "broker.tick_secs" in out.stderr and "bad.toml" in out.stderr
        assert "Traceback" not in out.stderr
        assert not (tmp_path / ".unstuck" / "nats.url").exists()  # nothing was started


@pytest.mark.parametrize(
    ("override", "named"),
    [
        (None, "No such file"),
        ("[2031\n", "holidays.toml"),
        ('[2031]\nholidays = ["2031-13-01"]\n', "2031-13-01"),
        ('[2031]\nholiday = ["2031-10-01"]\n', "holiday"),
    ],
    ids=["missing", "not toml", "bad date", "unknown key"],
)
def test_a_bad_calendar_override_file_is_an_error_naming_the_setting(tmp_path, override, named):
    if override is not None:
        write(tmp_path, override, "holidays.toml")
    path = write(tmp_path, '[deadlines]\ncalendar_override = "holidays.toml"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert "[deadlines] calendar_override" in message and named in message, message


def test_serve_with_a_bad_calendar_override_exits_2_before_starting_anything(tmp_path):
    write(tmp_path, '[deadlines]\ncalendar_override = "holidays.toml"\n')  # holidays.toml does not exist
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "UNSTUCK_CONFIG")}
    out = subprocess.run(
        [sys.executable, "-m", "unstuck", "serve", "--metrics-address", "127.0.0.1:0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "calendar_override" in out.stderr and "holidays.toml" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / ".unstuck" / "nats.url").exists()  # no embedded server was left running


# --- the settings change what the broker does -------------------------------------------------------


CITY = """
[broker]
case_prefix = "BJ"
stream = "CITY_CASES"

[window]
duty_leader = "duty-chen"
chain = { clerk = "窗口甲", section_head = "窗口乙", leader_in_charge = "窗口丙", director = "中心主任丁" }

[staff]
"head-sun" = "section_head"

[departments.renshe]
chain = { clerk = "社保經辦", section_head = "社保科長", leader_in_charge = "社保分管", director = "社保局長" }
"""


async def test_broker_window_staff_and_chain_settings_from_a_file_change_what_the_broker_does(
    tmp_path, nats_server, nats_client, sim_clock, builtin_adapters
):
    config = load_config(write(tmp_path, CITY))
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        opened = await api_call(nats_client, "case.open", sample("08"))  # renshe accepts: case stays open
        case_id = opened["case_id"]
        assert case_id == "BJ-20260928-0001"
        js = nats_client.jetstream()
        assert (await js.stream_info("CITY_CASES")).state.messages >= 1  # the opening, in the city stream
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info("UNSTUCK_CASES")
        await wait_for(lambda: broker.state_of(case_id).coordinations[f"{case_id}-c1"].status == "answered")
        classified = [e for e in await broker.store.read_case(case_id) if e.type == "case.classified"]
        assert classified[0].fields["data"]["duty_leader"] == "duty-chen"

        direct = {"case_id": case_id, "actor": "w-zhang", "note": "請即處理"}
        await api_call(
            nats_client, "case.escalate", {**direct, "department": "renshe", "level": "section_head"}
        )
        await api_call(nats_client, "case.escalate", {**direct, "department": "window", "level": "director"})
        escalated = [
            e.fields["data"] for e in await broker.store.read_case(case_id) if e.type == "case.escalated"
        ]
        assert [(e["department"], e["role"], e["target"]) for e in escalated] == [
            ("renshe", "section_head", "社保科長"),
            ("window", "director", "中心主任丁"),
        ]

        # a section head from [staff] is not a leader; the configured duty leader is
        await api_call(
            nats_client,
            "case.extend",
            {"case_id": case_id, "actor": "w-zhang", "working_days": 1, "reason": "等待回函"},
        )
        with pytest.raises(ApiError) as exc:
            await api_call(nats_client, "case.approve_extension", {"case_id": case_id, "actor": "head-sun"})
        assert exc.value.error["field"] == "actor"
        await api_call(nats_client, "case.approve_extension", {"case_id": case_id, "actor": "duty-chen"})
        extended = [e for e in await broker.store.read_case(case_id) if e.type == "case.extended"]
        assert extended[0].fields["actor"] == "duty-chen"


OPERATIONS_AND_NODE_EXAMPLES = """
[retry]
timeout_seconds = 1.0

[departments.zhujian]
name = "住房和城鄉建設局"
retry = { timeout_seconds = 5.0, attempts = 2, concurrency = 8, stalled_retry_seconds = 300 }

[departments.nodedemo]
name = "示例部門（Node.js）"
higher = "示例上級主管部門"
chain = { clerk = "戶政科民警", section_head = "戶政科科長", leader_in_charge = "分管副局長", director = "局長" }
"""


async def test_configured_departments_are_known_with_their_own_retry_policy(
    tmp_path, nats_server, nats_client, sim_clock
):
    # the snippets of docs/operations.md (zhujian's bulkhead) and examples/adapter-node/README.md (nodedemo)
    config = load_config(write(tmp_path, OPERATIONS_AND_NODE_EXAMPLES))
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        assert broker.departments["nodedemo"] == "示例部門（Node.js）"
        assert broker.departments["zhujian"] == "住房和城鄉建設局"
        status = await api_call(nats_client, "status", {})
        rows = {r["department"]: r for r in status["departments"]}
        assert (rows["zhujian"]["reply_timeout_seconds"], rows["zhujian"]["concurrency"]) == (5.0, 8)
        assert (rows["nodedemo"]["reply_timeout_seconds"], rows["nodedemo"]["concurrency"]) == (1.0, 64)
        assert rows["nodedemo"]["name"] == "示例部門（Node.js）"
        gauge = broker.metrics.registry.get_sample_value
        assert gauge("unstuck_department_reply_timeout_seconds", {"department": "zhujian"}) == 5.0
        assert gauge("unstuck_department_concurrency_limit", {"department": "zhujian"}) == 8
        policy = config.retry_policy("zhujian")
        assert (policy.attempts, policy.stalled_retry_seconds) == (2, 300.0)
        # a department only configured (served from another language) is accepted at intake
        opened = await api_call(nats_client, "case.open", sample("01", department="nodedemo"))
        assert broker.state_of(opened["case_id"]).departments == ["nodedemo"]

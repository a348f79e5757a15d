"""Loading adapters and broker plugins from real entry points: each on its own, checked, allow-listed."""

from __future__ import annotations

import json

from unstuck.adapters.registry import discover
from unstuck.cli import main
from unstuck.plugins.loading import LoadReport
from unstuck.plugins.manager import make_plugin_manager
from unstuck.schemas import Category
from unstuck.testing import fast_config

GONGAN = """
from unstuck.adapters import hookimpl
from unstuck.schemas import CoordinationReply, Department, Outcome


class GonganAdapter:
    @hookimpl
    def unstuck_department(self):
        return Department(code="gongan", name="公安局", matters=["residence_permit"])

    @hookimpl
    def unstuck_coordinate(self, request):
        return CoordinationReply(
            request_id=request.request_id, department="gongan", outcome=Outcome.RESOLVED,
            message="居住證已簽注", handler="戶政科",
        )
"""

BROKEN_IMPORT = """
import a_module_the_department_forgot_to_declare  # noqa: F401
"""

MISSPELLED_ADAPTER = """
from unstuck.adapters import hookimpl
from unstuck.schemas import Department


class ZhujianTypo:
    @hookimpl
    def unstuck_department(self):
        return Department(code="zhujiantypo", name="住建局")

    @hookimpl
    def unstuck_coordinat(self, request):
        raise AssertionError("never called: the hook name is misspelled")
"""

HALF_ADAPTER = """
from unstuck.adapters import hookimpl
from unstuck.schemas import Department


class OnlyDescribes:
    @hookimpl
    def unstuck_department(self):
        return Department(code="wenlv", name="文化和旅遊局")
"""

SECOND_RENSHE = """
from unstuck.adapters import hookimpl
from unstuck.schemas import Department


class AnotherRenshe:
    @hookimpl
    def unstuck_department(self):
        return Department(code="renshe", name="人社局（測試副本）")

    @hookimpl
    def unstuck_coordinate(self, request):
        raise AssertionError("never served: renshe is answered by the built-in adapter")
"""


def install_department_packages(plugin_distribution) -> None:
    plugin_distribution(
        "department-packages",
        {
            "unstuck.adapters": {
                "gongan": "dept_gongan:GonganAdapter",
                "jiaotong": "dept_jiaotong:JiaotongAdapter",
                "zhujiantypo": "dept_typo:ZhujianTypo",
                "wenlv": "dept_half:OnlyDescribes",
                "renshe-copy": "dept_renshe_copy:AnotherRenshe",
            }
        },
        {
            "dept_gongan": GONGAN,
            "dept_jiaotong": BROKEN_IMPORT,
            "dept_typo": MISSPELLED_ADAPTER,
            "dept_half": HALF_ADAPTER,
            "dept_renshe_copy": SECOND_RENSHE,
        },
    )


def test_broken_adapter_is_reported_by_name_and_the_others_still_load(plugin_distribution):
    install_department_packages(plugin_distribution)
    report = LoadReport()
    found = discover(report)
    assert {"renshe", "scjg", "chengguan", "gongan"} <= set(found)
    assert found["gongan"].department.name == "公安局"
    assert "ModuleNotFoundError" in report.broken["jiaotong"]
    assert "a_module_the_department_forgot_to_declare" in report.broken["jiaotong"]
    assert "jiaotong" not in report.loaded


def test_misspelled_adapter_hook_is_caught_by_check_pending(plugin_distribution):
    install_department_packages(plugin_distribution)
    report = LoadReport()
    found = discover(report)
    assert "zhujiantypo" not in found
    assert "unstuck_coordinat" in report.broken["zhujiantypo"]
    assert "unknown hook" in report.broken["zhujiantypo"]


def test_adapter_missing_a_required_hook_is_reported(plugin_distribution):
    install_department_packages(plugin_distribution)
    report = LoadReport()
    assert "wenlv" not in discover(report)
    assert report.broken["wenlv"] == "adapter wenlv does not implement unstuck_coordinate"


def test_second_adapter_for_one_department_is_reported_and_the_first_kept(plugin_distribution):
    install_department_packages(plugin_distribution)
    report = LoadReport()
    found = discover(report)
    assert found["renshe"].name == "renshe"
    assert "already answered by adapter renshe" in report.broken["renshe-copy"]


def test_allow_list_variable_loads_only_the_named_entry_points(plugin_distribution, monkeypatch):
    install_department_packages(plugin_distribution)
    monkeypatch.setenv("UNSTUCK_LOAD_PLUGINS", "renshe, gongan")
    report = LoadReport()
    found = discover(report)
    assert set(found) == {"renshe", "gongan"}
    assert {"scjg", "chengguan", "jiaotong", "zhujiantypo"} <= set(report.skipped)
    assert report.broken == {}


def test_empty_allow_list_loads_no_plugin(plugin_distribution, monkeypatch):
    install_department_packages(plugin_distribution)
    monkeypatch.setenv("UNSTUCK_LOAD_PLUGINS", "")
    report = LoadReport()
    assert discover(report) == {}
    assert report.loaded == []


def test_adapters_list_shows_installed_adapters_and_names_the_broken_ones(plugin_distribution, capsys):
    install_department_packages(plugin_distribution)
    assert main(["adapters", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"chengguan", "gongan", "renshe", "scjg"} <= {r["department"] for r in listed["installed"]}
    assert set(listed["broken"]) == {"jiaotong", "zhujiantypo", "wenlv", "renshe-copy"}
    assert main(["adapters", "list"]) == 0
    table = capsys.readouterr().out
    assert "公安局" in table
    assert "broken: jiaotong: ModuleNotFoundError" in table


CITY_RULES_WITH_A_TYPO = '''
from unstuck.plugins import hookimpl


class StricterDeadlines:
    """A city that gives 很難辦 cases 4 working days instead of 5."""

    @hookimpl
    def unstuck_deadline_working_days(self, category):
        return 4 if category == "hard" else None


class TypoRules:
    @hookimpl
    def unstuck_deadline_workingdays(self, category):
        return 1


class WrongArguments:
    @hookimpl
    def unstuck_route(self, case, category):
        return ["renshe"]


class ExplodesOnInit:
    def __init__(self):
        raise RuntimeError("missing CITY_RULES_URL")
'''


def test_broker_plugins_load_each_on_their_own_and_misspelled_hooks_are_rejected(plugin_distribution):
    plugin_distribution(
        "city-rules",
        {
            "unstuck.plugins": {
                "stricter": "city_rules:StricterDeadlines",
                "typo": "city_rules:TypoRules",
                "wrong-args": "city_rules:WrongArguments",
                "explodes": "city_rules:ExplodesOnInit",
                "missing": "city_rules:NoSuchClass",
            }
        },
        {"city_rules": CITY_RULES_WITH_A_TYPO},
    )
    report = LoadReport()
    config = fast_config()
    pm = make_plugin_manager(config.deadlines.working_days, config.escalation_chains(), report)
    assert "stricter" in report.loaded
    assert "unstuck_deadline_workingdays" in report.broken["typo"]
    assert "case" in report.broken["wrong-args"]
    assert report.broken["explodes"] == "RuntimeError: missing CITY_RULES_URL"
    assert "NoSuchClass" in report.broken["missing"]
    # the outside plugin is called before the built-in 1-3-5 rule; the built-in still answers the rest
    assert pm.hook.unstuck_deadline_working_days(category=Category.HARD) == 4
    assert pm.hook.unstuck_deadline_working_days(category=Category.CANNOT) == 3
    assert pm.get_plugin("typo") is None

"""The documentation keeps up with the code (datasette's test_docs pattern): every adapter hook has a
heading in docs/adapters.md, every broker hook in docs/plugins.md, each hook has a test of its own
that fails when the hook's implementation in that test is not called, the kit's fixtures and helpers
are documented, and the complete example in docs/adapters.md works."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from xml.etree import ElementTree

import pytest

import unstuck.testing
from conftest import running_broker, sample
from unstuck.adapters.hookspecs import AdapterSpec
from unstuck.config import load_config
from unstuck.plugins.hookspecs import BrokerSpec
from unstuck.testing import api_call, assert_conformant, assert_reply, call_adapter, wait_for

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS_DOC = ROOT / "docs" / "adapters.md"
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
ADAPTER_HOOKS = sorted(n for n in vars(AdapterSpec) if n.startswith("unstuck_"))
BROKER_HOOKS = sorted(n for n in vars(BrokerSpec) if n.startswith("unstuck_"))


def hook_headings(doc: Path) -> list[str]:
    return re.findall(r"^#{2,4} (unstuck_\w+)\s*$", doc.read_text(encoding="utf-8"), flags=re.M)


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)


def named_after(hook: str) -> list[str]:
    """Node ids of the suite's test functions whose name contains ``hook``."""
    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                if hook in node.name:
                    found.append(f"tests/{path.name}::{node.name}")
    return found


def kit_fixtures() -> list[str]:
    tree = ast.parse(Path(unstuck.testing.__file__).read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(target, ast.Attribute) and target.attr == "fixture":
                    found.append(node.name)
    return found


def test_there_are_hooks_to_check():
    assert ADAPTER_HOOKS == ["unstuck_coordinate", "unstuck_department"]
    assert len(BROKER_HOOKS) == 7


@pytest.mark.parametrize("hook", ADAPTER_HOOKS)
def test_adapter_hook_is_documented(hook):
    assert hook in hook_headings(ADAPTERS_DOC), f"add a heading `### {hook}` to docs/adapters.md"


@pytest.mark.parametrize("hook", BROKER_HOOKS)
def test_broker_hook_is_documented_with_an_example(hook):
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    assert hook in hook_headings(PLUGINS_DOC), f"add a heading `## {hook}` to docs/plugins.md"
    section = text.split(f"## {hook}\n", 1)[1].split("\n## ", 1)[0]
    assert section.count("```python") >= 2, f"docs/plugins.md: give {hook} its signature and an example"


CUT_PLUGIN = '''
"""Loaded into a pytest run by tests/test_docs.py. With UNSTUCK_CUT_HOOKS=1, each test named after a
hook runs with every implementation of that hook defined outside the unstuck package (the test's
own plugin or adapter) left unregistered, so the hook never calls it; built-in ones stay."""
import os

import pluggy
import pytest

import unstuck.testing

HOOKS = os.environ["UNSTUCK_HOOKS"].split(",")
CUTTING = os.environ.get("UNSTUCK_CUT_HOOKS") == "1"
cut = None
parse = pluggy.PluginManager.parse_hookimpl_opts


def parse_hookimpl_opts(self, plugin, name):
    opts = parse(self, plugin, name)
    if opts is not None and name == cut and self.project_name.startswith("unstuck"):
        if not (getattr(getattr(plugin, name), "__module__", None) or "").startswith("unstuck"):
            return None
    return opts


pluggy.PluginManager.parse_hookimpl_opts = parse_hookimpl_opts
# a test waiting for a hook's effect that never comes fails in 5 s instead of 20 (both runs)
unstuck.testing.wait_for.__defaults__ = (5.0, "condition")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global cut
    cut = next((hook for hook in HOOKS if hook in item.name), None) if CUTTING else None
'''


def junit_outcomes(xml: Path) -> dict[str, str]:
    """Node id -> passed / failed / error / skipped, from a junit XML report."""
    outcomes = {}
    for case in ElementTree.parse(xml).iter("testcase"):
        node = f"tests/{case.get('classname', '').rsplit('.', 1)[-1]}.py::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcomes[node] = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
    return {k: v.replace("failure", "failed") for k, v in outcomes.items()}


@pytest.fixture(scope="module")
def hook_test_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """The tests named after a hook, run twice in pytest processes of their own: as they are
    ("whole") and with each test's hook implementation cut off ("cut")."""
    hooks = ADAPTER_HOOKS + BROKER_HOOKS
    nodes = sorted({node for hook in hooks for node in named_after(hook)})
    work = tmp_path_factory.mktemp("hook-cut")
    (work / "unstuck_cut_hooks.py").write_text(CUT_PLUGIN, encoding="utf-8")
    runs = {}
    for run in ("whole", "cut"):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(work), os.environ.get("PYTHONPATH")])),
            "UNSTUCK_HOOKS": ",".join(hooks),
            "UNSTUCK_CUT_HOOKS": "1" if run == "cut" else "0",
        }
        command = [sys.executable, "-m", "pytest", "-q", "-p", "unstuck_cut_hooks", "-p", "no:cacheprovider"]
        command += [f"--junitxml={work / run}.xml", *nodes]
        runs[run] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    outcomes = {}
    for run, process in runs.items():
        out, _ = process.communicate(timeout=300)
        assert (work / f"{run}.xml").exists(), out.decode(errors="replace")[-3000:]
        outcomes[run] = junit_outcomes(work / f"{run}.xml")
        assert set(outcomes[run]) == set(nodes), out.decode(errors="replace")[-3000:]
    return outcomes


@pytest.mark.parametrize("hook", ADAPTER_HOOKS + BROKER_HOOKS)
def test_hook_has_a_test_that_fails_when_the_hook_is_not_called(hook, hook_test_runs):
    named = named_after(hook)
    assert named, f"no test function is named after {hook}: add test_{hook}_... that asserts its effect"
    for node in named:
        assert hook_test_runs["whole"][node] == "passed", f"{node} does not pass as it is"
        assert hook_test_runs["cut"][node] == "failed", (
            f"{node} still {hook_test_runs['cut'][node]} when its own {hook} implementation is never "
            "called: it does not assert the hook's effect"
        )


@pytest.mark.parametrize("doc", [ADAPTERS_DOC, PLUGINS_DOC], ids=["adapters", "plugins"])
def test_docs_name_only_hooks_that_exist(doc):
    assert set(hook_headings(doc)) <= set(ADAPTER_HOOKS + BROKER_HOOKS)


@pytest.mark.parametrize("doc", [ADAPTERS_DOC, PLUGINS_DOC], ids=["adapters", "plugins"])
def test_python_examples_in_the_docs_are_valid_python(doc):
    blocks = python_blocks(doc)
    assert blocks
    for block in blocks:
        compile(block, str(doc), "exec")


@pytest.mark.parametrize("name", kit_fixtures())
def test_kit_fixture_is_documented(name):
    assert f"`{name}`" in ADAPTERS_DOC.read_text(encoding="utf-8"), (
        f"document fixture {name} in docs/adapters.md"
    )


@pytest.mark.parametrize("name", sorted(unstuck.testing.__all__))
def test_kit_helper_is_documented(name):
    text = ADAPTERS_DOC.read_text(encoding="utf-8")
    assert re.search(rf"`(await )?{name}\b", text), f"document helper {name} in docs/adapters.md"


@pytest.fixture
def doc_example(monkeypatch) -> types.ModuleType:
    """The complete example of docs/adapters.md, as the module a department would ship."""
    [source] = [b for b in python_blocks(ADAPTERS_DOC) if "class WenlvAdapter" in b]
    module = types.ModuleType("unstuck_adapter_wenlv_doc")
    exec(compile(source, "docs/adapters.md", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


async def test_complete_example_in_adapters_doc_answers_as_documented(doc_example):
    adapter = doc_example.WenlvAdapter()
    near_school = await call_adapter(
        adapter, matter="internet_cafe_licence", facts={"distance_to_school_m": 120}
    )
    assert_reply(near_school, outcome="cannot", legal_basis="《互聯網上網服務營業場所管理條例》第九條")
    no_certificate = await call_adapter(adapter, matter="performance_licence")
    assert_reply(no_certificate, outcome="need_materials")
    bounced = await call_adapter(adapter, matter="shop_sign", matter_title="門頭招牌設置")
    assert_reply(bounced, outcome="not_ours", belongs_to="chengguan")


async def test_complete_example_in_adapters_doc_passes_the_conformance_check(
    doc_example, nats_client, serve_adapter
):
    await serve_adapter(doc_example.WenlvAdapter())
    await assert_conformant(nats_client, "wenlv")


# --- docs/adapters.md "Configuring a department" and "How a case finds its departments" -------------

WENLV_WITHOUT_HIGHER = """
[retry]
timeout_seconds = 0.5
backoff_initial_seconds = 0.05
backoff_max_seconds = 0.2
jitter_seconds = 0.01

[departments.wenlv]
name = "文化和旅遊局"
"""


async def test_a_department_without_higher_has_its_cannot_reviewed_by_a_placeholder_the_window_concludes(
    doc_example, tmp_path, nats_server, nats_client, serve_adapter, sim_clock
):
    (tmp_path / "unstuck.toml").write_text(WENLV_WITHOUT_HIGHER, encoding="utf-8")
    config = load_config(tmp_path / "unstuck.toml")  # accepted: nothing asks for `higher`
    await serve_adapter(doc_example.WenlvAdapter())
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        body = sample("01", department="wenlv", matter="internet_cafe_licence", matter_title="網吧設立審批")
        body["facts"] = {"distance_to_school_m": 120}
        case_id = (await api_call(nats_client, "case.open", body))["case_id"]
        await wait_for(lambda: broker.state_of(case_id).reviews, what="the review of wenlv's cannot")
        (review,) = broker.state_of(case_id).reviews
        assert (review["department"], review["higher_department"]) == ("wenlv", "wenlv的上級主管部門")
        assert review.get("request_id") is None  # asked of no one over the bus
        assert [c.department for c in broker.state_of(case_id).coordinations.values()] == ["wenlv"]
        conclude = {"case_id": case_id, "actor": "w-zhang", "department": "wenlv", "note": "窗口線下報送"}
        await api_call(nats_client, "case.review_conclude", {**conclude, "outcome": "upheld"})
        assert broker.state_of(case_id).reviews[0]["conclusion"] == "upheld"


async def test_matters_an_adapter_declares_do_not_route_a_case_to_it_but_staff_naming_it_does(
    doc_example, tmp_path, nats_server, nats_client, serve_adapter, sim_clock
):
    (tmp_path / "unstuck.toml").write_text(WENLV_WITHOUT_HIGHER, encoding="utf-8")
    config = load_config(tmp_path / "unstuck.toml")
    await serve_adapter(doc_example.WenlvAdapter())
    async with running_broker(nats_server, config, sim_clock, nats_client) as broker:
        # internet_cafe_licence is one of wenlv's matters, but the window where it failed is chengguan's
        body = sample("01", matter="internet_cafe_licence", matter_title="網吧設立審批")
        routed = (await api_call(nats_client, "case.open", body))["case_id"]
        assert broker.state_of(routed).departments == ["chengguan"]
        # left unclassified (no category, no phrase the built-in rule knows), then classified by staff
        # who name wenlv: only wenlv is asked, not the window's department
        body.update(category=None, description="申請人擬在學校附近開設網吧，窗口未予辦理。")
        named = (await api_call(nats_client, "case.open", body))["case_id"]
        assert broker.state_of(named).state == "intake"
        classify = {"case_id": named, "actor": "w-zhang", "category": "cannot", "reason": "距學校過近"}
        await api_call(nats_client, "case.classify", {**classify, "departments": ["wenlv"]})
        assert broker.state_of(named).departments == ["wenlv"]

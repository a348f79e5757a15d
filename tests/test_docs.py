"""The documentation keeps up with the code (datasette's test_docs pattern): every adapter hook has a
heading in docs/adapters.md, every broker hook in docs/plugins.md, each hook has a test of its own,
the kit's fixtures and helpers are documented, and the complete example in docs/adapters.md works."""

from __future__ import annotations

import ast
import re
import sys
import types
from pathlib import Path

import pytest

import unstuck.testing
from unstuck.adapters.hookspecs import AdapterSpec
from unstuck.plugins.hookspecs import BrokerSpec
from unstuck.testing import assert_conformant, assert_reply, call_adapter

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS_DOC = ROOT / "docs" / "adapters.md"
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
ADAPTER_HOOKS = sorted(n for n in vars(AdapterSpec) if n.startswith("unstuck_"))
BROKER_HOOKS = sorted(n for n in vars(BrokerSpec) if n.startswith("unstuck_"))


def hook_headings(doc: Path) -> list[str]:
    return re.findall(r"^#{2,4} (unstuck_\w+)\s*$", doc.read_text(encoding="utf-8"), flags=re.M)


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)


def suite_names() -> set[str]:
    """File names and test function names of the suite."""
    names = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        names.add(path.stem)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


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
    assert len(BROKER_HOOKS) == 6


@pytest.mark.parametrize("hook", ADAPTER_HOOKS)
def test_adapter_hook_is_documented(hook):
    assert hook in hook_headings(ADAPTERS_DOC), f"add a heading `### {hook}` to docs/adapters.md"


@pytest.mark.parametrize("hook", BROKER_HOOKS)
def test_broker_hook_is_documented_with_an_example(hook):
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    assert hook in hook_headings(PLUGINS_DOC), f"add a heading `## {hook}` to docs/plugins.md"
    section = text.split(f"## {hook}\n", 1)[1].split("\n## ", 1)[0]
    assert section.count("```python") >= 2, f"docs/plugins.md: give {hook} its signature and an example"


@pytest.mark.parametrize("hook", ADAPTER_HOOKS + BROKER_HOOKS)
def test_hook_has_a_test_of_its_own(hook):
    assert any(hook in name for name in suite_names()), (
        f"no test file or test function is named after {hook}: add test_{hook}_..."
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

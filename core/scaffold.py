"""``unstuck adapters new CODE --name NAME``: write an installable adapter package for a department.

The package is what a department IT team ships: a pyproject with the ``unstuck.adapters`` entry
point, the adapter module with a small working rule table, tests that use the pytest kit
(``unstuck.testing``) and pass as generated, and a README with the next steps.

The generated rules are the ones every bureau has, so they are real from the first day:
政府信息公開申請 under the 《中華人民共和國政府信息公開條例》, a generic 行政許可 application under
the 《中華人民共和國行政許可法》, and 退單 of matters that belong to the built-in departments.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from string import Template

from unstuck.adapters.registry import GROUP, discover
from unstuck.plugins.loading import LoadReport, iter_entry_points
from unstuck.schemas.common import DEPARTMENT_CODE_PATTERN


class ScaffoldError(ValueError):
    """The package cannot be written; the message names the argument and the fix."""


def class_name(code: str) -> str:
    """``ziran_ziyuan`` → ``ZiranZiyuanAdapter``."""
    return "".join(part.capitalize() for part in code.split("_") if part) + "Adapter"


def package_name(code: str) -> str:
    return f"unstuck_adapter_{code}"


def distribution_name(code: str) -> str:
    return f"unstuck-adapter-{code.replace('_', '-')}"


PYPROJECT = Template("""\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "unstuck-adapter-${dist}"
version = "0.1.0"
description = "${name} (${code}): department adapter for the unstuck coordination bus"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["unstuck"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=0.23"]

# The broker and `unstuck adapters run` find the adapter through this entry point.
[project.entry-points."unstuck.adapters"]
${code} = "${package}.adapter:${cls}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
asyncio_default_test_loop_scope = "function"
""")

INIT = Template('''\
"""${name} (${code}): department adapter for the unstuck coordination bus."""

from .adapter import ${cls}

__all__ = ["${cls}"]
''')

ADAPTER = Template('''\
"""${name} (${code}): answers the 辦不成事 window's coordination requests.

The host (``unstuck adapters run ${code}``) calls ``unstuck_coordinate`` once per request_id and
answers repeats from its cache, drops requests whose ``reply_by`` has passed, and turns an
exception into an error reply. Decide from ``request.matter`` and ``request.facts`` only.

Add your department's matters as rows of ``RULES`` (first matching row wins) and a test for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from unstuck.adapters import hookimpl
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome

CODE = "${code}"
NAME = "${name}"
DISCLOSURE_ACT = "《中華人民共和國政府信息公開條例》"
LICENSING_ACT = "《中華人民共和國行政許可法》"


@dataclass(frozen=True)
class Rule:
    """One row: for ``matter``, when fact ``when`` is true (None: always), answer ``outcome``."""

    matter: str
    when: str | None
    outcome: Outcome
    message: str
    handler: str
    legal_basis: str | None = None
    materials: tuple[str, ...] = ()


RULES: tuple[Rule, ...] = (
    # 政府信息公開申請: every bureau answers these
    Rule(
        "information_disclosure",
        "state_secret",
        Outcome.CANNOT,
        "所申請信息依法確定為國家秘密，不予公開",
        "辦公室（政務公開）",
        legal_basis=DISCLOSURE_ACT + "第十四條",
    ),
    Rule(
        "information_disclosure",
        "third_party_objects",
        Outcome.CANNOT,
        "所申請信息涉及商業秘密、個人隱私，第三方不同意公開，不予公開",
        "辦公室（政務公開）",
        legal_basis=DISCLOSURE_ACT + "第十五條",
    ),
    Rule(
        "information_disclosure",
        "request_unclear",
        Outcome.NEED_MATERIALS,
        "申請內容不明確，請補正所需信息的名稱、文號或者便於查詢的其他特徵性描述",
        "辦公室（政務公開）",
        materials=("補正後的政府信息公開申請表",),
    ),
    Rule(
        "information_disclosure",
        "already_published",
        Outcome.RESOLVED,
        "所申請信息已主動公開，已告知申請人獲取的方式和途徑",
        "辦公室（政務公開）",
    ),
    Rule(
        "information_disclosure",
        None,
        Outcome.ACCEPTED,
        "已登記，自收到申請之日起20個工作日內答覆",
        "辦公室（政務公開）",
    ),
    # 行政許可申請: materials first (一次性告知), then the decision
    Rule(
        "licence_application",
        "materials_incomplete",
        Outcome.NEED_MATERIALS,
        "申請材料不齊全，已一次告知需要補正的全部內容",
        "行政審批科",
        materials=("申請書", "申請人身份證明", "申請事項相關證明材料"),
    ),
    Rule(
        "licence_application",
        None,
        Outcome.RESOLVED,
        "申請材料齊全、符合法定形式，已當場受理並辦結",
        "行政審批科",
    ),
)

# 退單: matters that belong to another department (its code; the broker knows these departments)
ELSEWHERE: dict[str, str] = {
    "shop_sign": "chengguan",
    "outdoor_ad": "chengguan",
    "street_vending": "chengguan",
    "name_registration": "scjg",
    "business_licence": "scjg",
    "food_permit": "scjg",
    "pension_transfer": "renshe",
    "unemployment_benefit": "renshe",
}


class ${cls}:
    """${name}: decides from the facts the window recorded."""

    @hookimpl
    def unstuck_department(self) -> Department:
        return Department(
            code=CODE,
            name=NAME,
            matters=sorted({rule.matter for rule in RULES}),
            chain={
                "clerk": "辦公室經辦人",
                "section_head": "辦公室主任",
                "leader_in_charge": "分管副局長",
                "director": "局長",
            },
        )

    @hookimpl
    def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        for rule in RULES:
            if rule.matter == request.matter and (rule.when is None or request.facts.get(rule.when)):
                return self.reply(
                    request,
                    rule.outcome,
                    rule.message,
                    rule.handler,
                    legal_basis=rule.legal_basis,
                    materials=list(rule.materials),
                    # accepted needs the date the department expects to finish: before the deadline
                    expected_date=request.deadline - timedelta(days=1)
                    if rule.outcome is Outcome.ACCEPTED
                    else None,
                )
        if request.matter in ELSEWHERE:
            return self.reply(
                request,
                Outcome.NOT_OURS,
                f"{request.matter_title}不屬{NAME}職責",
                "辦公室",
                belongs_to=ELSEWHERE[request.matter],
            )
        return self.reply(
            request,
            Outcome.ACCEPTED,
            "已轉業務科室研究，按期答覆",
            "辦公室",
            expected_date=request.deadline,
        )

    @staticmethod
    def reply(
        request: CoordinationRequest, outcome: Outcome, message: str, handler: str, **extra: object
    ) -> CoordinationReply:
        return CoordinationReply(
            request_id=request.request_id,
            department=CODE,
            outcome=outcome,
            message=message,
            handler=handler,
            **extra,
        )
''')

TESTS = Template('''\
"""Tests of the ${name} (${code}) adapter with the unstuck pytest kit.

The fixtures (nats_client, adapter_under_test, ...) come from ``unstuck.testing``, a pytest plugin
that unstuck registers on install; each test that needs NATS gets its own real nats-server.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

from unstuck.testing import (
    assert_conformant,
    assert_error,
    assert_reply,
    call_adapter,
    coordination_request,
    send_coordination,
    send_raw,
)
from ${package}.adapter import ${cls}


@pytest.fixture
def unstuck_adapter() -> ${cls}:
    return ${cls}()


async def test_information_classified_as_a_state_secret_cannot_be_disclosed(unstuck_adapter):
    reply = await call_adapter(
        unstuck_adapter, category="cannot", matter="information_disclosure", facts={"state_secret": True}
    )
    assert_reply(reply, outcome="cannot", legal_basis="《中華人民共和國政府信息公開條例》第十四條")


async def test_information_a_third_party_objects_to_cannot_be_disclosed(unstuck_adapter):
    reply = await call_adapter(
        unstuck_adapter, matter="information_disclosure", facts={"third_party_objects": True}
    )
    assert_reply(reply, outcome="cannot", legal_basis="《中華人民共和國政府信息公開條例》第十五條")


async def test_unclear_disclosure_request_needs_a_corrected_form(unstuck_adapter):
    reply = await call_adapter(unstuck_adapter, matter="information_disclosure", facts={"request_unclear": True})
    assert_reply(reply, outcome="need_materials", materials=["補正後的政府信息公開申請表"])


async def test_published_information_is_resolved_by_pointing_to_it(unstuck_adapter):
    reply = await call_adapter(unstuck_adapter, matter="information_disclosure", facts={"already_published": True})
    assert_reply(reply, outcome="resolved")


async def test_other_disclosure_requests_are_accepted_before_the_deadline(unstuck_adapter):
    request = coordination_request("${code}", matter="information_disclosure")
    reply = await call_adapter(unstuck_adapter, matter="information_disclosure", deadline=request.deadline)
    assert_reply(reply, outcome="accepted")
    assert reply.expected_date is not None and reply.expected_date < request.deadline


async def test_licence_application_with_missing_materials_lists_them_all_at_once(unstuck_adapter):
    reply = await call_adapter(
        unstuck_adapter, matter="licence_application", facts={"materials_incomplete": True}
    )
    assert_reply(reply, outcome="need_materials")
    assert "申請書" in reply.materials


async def test_complete_licence_application_is_resolved(unstuck_adapter):
    reply = await call_adapter(unstuck_adapter, category="refused", matter="licence_application")
    assert_reply(reply, outcome="resolved")


async def test_shop_sign_is_not_ours_and_belongs_to_chengguan(unstuck_adapter):
    reply = await call_adapter(unstuck_adapter, matter="shop_sign", matter_title="門頭招牌設置")
    assert_reply(reply, outcome="not_ours", belongs_to="chengguan")


async def test_served_on_nats_it_answers_a_licence_application(nats_client, adapter_under_test):
    reply = await send_coordination(nats_client, "${code}", matter="licence_application")
    assert_reply(reply, outcome="resolved", department="${code}")


async def test_repeated_request_id_gets_the_same_answer(nats_client, adapter_under_test):
    first = await send_coordination(nats_client, "${code}", matter="information_disclosure")
    again = await send_coordination(nats_client, "${code}", matter="information_disclosure", attempt=2)
    assert again == first


async def test_malformed_request_gets_an_error_and_the_adapter_keeps_answering(nats_client, adapter_under_test):
    body = json.loads(coordination_request("${code}").model_dump_json())
    del body["question"]
    assert_error(await send_raw(nats_client, "${code}", json.dumps(body).encode()), field="question")
    assert_reply(await send_coordination(nats_client, "${code}", matter="licence_application"))


async def test_passes_the_conformance_check(nats_client, adapter_under_test):
    await assert_conformant(nats_client, "${code}")


def test_installed_under_the_unstuck_adapters_entry_point():
    found = {ep.name: ep for ep in entry_points(group="unstuck.adapters")}
    assert "${code}" in found, "install the package first: pip install -e ."
    assert found["${code}"].load() is ${cls}
''')

README = Template("""\
# unstuck-adapter-${dist}: ${name} (`${code}`)

The ${name} adapter for the unstuck coordination bus of the 辦不成事 window. It answers coordination
requests on `unstuck.dept.${code}.coordinate` (queue group `unstuck.dept.${code}`).

## Develop

```sh
pip install -e '.[test]'      # into the environment where unstuck is installed
python -m pytest              # the tests use the unstuck pytest kit; each starts its own nats-server
```

Add your department's matters as rows of `RULES` in `src/${package}/adapter.py`, a test for each
in `tests/`. An answer `cannot` needs `legal_basis`, `not_ours` needs `belongs_to` (a department
code), `accepted` needs `expected_date`, `need_materials` needs `materials`.

## Run and check

```sh
unstuck adapters run ${code}          # serve it on the bus (NATS_URL, or the embedded server here)
unstuck adapters check ${code}        # in another shell: the conformance check, from outside
unstuck adapters list --live          # is it answering? requests and errors per department
```

The broker learns the department from the installed entry point. In the operator's `unstuck.toml`,
`[departments.${code}]` must name `higher`, the higher department that reviews a `cannot` answer
(不能辦) of yours: the code of a department on the bus, or the name of a body outside it. Without it
the review is addressed to a placeholder, 「${code}的上級主管部門」. The same section can set the
escalation chain and a retry policy of its own:

```toml
[departments.${code}]
name = "${name}"
higher = "上級主管部門"    # replace: the name of the body that reviews, or its code if it is on the bus
chain = { clerk = "經辦人", section_head = "科長", leader_in_charge = "分管副局長", director = "局長" }
```

See "Configuring a department" in the adapter guide (`docs/adapters.md` of unstuck).
""")


def check_arguments(code: str, name: str) -> None:
    """Refuse a code that is not a department code and a name that cannot go into the files."""
    if not re.match(DEPARTMENT_CODE_PATTERN, code):
        raise ScaffoldError(
            f"CODE {code!r} is not a department code: use lowercase ASCII letters, digits and '_', "
            "starting with a letter (it becomes a NATS subject token), e.g. zhujian"
        )
    if not name.strip() or len(name) > 200:
        raise ScaffoldError("--name must be the department's name, e.g. 住房和城鄉建設局")
    if '"' in name or "\\" in name:
        raise ScaffoldError("--name must not contain quotes or backslashes")


def _distribution_of(entry_point_name: str) -> str:
    """The installed distribution that publishes an adapter entry point, for messages."""
    for ep in iter_entry_points(GROUP):
        if ep.name == entry_point_name and ep.dist is not None:
            return f", from the distribution {ep.dist.name}"
    return ""


def code_conflicts(code: str) -> list[str]:
    """What installed already uses ``code`` or the names the package would get: an adapter answering
    for the department, an entry point of that name, the import package or the distribution."""
    found = []
    installed = discover(LoadReport())
    if code in installed:
        adapter = installed[code]
        found.append(
            f"department {code} is already answered by the installed adapter {adapter.name} "
            f"({adapter.department.name}{_distribution_of(adapter.name)})"
        )
    for ep in iter_entry_points(GROUP):
        if ep.name == code and (code not in installed or installed[code].name != code):
            owner = f" of the distribution {ep.dist.name}" if ep.dist is not None else ""
            found.append(f"the {GROUP} entry point {code} ({ep.value}){owner} is already installed")
    package = package_name(code)
    spec = importlib.util.find_spec(package)
    if spec is not None:
        where = spec.origin or ", ".join(spec.submodule_search_locations or []) or "an unknown place"
        found.append(f"the Python package {package} is already installed ({where})")
    dist = distribution_name(code)
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        pass
    else:
        found.append(f"the distribution {dist} is already installed")
    return found


def refusal(code: str, directory: Path, taken: list[str], not_empty: bool) -> str:
    """Why the package is not written, and the fix."""
    problems = [*taken, *([f"--dir {directory} is not empty"] if not_empty else [])]
    fixes = [f"choose a department code other than {code}"] if taken else []
    fixes += ["choose a new directory"] if not_empty else []
    return (
        f"not writing the adapter package: {'; '.join(problems)}. "
        f"Fix: {' or '.join(fixes)}, or pass --force to write it anyway"
    )


@dataclass(frozen=True)
class Written:
    """The files written, and the conflicts ``--force`` wrote past (empty without any)."""

    files: list[Path]
    overridden: list[str]


def write_package(code: str, name: str, directory: Path, force: bool = False) -> Written:
    """Write the package for department ``code`` into ``directory``. Refused (unless ``force``) when the
    code or the package's names are taken by something installed, or ``directory`` is not empty."""
    check_arguments(code, name)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"--dir {directory} is a file: give a directory to write the package into")
    taken = code_conflicts(code)
    not_empty = directory.exists() and any(directory.iterdir())
    if (taken or not_empty) and not force:
        raise ScaffoldError(refusal(code, directory, taken, not_empty))
    values = {
        "code": code,
        "dist": code.replace("_", "-"),
        "name": name.strip(),
        "cls": class_name(code),
        "package": package_name(code),
    }
    files = {
        Path("pyproject.toml"): PYPROJECT,
        Path("README.md"): README,
        Path("src") / package_name(code) / "__init__.py": INIT,
        Path("src") / package_name(code) / "adapter.py": ADAPTER,
        Path("tests") / f"test_{code}_adapter.py": TESTS,
    }
    written = []
    for relative, template in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values), encoding="utf-8")
        written.append(path)
    return Written(written, [*taken, *([f"--dir {directory} was not empty"] if not_empty else [])])

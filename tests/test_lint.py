"""The code stays as the style guide asks: ruff-clean, and mypy-clean on every package."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_ruff_finds_nothing():
    out = subprocess.run(
        [str(BIN / "ruff"), "check", "--quiet", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_finds_nothing_in_the_packages():
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "core", "schemas", "plugins", "adapters"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_import_contracts_hold():
    """The architecture in pyproject's [tool.importlinter]: schemas and the lifecycle stand alone, only the
    CLI imports the CLI, adapters and plugins never reach the broker, the broker's parts are layered."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "lint_imports.py")], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_the_contracts_place_every_module_of_the_package():
    """A new top-level module must be placed: the schemas contract forbids every other module by name."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    schemas = next(c for c in contracts["contracts"] if c.get("source_modules") == ["unstuck.schemas"])
    named = {m.removeprefix("unstuck.") for m in schemas["forbidden_modules"]}
    on_disk = {p.stem for p in (ROOT / "core").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    on_disk |= {"plugins", "adapters", "samples"}
    assert on_disk - {"__init__", "__main__", "__pycache__"} == named


# Declarative tables: long because they list things, not because they do many things.
LONG_BY_DESIGN = {("core/metrics.py", "__init__"), ("schemas/asyncapi.py", "build")}


def test_no_function_over_80_lines_and_no_class_over_400():
    too_long = []
    for folder in ("core", "schemas", "plugins", "adapters"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                where = (str(path.relative_to(ROOT)), getattr(node, "name", ""))
                if isinstance(node, ast.ClassDef) and size > 400:
                    too_long.append(f"class {where[1]} in {where[0]}: {size} lines")
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and size > 80:
                    if where not in LONG_BY_DESIGN:
                        too_long.append(f"function {where[1]} in {where[0]}: {size} lines")
    assert too_long == []

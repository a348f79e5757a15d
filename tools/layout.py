"""The distribution laid out under its import names, for tools that find modules by path.

pyproject maps each folder to its import name (``core/`` is ``unstuck``, ``schemas/`` is
``unstuck.schemas`` ...). An installed wheel has that shape; the source tree does not, so tools that
walk the file system (mutmut, import-linter's graph builder) run on a copy laid out as installed.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout() -> dict[str, str]:
    """Folder in the repository → its path under the import name, read from pyproject's package-dir."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    return {folder: name.replace(".", "/") for name, folder in setuptools["package-dir"].items()}


def lay_out(where: Path) -> Path:
    """Copy the package into ``where`` under its import name; returns ``where``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "json")
    for folder, package in sorted(layout().items(), key=lambda item: item[1]):
        shutil.copytree(ROOT / folder, where / package, ignore=ignore, dirs_exist_ok=True)
    return where

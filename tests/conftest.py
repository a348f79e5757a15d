"""Shared test helpers. The fixtures themselves come from the pytest kit, ``unstuck.testing``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "examples" / "cases"


def sample(name: str, **changes: Any) -> dict[str, Any]:
    """A sample case from examples/cases by its file-name prefix, e.g. sample("01")."""
    path = next(CASES.glob(f"{name}*.json"))
    body = json.loads(path.read_text(encoding="utf-8"))
    body.pop("client_ref", None)
    body.update(changes)
    return body


@pytest.fixture
def cases_dir() -> Path:
    return CASES


def require_tool(name: str, install: str) -> str:
    """The path of a program the suite drives. Missing: a skip on a developer's machine, a failure
    under CI (``CI`` set), where ``.ci/run`` must have installed it; CI is never green without it."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed: {install}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so a missing tool is a failure, not a skip)")
    pytest.skip(message)

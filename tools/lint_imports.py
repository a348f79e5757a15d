"""Check the import contracts of pyproject's ``[tool.importlinter]`` on the package as installed.

import-linter builds its graph by walking the package's folders; ours are mapped to import names
(``core/`` is ``unstuck``), so it runs on a copy laid out under those names (``build/imports/``).
Exit status and output are lint-imports' own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from layout import ROOT, lay_out


def main() -> int:
    where = ROOT / "build" / "imports"
    if where.exists():
        shutil.rmtree(where)
    lay_out(where)
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(where)}
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--no-cache"], cwd=where, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())

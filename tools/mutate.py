"""``make mutate``: mutation testing of the pure core with mutmut, one module at a time.

mutmut copies the sources it mutates into ``mutants/`` and imports them from there, by the module
name their path gives. Our folders are mapped to import names (``core/`` is ``unstuck``), so each
run happens in a staging folder, ``build/mutate/<module>/``, where the package is laid out under its
import name: ``unstuck/``, ``unstuck/schemas/``, ``unstuck/plugins/``, ``unstuck/adapters/``. Only
the module under test is mutated, and only the fast tests that exercise it run against each mutant.

    python tools/mutate.py                 # every module in MODULES
    python tools/mutate.py workcalendar    # one of them

The score per module is written to ``build/mutate/scores.json`` and printed; the surviving mutants
are listed so each can be killed by a test or named as equivalent in docs/testing.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from layout import lay_out, layout

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "mutate"

LAYOUT = layout()  # the import-name layout of the distribution (pyproject's package-dir)


@dataclass(frozen=True)
class Target:
    """One module to mutate and the fast tests (no NATS server) that must catch its mutants."""

    sources: tuple[str, ...]  # paths in the repository
    tests: tuple[str, ...]

    @property
    def staged(self) -> list[str]:
        """The sources' paths in the staging folder, where each top folder has its import name."""
        out = []
        for source in self.sources:
            top, _, rest = source.partition("/")
            out.append(f"{LAYOUT[top]}/{rest}")
        return out


MODULES: dict[str, Target] = {
    "lifecycle": Target(
        (
            "core/lifecycle/__init__.py",
            "core/lifecycle/state.py",
            "core/lifecycle/commands.py",
            "core/lifecycle/decide.py",
            "core/lifecycle/evolve.py",
        ),
        ("tests/test_lifecycle.py", "tests/test_lifecycle_properties.py", "tests/test_lifecycle_cases.py"),
    ),
    "workcalendar": Target(("core/workcalendar.py",), ("tests/test_calendar.py",)),
    "rules": Target(("plugins/rules.py",), ("tests/test_rules.py",)),
    "canonical": Target(
        ("core/canonical.py",),
        ("tests/test_canonical.py", "tests/test_hot_paths.py", "tests/test_replay_chain.py"),
    ),
    "replayer": Target(
        ("core/replay/replayer.py", "core/replay/findings.py", "core/envelope.py"),
        ("tests/test_replay_chain.py", "tests/test_replayer.py"),
    ),
    "replyjudge": Target(("core/replyjudge.py",), ("tests/test_replyjudge.py",)),
}


def stage(name: str, target: Target) -> Path:
    """A fresh folder holding the package under its import name, the tests, and mutmut's settings."""
    where = BUILD / name
    if where.exists():
        shutil.rmtree(where)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "json")
    lay_out(where)
    shutil.copytree(ROOT / "tests", where / "tests", ignore=shutil.ignore_patterns("__pycache__", "faults"))
    # what the tests read by path from the repository root (sample cases, docs, the contract files)
    for folder in ("examples/cases", "docs", "schemas"):
        shutil.copytree(ROOT / folder, where / folder, ignore=ignore if folder != "schemas" else None)
    tests = [t for t in target.tests if (ROOT / t).exists()]
    if not tests:
        raise SystemExit(f"{name}: none of its tests exist: {', '.join(target.tests)}")
    (where / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["unstuck"]\n'
        'also_copy = ["examples", "docs", "schemas"]\n'
        f"only_mutate = {json.dumps(target.staged)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:randomly", "-q"]\n'
        "\n[tool.pytest.ini_options]\n"
        'asyncio_mode = "auto"\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
        "timeout = 120\n",
        encoding="utf-8",
    )
    return where


def run(name: str, target: Target, children: int) -> dict[str, object]:
    where = stage(name, target)
    mutmut = Path(sys.executable).with_name("mutmut")
    started = time.monotonic()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "UNSTUCK_MUTATION_RUN": "1"}
    with (where / "mutmut.log").open("w") as log:
        subprocess.run(
            [str(mutmut), "run", "--max-children", str(children)],
            cwd=where,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.monotonic() - started
    results = subprocess.run(
        [str(mutmut), "results", "--all", "true"], cwd=where, env=env, capture_output=True, text=True
    )
    counts: dict[str, int] = {}
    survivors: list[str] = []
    for line in results.stdout.splitlines():
        mutant, _, status = line.strip().rpartition(": ")
        if not mutant:
            continue
        counts[status] = counts.get(status, 0) + 1
        if status != "killed":
            survivors.append(f"{mutant}: {status}")
    total = sum(counts.values())
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    return {
        "module": ", ".join(target.sources),
        "mutants": total,
        "killed": killed,
        "score": round(100 * killed / total, 1) if total else None,
        "by_status": counts,
        "seconds": round(seconds),
        "not_killed": survivors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", choices=[*MODULES, []], help="default: all")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    names = args.modules or list(MODULES)
    BUILD.mkdir(parents=True, exist_ok=True)
    scores_file = BUILD / "scores.json"
    for name in names:
        result = run(name, MODULES[name], args.children)
        # read again before writing: another module's run may have finished meanwhile
        scores = json.loads(scores_file.read_text()) if scores_file.exists() else {}
        scores[name] = result
        scores_file.write_text(json.dumps(scores, indent=2, ensure_ascii=False))
    print(f"\n{'module':<24} {'mutants':>8} {'killed':>7} {'score':>7} {'seconds':>8}")
    for name in names:
        s = scores[name]
        print(f"{s['module']:<24} {s['mutants']:>8} {s['killed']:>7} {s['score']!s:>6}% {s['seconds']:>8}")
    for name in names:
        for line in scores[name]["not_killed"]:
            print(f"  not killed  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``unstuck adapters new``: the generated package installs, its own tests pass, and it serves and checks.

The package is really built and installed (pip, offline) into a directory of its own that the
subprocesses get on PYTHONPATH, so the shared environment of the other tests stays as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from test_plugins_loading import GONGAN

from unstuck.cli import main
from unstuck.config import load_config
from unstuck.embedded import EmbeddedNats

UNSTUCK = Path(sys.executable).parent / "unstuck"
CODE = "ziranziyuan"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The package for 自然資源局 written by `unstuck adapters new` and pip-installed into its own site dir."""
    root = tmp_path_factory.mktemp("scaffold")
    package = root / "unstuck-adapter-ziranziyuan"
    assert main(["adapters", "new", CODE, "--name", "自然資源局", "--dir", str(package)]) == 0
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "UNSTUCK_", "NATS_URL"))}
    env["PYTHONPATH"] = str(site)
    return package, env


def test_new_writes_a_package_with_the_unstuck_adapters_entry_point(installed):
    package, _ = installed
    meta = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["name"] == "unstuck-adapter-ziranziyuan"
    assert meta["project"]["entry-points"]["unstuck.adapters"] == {
        CODE: "unstuck_adapter_ziranziyuan.adapter:ZiranziyuanAdapter"
    }
    adapter = (package / "src" / "unstuck_adapter_ziranziyuan" / "adapter.py").read_text(encoding="utf-8")
    assert 'NAME = "自然資源局"' in adapter
    assert "《中華人民共和國政府信息公開條例》" in adapter
    assert (package / "tests" / "test_ziranziyuan_adapter.py").is_file()
    assert "unstuck adapters check ziranziyuan" in (package / "README.md").read_text(encoding="utf-8")


def test_generated_readme_says_the_operator_must_configure_the_higher_department(installed, tmp_path):
    package, _ = installed
    readme = (package / "README.md").read_text(encoding="utf-8")
    assert "`[departments.ziranziyuan]` must name `higher`" in readme
    assert "「ziranziyuan的上級主管部門」" in readme  # what the review is addressed to without it
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "unstuck.toml").write_text(block, encoding="utf-8")
    department = load_config(tmp_path / "unstuck.toml").department("ziranziyuan")  # a valid configuration
    assert (department.name, department.higher) == ("自然資源局", "上級主管部門")
    assert set(department.chain) == {"clerk", "section_head", "leader_in_charge", "director"}


def test_generated_package_tests_pass_as_generated(installed):
    package, env = installed
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "13 passed" in result.stdout


def test_generated_adapter_runs_on_the_bus_and_passes_the_check_command(installed, nats_server: EmbeddedNats):
    _, env = installed
    listed = subprocess.run(
        [str(UNSTUCK), "adapters", "list", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert f'"department": "{CODE}"' in listed.stdout
    run = subprocess.Popen(
        [str(UNSTUCK), "adapters", "run", CODE, "--nats", nats_server.url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert run.stdout is not None
        first_line = run.stdout.readline()
        assert first_line.startswith(f"serving {CODE} on {nats_server.url}"), first_line
        check = subprocess.run(
            [str(UNSTUCK), "adapters", "check", CODE, "--nats", nats_server.url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert f"{CODE}: all 14 checks passed" in check.stdout
    finally:
        run.terminate()
        run.wait(timeout=10)
    assert run.returncode == 0


def test_new_refuses_a_code_that_is_not_a_subject_token(tmp_path, capsys):
    assert main(["adapters", "new", "Zhu.jian", "--name", "住建局", "--dir", str(tmp_path / "x")]) == 2
    assert "lowercase ASCII" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_new_refuses_to_overwrite_a_directory_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    assert main(["adapters", "new", "jiaotong", "--name", "交通運輸局", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--dir {tmp_path} is not empty" in err
    assert "Fix: choose a new directory, or pass --force" in err
    assert "department code" not in err  # jiaotong itself is free
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_new_refuses_a_dir_that_is_a_file_even_with_force(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me", encoding="utf-8")
    argv = ["adapters", "new", "jiaotong", "--name", "交通運輸局", "--dir", str(target), "--force"]
    assert main(argv) == 2
    assert f"--dir {target} is a file: give a directory" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "keep me"


def install_gongan(plugin_distribution) -> None:
    """The 公安局 team's own adapter package (the adapter of the loading tests), installed with its real names."""
    plugin_distribution(
        "unstuck-adapter-gongan",
        {"unstuck.adapters": {"gongan": "unstuck_adapter_gongan:GonganAdapter"}},
        {"unstuck_adapter_gongan": GONGAN},
    )


def test_new_refuses_a_code_an_installed_adapter_answers_naming_it_and_the_fix(
    plugin_distribution, tmp_path, capsys
):
    install_gongan(plugin_distribution)
    target = tmp_path / "unstuck-adapter-gongan"
    assert main(["adapters", "new", "gongan", "--name", "公安局", "--dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert (
        "department gongan is already answered by the installed adapter gongan "
        "(公安局, from the distribution unstuck-adapter-gongan)"
    ) in err
    assert "the Python package unstuck_adapter_gongan is already installed" in err
    assert "the distribution unstuck-adapter-gongan is already installed" in err
    assert "Fix: choose a department code other than gongan, or pass --force to write it anyway" in err
    assert not target.exists()


def test_new_refuses_a_package_name_already_installed_without_an_adapter(
    plugin_distribution, tmp_path, capsys
):
    # an older package of the same import name, publishing no adapter: installing the new one over it
    # would replace its module
    plugin_distribution("jiaotong-tools", {}, {"unstuck_adapter_jiaotong": "VERSION = 1\n"})
    target = tmp_path / "pkg"
    assert main(["adapters", "new", "jiaotong", "--name", "交通運輸局", "--dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert "the Python package unstuck_adapter_jiaotong is already installed" in err
    assert "already answered" not in err
    assert "choose a department code other than jiaotong" in err
    assert not target.exists()


def test_new_with_force_writes_over_an_installed_code_and_warns_what_it_overrode(
    plugin_distribution, tmp_path, capsys
):
    install_gongan(plugin_distribution)
    target = tmp_path / "unstuck-adapter-gongan"
    argv = ["adapters", "new", "gongan", "--name", "公安局", "--dir", str(target), "--force"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert f"wrote 5 files to {target}/ for 公安局 (gongan)" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning: written anyway (--force): ")]
    assert len(warnings) == 3  # the department, the import package, the distribution
    assert "department gongan is already answered by the installed adapter gongan" in warnings[0]
    meta = tomllib.loads((target / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["entry-points"]["unstuck.adapters"] == {
        "gongan": "unstuck_adapter_gongan.adapter:GonganAdapter"
    }

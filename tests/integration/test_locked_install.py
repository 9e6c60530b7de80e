"""scripts/lib.sh's locked installs, run for real on a tiny project: a venv gets exactly
what its lock pins, follows every change of the lock (also back to an earlier one), and
refuses a lock that misses a dependency. (pip fetches the few small wheels from the package
index, as `make test` does.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "lockdemo"
version = "0.1"
dependencies = ["six"]

[tool.setuptools]
packages = ["lockdemo"]
"""


def _tool_pins() -> list[str]:
    """pip, setuptools and wheel as the project's own lock pins them."""
    lines = (REPO / "locks" / "venv.txt").read_text().splitlines()
    return [line for line in lines if line.split("==")[0] in ("pip", "setuptools", "wheel")]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "scripts").mkdir()
    for name in ("lib.sh", "lockset.py"):
        shutil.copy(REPO / "scripts" / name, tmp_path / "scripts" / name)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "lockdemo").mkdir()
    (tmp_path / "lockdemo" / "__init__.py").write_text("")
    (tmp_path / "locks").mkdir()
    return tmp_path


def _lock(project: Path, *pins: str) -> None:
    (project / "locks" / "venv.txt").write_text("\n".join([*_tool_pins(), *pins]) + "\n")


def _install(project: Path) -> subprocess.CompletedProcess:
    script = 'source scripts/lib.sh; ensure_venv .venv locks/venv.txt lockdemo'
    return subprocess.run(["bash", "-c", script], cwd=project, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(Path.home())})


def _six(project: Path) -> str:
    return subprocess.run([str(project / ".venv" / "bin" / "python"), "-c", "import six; print(six.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _installs(result: subprocess.CompletedProcess) -> bool:
    return "pins into .venv" in result.stderr


def test_a_venv_follows_its_lock_and_refuses_an_incomplete_one(project):
    _lock(project, "six==1.16.0")
    first = _install(project)
    assert first.returncode == 0, first.stderr[-3000:]
    assert _installs(first) and _six(project) == "1.16.0"

    again = _install(project)  # nothing changed: the stamp skips pip
    assert again.returncode == 0 and not _installs(again), again.stderr[-2000:]

    _lock(project, "six==1.17.0")  # a changed lock installs again
    newer = _install(project)
    assert newer.returncode == 0 and _installs(newer), newer.stderr[-3000:]
    assert _six(project) == "1.17.0"

    _lock(project, "six==1.16.0")  # and so does a lock changed back to an earlier state
    back = _install(project)
    assert back.returncode == 0 and _installs(back), back.stderr[-3000:]
    assert _six(project) == "1.16.0"

    _lock(project)  # the project needs six, the lock forgot it: refused, naming it
    missing = _install(project)
    assert missing.returncode != 0
    assert "six 1.16.0 is needed but not in" in missing.stderr, missing.stderr[-3000:]
    assert not list((project / ".venv").glob(".gridspawner-installed-*")), "a refused install is no stamped state"

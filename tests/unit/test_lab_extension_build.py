"""gridspawner-lab's JupyterLab extension: the committed build is what its source builds to,
and the pure part of its JavaScript passes its own tests (node --test).

The build tools come from scripts/build-lab-extension.sh --tools (make test runs it): npm ci
of gridspawner-lab/js/package-lock.json into gridspawner-lab/js/node_modules.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "gridspawner-lab"
JS = LAB / "js"
BUILT = LAB / "gridspawner_lab" / "labextension"
SOURCES = ("package.json", "rspack.config.cjs", "src")


def node() -> str:
    found = shutil.which("node")
    if not found:
        pytest.fail("node is missing: run scripts/install-test-deps.sh")
    return found


def build_tools() -> Path:
    modules = JS / "node_modules"
    if not (modules / "@jupyter" / "builder").is_dir():
        pytest.fail("the lab extension's build tools are missing: run scripts/build-lab-extension.sh --tools")
    return modules


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_the_committed_build_is_what_the_source_builds_to(tmp_path):
    """Rebuild from a copy of the source (elsewhere: the build must not depend on where the
    checkout is) and compare every file with the committed one. A change to js/src without
    `scripts/build-lab-extension.sh` fails here."""
    copy = tmp_path / "somewhere" / "js"
    copy.mkdir(parents=True)
    for name in SOURCES:
        src = JS / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, copy / name)
    os.symlink(build_tools(), copy / "node_modules")
    result = subprocess.run(["npm", "run", "--silent", "build"], cwd=copy, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rebuilt = copy.parent / "gridspawner_lab" / "labextension"
    assert files_under(rebuilt) == files_under(BUILT), "run scripts/build-lab-extension.sh and commit its output"
    _, differ, errors = filecmp.cmpfiles(rebuilt, BUILT, files_under(BUILT), shallow=False)
    assert differ == [] and errors == [], f"differs from the source's build: {differ + errors}; run scripts/build-lab-extension.sh"


def test_the_build_declares_its_entry_point_and_shared_packages():
    meta = json.loads((BUILT / "package.json").read_text())
    load = meta["jupyterlab"]["_build"]["load"]
    assert (BUILT / load).is_file()
    entry = (BUILT / load).read_text()
    # JupyterLab's own packages are consumed from the page, never bundled (no second copy)
    for package, oldest in [("@jupyterlab/apputils", "^4.0.0"), ("@jupyterlab/statusbar", "^4.0.0"), ("@lumino/widgets", "^2.0.0")]:
        assert f'"{package}"' in entry
        assert f'requiredVersion:"{oldest}"' in entry
    assert not list((BUILT / "static").glob("vendors*")), "a JupyterLab package got bundled"


def test_the_javascript_logic(tmp_path):
    result = subprocess.run([node(), "--test", "test/"], cwd=JS, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout, result.stdout[-2000:]

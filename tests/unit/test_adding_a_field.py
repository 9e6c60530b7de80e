"""The development guide's "Adding a choice field" example works: its ``fields.py`` part,
applied to a copy of the package, makes a choice that the form shows and parses, that
requests accept and check (reaching backends in ``LaunchRequest.choices``), that profiles
may preset, and that the documentation's tables and the chart schema generate — with no
other change.

(The example's backend part is shown in the guide for a reader; what a backend does with a
value is that backend's own tests' business.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "development.md"

CHECK = r'''
import json, sys
from pathlib import Path
from bs4 import BeautifulSoup

import gridspawner
assert gridspawner.__file__.startswith(sys.argv[1]), gridspawner.__file__
from gridspawner.catalog import build_catalog
from gridspawner.form import parse_form, render_form
from gridspawner.request import build_request
from gridspawner.vocabulary import CatalogError, OptionsError

sys.path.insert(0, "scripts"); sys.path.insert(0, "docs")
import gen_chart_schema, gen_field_docs

images = {"lab": {"local": {}}}
cat = build_catalog(backends={"hub": {"kind": "local"}}, images=images,
                    profiles={"big": {"display_name": "Big", "values": {"shm": 32}}})
out = {}
soup = BeautifulSoup(render_form(catalog=cat, groups=[], capacity={}, values=None, errors=None), "html.parser")
sel = soup.find("select", attrs={"name": "shm"})
out["options"] = [(o.get("value"), o.get_text(strip=True)) for o in sel.find_all("option")]
out["label"] = soup.find(attrs={"data-gs-field": "shm"}).find("label").get_text(strip=True)
data = json.loads(soup.find("script", id="gs-form-data").string)
out["script_fields"] = [f["name"] for f in data["fields"]]
out["parsed"] = parse_form({"shm": ["8"]})
out["choices"] = dict(build_request({"shm": 8}, cat, []).choices)
out["profile_choices"] = dict(build_request({"profile": "big"}, cat, []).choices)
out["default_choices"] = dict(build_request({}, cat, []).choices)
try:
    build_request({"shm": 4}, cat, [])
except OptionsError as e:
    out["refused"] = e.errors
try:
    build_catalog(backends={"hub": {"kind": "local"}}, images=images, default_options={"shm": 3})
except CatalogError as e:
    out["bad_preset"] = str(e)
schema = json.loads(gen_chart_schema.render(gen_chart_schema.SCHEMA.read_text()))
out["schema"] = schema["properties"]["gridspawner"]["properties"]["default_options"]["properties"]["shm"]
out["rest"] = [l for l in gen_field_docs.rest_table().splitlines() if "`shm`" in l]
out["preset_doc"] = [l for l in gen_field_docs.preset_table().splitlines() if "`shm`" in l]
print(json.dumps(out))
'''


def guide_diff(path: str) -> str:
    """The part of the guide's diff that changes ``path``."""
    block = re.search(r"```diff\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S).group(1)
    parts = re.split(r"(?m)^(?=--- a/)", block)
    return next(p for p in parts if p.startswith(f"--- a/{path}\n"))


@pytest.fixture
def copy_with_the_example(tmp_path):
    for part in ("gridspawner", "scripts", "docs"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "_build"))
    (tmp_path / "helm" / "gridspawner").mkdir(parents=True)
    shutil.copy(REPO / "helm" / "gridspawner" / "values.schema.json", tmp_path / "helm" / "gridspawner")
    subprocess.run(["git", "apply", "-"], input=guide_diff("gridspawner/fields.py"),
                   text=True, cwd=tmp_path, check=True)
    return tmp_path


def test_the_guides_registry_entry_is_a_whole_new_choice(copy_with_the_example):
    root = copy_with_the_example
    run = subprocess.run([sys.executable, "-c", CHECK, str(root)], cwd=root, capture_output=True, text=True,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["options"] == [["", "Default"], ["1", "1 GB /dev/shm"], ["8", "8 GB /dev/shm"], ["32", "32 GB /dev/shm"]]
    assert out["label"] == "Shared memory"
    assert out["script_fields"][-1] == "shm"
    assert out["parsed"] == {"shm": 8}
    assert out["choices"] == {"shm": 8}
    assert out["profile_choices"] == {"shm": 32}
    assert out["default_choices"] == {"shm": None}
    assert out["refused"] == {"shm": "must be one of 1, 8, 32 (got 4)"}
    assert out["bad_preset"].startswith("c.GridSpawner.default_options['shm']: must be one of the offered values")
    assert out["schema"] == {"description": "Size of /dev/shm in GB: 1, 8 or 32.", "type": "integer", "minimum": 0,
                             "enum": [1, 8, 32]}
    assert out["rest"] == ["| `shm` | Size of /dev/shm in GB: 1, 8 or 32; left out: the backend's default. |"]
    assert out["preset_doc"] == ["| `shm` | Size of /dev/shm in GB: 1, 8 or 32. |"]


def test_the_guides_diff_touches_the_registry_and_one_backend_only():
    block = re.search(r"```diff\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S).group(1)
    files = re.findall(r"(?m)^--- a/(\S+)$", block)
    assert files[0] == "gridspawner/fields.py"
    assert all(f.startswith("gridspawner/backends/kubernetes/") for f in files[1:]), files

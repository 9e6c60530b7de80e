"""What the field registry generates is what is committed: the Helm chart schema's preset
part (scripts/gen_chart_schema.py) and the documentation's tables of REST keys and preset
keys (docs/gen_field_docs.py). A registry change without regenerating fails here; a new
field reaches every output."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from gridspawner.field_rules import ListChoice
from gridspawner.fields import FIELD, FIELDS, PRESET_NAMES, Field

REPO = Path(__file__).resolve().parents[2]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


chart = _load(REPO / "scripts" / "gen_chart_schema.py")
field_docs = _load(REPO / "docs" / "gen_field_docs.py")

#: a choice a future version might add, to see it reach every generated place
NEW_FIELD = Field(
    "shm", "Shared memory", "integer", rest="Shared memory in GB, one of 1, 8.",
    form_text="number", widget="choice", rule=ListChoice(values=(1, 8)), preset_doc="Shared memory in GB.",
)


def test_the_committed_chart_schema_is_what_the_registry_generates():
    committed = chart.SCHEMA.read_text(encoding="utf-8")
    assert committed == chart.render(committed), (
        "helm/gridspawner/values.schema.json is out of date: run `make chart-schema` "
        "(.venv/bin/python scripts/gen_chart_schema.py) and commit it"
    )
    assert chart.main(["--check"]) == 0


@pytest.mark.parametrize("part", field_docs.PARTS, ids=lambda p: p.name)
def test_the_committed_field_tables_are_what_the_registry_generates(part):
    committed = part.page.read_text(encoding="utf-8")
    assert committed == part.render(committed), (
        f"{part.page.relative_to(REPO)}'s {part.name} table is out of date: run `.venv/bin/python docs/gen_field_docs.py` "
        "(or `make docs`) and commit it"
    )


def test_the_chart_schema_takes_each_preset_field_from_the_registry():
    schema = json.loads(chart.SCHEMA.read_text(encoding="utf-8"))
    spawner = schema["properties"]["gridspawner"]["properties"]
    profile = spawner["profiles"]["additionalProperties"]["properties"]
    assert list(profile["values"]["properties"]) == list(PRESET_NAMES)
    assert profile["changeable"]["items"]["enum"] == list(PRESET_NAMES)
    assert list(spawner["default_options"]["properties"]) == list(PRESET_NAMES)
    assert "profile" not in PRESET_NAMES and "mounts" not in PRESET_NAMES
    assert spawner["default_options"]["properties"]["gpus"] == {
        "description": FIELD["gpus"].preset_doc, "type": "integer", "minimum": 0,
    }


def test_a_new_field_reaches_the_chart_schema_and_the_rest_table(monkeypatch):
    committed_schema = chart.SCHEMA.read_text(encoding="utf-8")
    monkeypatch.setattr(chart, "FIELDS", (*FIELDS, NEW_FIELD))
    monkeypatch.setattr(field_docs, "FIELDS", (*FIELDS, NEW_FIELD))

    schema = json.loads(chart.render(committed_schema))
    spawner = schema["properties"]["gridspawner"]["properties"]
    profile = spawner["profiles"]["additionalProperties"]["properties"]
    wanted = {"description": "Shared memory in GB.", "type": "integer", "minimum": 0, "enum": [1, 8]}
    assert profile["values"]["properties"]["shm"] == wanted
    assert spawner["default_options"]["properties"]["shm"] == wanted
    assert profile["changeable"]["items"]["enum"][-1] == "shm"
    assert "| `shm` | Shared memory in GB, one of 1, 8. |" in field_docs.rest_table()
    assert "| `shm` | Shared memory in GB. |" in field_docs.preset_table()

    # a field the admin may not preset stays out of the chart and the preset table
    not_preset = dataclasses.replace(NEW_FIELD, preset=False)
    monkeypatch.setattr(chart, "FIELDS", (*FIELDS, not_preset))
    monkeypatch.setattr(field_docs, "FIELDS", (*FIELDS, not_preset))
    assert json.loads(chart.render(committed_schema)) == json.loads(committed_schema)
    assert "`shm`" not in field_docs.preset_table() and "`shm`" in field_docs.rest_table()

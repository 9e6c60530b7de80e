"""Write the field registry's part of the Helm chart's values.schema.json.

The schema of a profile's ``values``, of its ``changeable`` list and of ``default_options``
is derived from `gridspawner.fields.FIELDS` (each preset field's JSON type, limits and
description), so the chart checks exactly the keys the spawner accepts. The rest of the
schema is hand-written and left as it is. Run after changing the registry, and commit:

    .venv/bin/python scripts/gen_chart_schema.py          # rewrite the schema
    .venv/bin/python scripts/gen_chart_schema.py --check  # exit 1 when it is out of date

(`make chart-schema` runs the first; tests/unit/test_generated_files.py fails when the
committed schema differs from what the registry generates.)
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridspawner.fields import FIELDS  # noqa: E402

SCHEMA = ROOT / "helm" / "gridspawner" / "values.schema.json"


def preset_properties() -> dict[str, Any]:
    """The schema of each key a preset may set, in registry order."""
    return {f.name: f.preset_schema() for f in FIELDS if f.preset}


def with_registry(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its registry-derived parts replaced by what the registry says now."""
    schema = copy.deepcopy(schema)
    spawner = schema["properties"]["gridspawner"]["properties"]
    names = list(preset_properties())
    profile = spawner["profiles"]["additionalProperties"]["properties"]
    profile["values"]["description"] = f"Option values: {', '.join(names)}."
    profile["values"]["properties"] = preset_properties()
    profile["changeable"]["items"]["enum"] = names
    spawner["default_options"]["properties"] = preset_properties()
    return schema


def render(text: str) -> str:
    """The schema file's text, ``text`` being its current text."""
    return json.dumps(with_registry(json.loads(text)), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    current = SCHEMA.read_text(encoding="utf-8")
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{SCHEMA.relative_to(ROOT)} is out of date: run scripts/gen_chart_schema.py", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        SCHEMA.write_text(wanted, encoding="utf-8")
        print(f"wrote {SCHEMA.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Write the Helm chart's values reference from helm/gridspawner/values.schema.json.

Run by docs/conf.py on every Sphinx build (so the reference cannot drift from the schema
`helm` enforces), and runnable on its own:

    .venv/bin/python docs/gen_helm_values.py

The output, docs/admin/helm-values.inc (git-ignored), is included by docs/admin/helm.md. Its
suffix is not a Sphinx source suffix on purpose: it is a fragment, not a page.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
CHART = ROOT / "helm" / "gridspawner"
OUTPUT = DOCS / "admin" / "helm-values.inc"

#: top-level sections, in the order the reference shows them
SECTIONS = [
    ("gridspawner", "The spawner's settings (`c.GridSpawner.*`)"),
    ("existingSecret", "Credentials from an existing Secret"),
    ("hub", "The hub"),
    ("proxy", "The proxy"),
    ("singleuser", "Single-user servers on Kubernetes"),
    ("rbac", "RBAC"),
    ("serviceAccount", "The hub's ServiceAccount"),
    ("ingress", "Ingress"),
    (None, "Other keys"),
]


def _escape(text: str) -> str:
    """Plain text for a Markdown table cell: no pipes, no line breaks, no stray markup."""
    text = " ".join(str(text).split())
    return re.sub(r"([|*_<>\[\]\\])", r"\\\1", text)


def _code(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value)
    text = text.replace("|", "\\|")
    ticks = "``" if "`" in text else "`"
    return f"{ticks}{text}{ticks}"


def _resolve(node: dict, schema: dict) -> dict:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict, schema: dict) -> str:
    node = _resolve(node, schema)
    if "enum" in node:
        return " \\| ".join(_code(v) for v in node["enum"])
    if "const" in node:
        return _code(node["const"])
    for combo in ("anyOf", "oneOf"):
        if combo in node and "type" not in node:
            return " or ".join(_type(n, schema) for n in node[combo])
    t = node.get("type", "any")
    types = t if isinstance(t, list) else [t]
    out = []
    for t in types:
        if t == "array" and isinstance(node.get("items"), dict):
            out.append(f"list of {_type(node['items'], schema)}")
        elif t == "object" and isinstance(node.get("additionalProperties"), dict) and "properties" not in node:
            out.append(f"map of {_type(node['additionalProperties'], schema)}")
        else:
            out.append(str(t))
    text = " or ".join(out)
    constraints = []
    if "minimum" in node:
        constraints.append(f"≥ {node['minimum']}")
    if "exclusiveMinimum" in node:
        constraints.append(f"> {node['exclusiveMinimum']}")
    if "maximum" in node:
        constraints.append(f"≤ {node['maximum']}")
    if "exclusiveMaximum" in node:
        constraints.append(f"< {node['exclusiveMaximum']}")
    if constraints:
        text += " (" + ", ".join(constraints) + ")"
    return text


def _rows(node: dict, schema: dict, path: str, defaults: Any) -> Iterator[tuple[str, str, str, str]]:
    node = _resolve(node, schema)
    props = node.get("properties")
    has_default = defaults is not _MISSING
    if props and node.get("additionalProperties") is False:
        if "." in path and node.get("description"):
            yield path, "object", _default_cell(defaults, has_default, short=True), node["description"]
        for key, sub in props.items():
            sub_defaults = defaults.get(key, _MISSING) if isinstance(defaults, dict) else _MISSING
            yield from _rows(sub, schema, f"{path}.{key}" if path else key, sub_defaults)
        return
    yield path, _type(node, schema), _default_cell(defaults, has_default), node.get("description", "")


class _Missing:
    pass


_MISSING = _Missing()


def _default_cell(value: Any, present: bool, short: bool = False) -> str:
    if not present:
        return ""
    if short and isinstance(value, dict):
        return ""
    text = _code(value)
    return text if len(text) <= 60 else "see values.yaml"


def _kind_rows(schema: dict) -> list[str]:
    """The per-kind settings of gridspawner.backends.<name> (kubernetes, local) as tables."""
    grid = schema["properties"]["gridspawner"]["properties"]
    backend = grid["backends"]["additionalProperties"]
    out = []
    for rule in backend.get("allOf", []):
        kind = rule["if"]["properties"]["kind"]["const"]
        out += [
            "",
            f"#### Settings of `kind: {kind}` backends",
            "",
            f"Keys of `gridspawner.backends.<name>` when `kind` is `{kind}` (no others are accepted).",
            "",
            "| Key | Type | Description |",
            "| --- | --- | --- |",
        ]
        for key, sub in rule["then"]["properties"].items():
            out.append(f"| `{key}` | {_type(sub, schema)} | {_escape(_resolve(sub, schema).get('description', ''))} |")
    kinds = backend["properties"]["kind"]["enum"]
    strict = {rule["if"]["properties"]["kind"]["const"] for rule in backend.get("allOf", [])}
    for kind in kinds:
        if kind not in strict:
            out += [
                "",
                f"#### Settings of `kind: {kind}` backends",
                "",
                f"The chart passes these through as they are; the `{kind}` backend checks them when the hub starts.",
            ]
    image = grid["images"]["additionalProperties"]["properties"]
    out += ["", "#### What an image runs, per kind", "", "| Key | Type | Description |", "| --- | --- | --- |"]
    for kind, sub in image.items():
        sub = _resolve(sub, schema)
        if "properties" in sub:
            for key, leaf in sub["properties"].items():
                out.append(f"| `{kind}.{key}` | {_type(leaf, schema)} | {_escape(_resolve(leaf, schema).get('description', ''))} |")
        else:
            out.append(f"| `{kind}` | {_type(sub, schema)} | {_escape(sub.get('description', ''))} |")
    return out


def _leaf_rows(node: dict, schema: dict, prefix: str = "") -> Iterator[str]:
    """Table rows for the keys of an object schema; a strict sub-object (e.g. sts) is listed
    key by key as ``sub.key``."""
    for key, sub in node.get("properties", {}).items():
        res = _resolve(sub, schema)
        if res.get("additionalProperties") is False and res.get("properties"):
            yield f"| `{prefix}{key}` | object | {_escape(res.get('description', ''))} |"
            yield from _leaf_rows(res, schema, f"{prefix}{key}.")
        else:
            yield f"| `{prefix}{key}` | {_type(sub, schema)} | {_escape(res.get('description', ''))} |"


def _entry_table(title: str, intro: str, node: dict, schema: dict) -> list[str]:
    required = node.get("required", [])
    out = ["", f"#### {title}", "", intro + (f" Required: {', '.join(f'`{r}`' for r in required)}." if required else ""), ""]
    return out + ["| Key | Type | Description |", "| --- | --- | --- |", *_leaf_rows(node, schema)]


def _entry_rows(schema: dict) -> list[str]:
    """Tables for the entries of maps and lists the main table shows as one row: the hosts of
    an ssh backend, and the S3 endpoints, SSH storage servers and access rules of storage."""
    grid = schema["properties"]["gridspawner"]["properties"]
    out = []
    backend = grid["backends"]["additionalProperties"]
    for rule in backend.get("allOf", []):
        if rule["if"]["properties"]["kind"]["const"] != "ssh":
            continue
        hosts = rule["then"]["properties"]["hosts"]["items"]
        host = next((h for h in hosts.get("anyOf", []) if h.get("type") == "object"), None)
        if host:
            out += _entry_table(
                "A host of an `ssh` backend",
                "Each entry of `hosts` is a name (also used as its address) or a dict with these keys; "
                "a key set here overrides the backend-wide setting for this host.",
                host, schema,
            )
    storage = grid.get("storage", {}).get("properties", {})
    for key, what in (("s3", "An S3 endpoint"), ("ssh", "An SSH storage server"), ("access", "An access rule")):
        entry = storage.get(key, {}).get("additionalProperties")
        if isinstance(entry, dict) and entry.get("properties"):
            name = "<group>" if key == "access" else "<name>"
            out += _entry_table(f"{what}: `gridspawner.storage.{key}.{name}`", f"Keys of `gridspawner.storage.{key}.{name}`.", entry, schema)
    return out


def render(schema: dict, values: dict) -> str:
    lines = [
        "<!-- generated by docs/gen_helm_values.py from helm/gridspawner/values.schema.json; do not edit -->",
        "",
    ]
    top = schema["properties"]
    shown = set()
    for key, title in SECTIONS:
        keys = [key] if key else [k for k in top if k not in shown]
        if not keys:
            continue
        lines += [f"### {title}", ""]
        if key and top[key].get("description"):
            lines += [_escape(top[key]["description"]), ""]
        lines += ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
        for k in keys:
            shown.add(k)
            for path, typ, default, desc in _rows(top[k], schema, k, values.get(k, _MISSING)):
                lines.append(f"| `{path}` | {typ} | {default} | {_escape(desc)} |")
        if key == "gridspawner":
            lines += _kind_rows(schema)
            lines += _entry_rows(schema)
        lines.append("")
    return "\n".join(lines)


def main() -> Path:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    text = render(schema, values)
    if not OUTPUT.exists() or OUTPUT.read_text() != text:
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(text)
    return OUTPUT


if __name__ == "__main__":
    print(main(), file=sys.stderr)

"""PURE: a run's parameters — typed values checked against the notebook's ``parameters``
cell (the cell tagged ``parameters``, as papermill reads it), errors named
``parameters.NAME``.

Types: int, float, bool, str and list (of those). A parameter the cell assigns a literal
gets that literal's type (an int is accepted for a float); a name the cell does not assign
is allowed (papermill injects it all the same) with a warning.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
from dataclasses import dataclass
from typing import Any, Mapping

import nbformat

#: the types a parameter may have (JSON values)
TYPES = ("int", "float", "bool", "str", "list")
#: the most parameters a run takes, and the longest string value (characters)
MAX_PARAMETERS = 200
MAX_STR = 64 * 1024
MAX_LIST = 10_000


class NotebookError(ValueError):
    """The uploaded file is no notebook nbformat can read."""


@dataclass(frozen=True)
class Declared:
    """A parameter of the notebook's parameters cell: its name, type (None: not a literal
    of a known type) and default as the cell writes it."""

    name: str
    type: str | None
    default: str


def read_notebook(data: bytes) -> Any:
    """The notebook (nbformat v4 node); NotebookError saying why it is none."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotebookError("is not a notebook: not UTF-8 text") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as e:  # noqa: BLE001 - nbformat raises JSON, validation and version errors
        raise NotebookError(f"is not a notebook nbformat can read: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(nb.get("cells"), list):
        raise NotebookError("is not a notebook: it has no cells")
    return nb


def parameters_cell(nb: Any) -> str | None:
    """The source of the first code cell tagged ``parameters`` (None: there is none)."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and "parameters" in (cell.get("metadata", {}).get("tags") or ()):
            return cell.get("source") or ""
    return None


def type_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    return None


def declared(source: str | None) -> dict[str, Declared]:
    """The names the parameters cell assigns (``x = 1``, ``x: int = 1``), in order."""
    if not source:
        return {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[str, Declared] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            continue
        try:
            literal = ast.literal_eval(value)
            kind = type_of(literal)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            kind = None
        found[name] = Declared(name, kind, ast.get_source_segment(source, value) or "")
    return found


def _check_value(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be a parameter (None: it can)."""
    kind = type_of(value)
    if kind is None:
        return "must be a number, true/false, a string or a list of those"
    if kind == "float" and not math.isfinite(value):
        return "must be a finite number"
    if kind == "str" and len(value) > MAX_STR:
        return f"is longer than {MAX_STR} characters"
    if kind == "list":
        if depth > 0:
            return "must be a list of numbers, true/false or strings (no nested lists)"
        if len(value) > MAX_LIST:
            return f"has more than {MAX_LIST} items"
        for item in value:
            why = _check_value(item, depth + 1)
            if why:
                return f"item {shown_item(item)}: {why}"
    return None


def shown_item(value: Any) -> str:
    text = json.dumps(value)[:40]
    return text


def check_parameters(raw: Any, cell: Mapping[str, Declared]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """(the parameters, errors ``parameters.NAME`` → message, warnings) for ``raw`` (the
    submitted JSON object) against the notebook's parameters ``cell``."""
    errors: dict[str, str] = {}
    warnings: list[str] = []
    if raw in (None, ""):
        return {}, errors, warnings
    if not isinstance(raw, Mapping):
        return {}, {"parameters": "must be a JSON object of name → value"}, warnings
    if len(raw) > MAX_PARAMETERS:
        return {}, {"parameters": f"at most {MAX_PARAMETERS} parameters"}, warnings
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or len(name) > 100:
            errors[f"parameters.{str(name)[:100]}"] = "is not a Python variable name"
            continue
        key = f"parameters.{name}"
        why = _check_value(value)
        if why:
            errors[key] = why
            continue
        d = cell.get(name)
        if d is None:
            warnings.append(f"parameter {name!r} is not in the notebook's parameters cell; it is injected all the same")
        elif d.type is not None and d.type != type_of(value) and not (d.type == "float" and type_of(value) == "int"):
            errors[key] = f"must be of type {d.type} (the notebook's default is {d.default[:60]}), got {type_of(value)}"
            continue
        values[name] = float(value) if d is not None and d.type == "float" and type_of(value) == "int" else value
    return values, errors, warnings


def parameters_json(values: Mapping[str, Any]) -> bytes:
    """The parameters file papermill reads (``-f``: YAML, of which JSON is a subset)."""
    return json.dumps(dict(values), ensure_ascii=True, sort_keys=True).encode()

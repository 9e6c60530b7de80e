"""PURE: a submitted run (REST multipart or JSON) → a checked `Draft`, through the SAME
validation as the spawn form (`gridspawner.request.build_request`: every option checked
against what the admin allows the user), plus the run's own fields: the notebook, its
parameters (`params`), parameter → mount bindings and the name. Every problem is collected
into one ``{field: message}`` (`OptionsError`), and nothing is started on an error.

A parameter bound to a mount gets the mount's path as the run sees it: relative to the
run's work directory, ``<data_dir>/<target>`` plus the binding's sub-path.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..backends import backend_class
from ..catalog_values import Catalog
from ..request import LaunchRequest, build_request
from ..vocabulary import OptionsError
from . import params

#: the longest run name, and what it may hold (printable, one line)
MAX_NAME = 200
_SUBPATH = re.compile(r"[A-Za-z0-9._@+=, -]+(/[A-Za-z0-9._@+=, -]+)*")


@dataclass(frozen=True)
class Draft:
    """A run ready to queue: the validated request (no secret), the notebook, parameters
    with the bound ones already set to their paths, and what the user sent (options
    with typed secrets, to resolve the mounts once more at start time)."""

    name: str
    notebook: bytes = field(repr=False)
    request: LaunchRequest
    parameters: dict
    bindings: dict
    warnings: tuple[str, ...]
    options: Any = field(repr=False)


def _loads(value: Any, key: str, errors: dict) -> Any:
    if value is None or isinstance(value, (dict, list)):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        errors[key] = f"is not valid JSON: {e}"
        return None


def notebook_bytes(value: Any, errors: dict, max_bytes: int) -> bytes | None:
    """The notebook: bytes (an uploaded file) or base64 text (a JSON body)."""
    if value is None or value == b"" or value == "":
        errors["notebook"] = "is required: the .ipynb file to run"
        return None
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            errors["notebook"] = "must be the notebook file, base64-encoded in a JSON body"
            return None
    if not isinstance(value, bytes):
        errors["notebook"] = "must be the notebook file"
        return None
    if len(value) > max_bytes:
        errors["notebook"] = f"is larger than {max_bytes // (1024 * 1024)} MB"
        return None
    return value


def check_name(value: Any, errors: dict) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not value.isprintable() or len(value) > MAX_NAME:
        errors["name"] = f"must be one line of at most {MAX_NAME} printable characters"
        return ""
    return value.strip()


def check_bindings(raw: Any, request: LaunchRequest | None, names: Iterable[str], data_dir: str,
                   errors: dict) -> tuple[dict, dict]:
    """(bindings as stored, parameter → path) for ``raw``: ``{param: {"mount": i, "path": sub}}``
    (or ``{param: i}``); each parameter must be a Python name, each mount one of the request's."""
    if raw in (None, {}, ""):
        return {}, {}
    if not isinstance(raw, Mapping):
        errors["bindings"] = 'must be a JSON object: parameter → {"mount": index, "path": "sub/path"}'
        return {}, {}
    mounts = tuple(request.mounts) if request is not None else ()
    stored: dict = {}
    paths: dict = {}
    for name, spec in raw.items():
        key = f"bindings.{str(name)[:100]}"
        if not isinstance(name, str) or not name.isidentifier():
            errors[key] = "is not a Python variable name"
            continue
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = {"mount": spec}
        if not isinstance(spec, Mapping) or set(spec) - {"mount", "path"}:
            errors[key] = 'must be {"mount": index, "path": "sub/path"}'
            continue
        index, sub = spec.get("mount"), spec.get("path") or ""
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(mounts):
            errors[key] = (f"mount must be the index of one of the run's {len(mounts)} data mounts" if mounts
                           else "the run has no data mounts to bind to")
            continue
        if not isinstance(sub, str) or (sub and (not _SUBPATH.fullmatch(sub) or ".." in sub.split("/")
                                                 or "." in sub.split("/"))):
            errors[key] = "path must be a relative path inside the mount (no '..', no leading '/')"
            continue
        stored[name] = {"mount": index, "path": sub}
        paths[name] = posixpath.join(data_dir, mounts[index].target, sub) if sub else posixpath.join(
            data_dir, mounts[index].target)
    return stored, paths


def build_draft(form: Mapping[str, Any], catalog: Catalog, groups: Iterable[str], username: str, *,
                max_bytes: int = 16 * 1024 * 1024) -> Draft:
    """Check a submitted run (``form``: notebook, options, parameters, bindings, name — JSON
    text or already-parsed values). Raises OptionsError with every problem: the option
    fields as the spawn form names them, ``notebook``, ``parameters.NAME``,
    ``bindings.NAME``, ``name``."""
    errors: dict[str, str] = {}
    unknown = sorted(set(form) - {"notebook", "options", "parameters", "bindings", "name"})
    for key in unknown:
        errors[str(key)[:60]] = "unknown field; expected notebook, options, parameters, bindings, name"
    name = check_name(form.get("name"), errors)
    nb_bytes = notebook_bytes(form.get("notebook"), errors, max_bytes)
    cell: dict = {}
    if nb_bytes is not None:
        try:
            cell = params.declared(params.parameters_cell(params.read_notebook(nb_bytes)))
        except params.NotebookError as e:
            errors["notebook"] = str(e)
    options = _loads(form.get("options"), "options", errors)
    raw_params = _loads(form.get("parameters"), "parameters", errors)
    raw_bindings = _loads(form.get("bindings"), "bindings", errors)
    request = None
    try:
        request = build_request(options if options is not None else {}, catalog, groups, username=username)
    except OptionsError as e:
        errors.update(e.errors)
    if request is not None and request.mounts:
        # a kind whose servers take no data mounts (Slurm) refuses them here, not at the start
        problem = backend_class(request.backend_kind).mounts_problem(catalog.backends[request.backend].settings)
        if problem:
            errors["mounts"] = problem
    values, perrors, warnings = params.check_parameters(raw_params, cell)
    errors.update(perrors)
    data_dir = getattr(catalog.storage, "data_dir", None) or "data"
    bindings, paths = check_bindings(raw_bindings, request, values, data_dir, errors)
    for pname in paths:
        if pname in values:
            errors[f"parameters.{pname}"] = "is bound to a data mount (bindings): give it no value"
        elif pname not in cell:
            warnings.append(f"parameter {pname!r} is not in the notebook's parameters cell; it is injected all the same")
    if errors:
        raise OptionsError(errors)
    return Draft(name=name or "", notebook=nb_bytes, request=request, parameters={**values, **paths},
                 bindings=bindings, warnings=tuple(warnings), options=options or {})

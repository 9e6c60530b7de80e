"""The parts of the catalog that refer to other parts: policies and profiles name backends
and images, profile values must be among the offered choices. Checked per entry and per
value, so `gridspawner.catalog.build_catalog` reports every wrong one; a reference to an
entry that is wrong itself is not reported again (`Known`).
"""

from __future__ import annotations

from typing import Any, Mapping

from .catalog import (
    PROFILE_VALUE_FIELDS,
    CatalogError,
    Known,
    Policy,
    Profile,
    _check_keys,
    _check_name,
    _frozen,
    _int,
    _Problems,
    _require_dict,
    gpu_type_memory_problem,
    parse_duration,
)


def _name_set(value: Any, key: str, known: Known, what: str) -> frozenset[str] | None:
    if value is None or value == "*":
        return None
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise CatalogError(key, f"must be a list of {what} names or '*' (got {value!r})")
    for v in value:
        if not isinstance(v, str) or not known.knows(v):
            raise CatalogError(key, f"unknown {what} {v!r}; known: {', '.join(known.names()) or '(none)'}")
    return frozenset(value)


_POLICY_KEYS = ("backends", "images", "max_gpus", "free_choice")


def parse_policy(raw: Any, key: str, backends: Known, images: Known, max_gpus: int) -> Policy:
    raw = _require_dict(raw, key)
    _check_keys(raw, _POLICY_KEYS, key)
    limit = _int(raw.get("max_gpus", max_gpus), f"{key}['max_gpus']")
    free = raw.get("free_choice", True)
    if not isinstance(free, bool):
        raise CatalogError(f"{key}['free_choice']", "must be True or False")
    return Policy(
        backends=_name_set(raw.get("backends", "*"), f"{key}['backends']", backends, "backend"),
        images=_name_set(raw.get("images", "*"), f"{key}['images']", images, "image"),
        max_gpus=min(limit, max_gpus),
        free_choice=free,
    )


_PROFILE_KEYS = ("display_name", "description", "groups", "values", "changeable", "max_gpus", "max_runtime")


def parse_profiles(raw: Any, cat: dict, problems: _Problems) -> dict[str, Profile]:
    raw = _require_dict(raw, "c.GridSpawner.profiles")
    out = {}
    for name, conf in raw.items():
        with problems.collect():
            out[name] = parse_profile(name, conf, f"c.GridSpawner.profiles[{name!r}]", cat, problems)
    return out


def parse_profile(name: Any, conf: Any, key: str, cat: dict, problems: _Problems) -> Profile:
    _check_name(name, key)
    conf = _require_dict(conf, key)
    _check_keys(conf, _PROFILE_KEYS, key)
    values = _require_dict(conf.get("values", {}), f"{key}['values']")
    _check_keys(values, PROFILE_VALUE_FIELDS, f"{key}['values']")
    changeable = conf.get("changeable", [])
    with problems.collect():
        if not isinstance(changeable, (list, tuple)) or any(f not in PROFILE_VALUE_FIELDS for f in changeable):
            raise CatalogError(
                f"{key}['changeable']", f"must be a list of field names from: {', '.join(PROFILE_VALUE_FIELDS)}"
            )
    groups = conf.get("groups", [])
    with problems.collect():
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) for g in groups):
            raise CatalogError(f"{key}['groups']", "must be a list of JupyterHub group names")
    max_gpus = conf.get("max_gpus")
    with problems.collect():
        if max_gpus is not None:
            max_gpus = min(_int(max_gpus, f"{key}['max_gpus']"), cat["max_gpus"])
    if not isinstance(max_gpus, (int, type(None))):
        max_gpus = None
    check_profile_values(values, f"{key}['values']", cat, max_gpus, problems)
    for k in ("display_name", "description"):
        with problems.collect():
            if not isinstance(conf.get(k, ""), str):
                raise CatalogError(f"{key}['{k}']", "must be a string")
    max_runtime = None
    with problems.collect():
        max_runtime = parse_duration(conf.get("max_runtime"), f"{key}['max_runtime']")
    return Profile(
        key=name,
        display_name=conf.get("display_name", name),
        description=conf.get("description", ""),
        groups=frozenset(groups) if isinstance(groups, (list, tuple)) else frozenset(),
        values=_frozen(values),
        changeable=frozenset(changeable) if isinstance(changeable, (list, tuple)) else frozenset(),
        max_gpus=max_gpus,
        max_runtime=max_runtime,
    )


def check_profile_values(values: Mapping, key: str, cat: dict, max_gpus: int | None, problems: _Problems) -> None:
    # Types are checked as strictly as build_request checks a user's values, so a preset the
    # catalog accepts can never fail at spawn time (16.0 or True would be refused there).
    # Each value is checked on its own (every wrong one is reported); a check that needs a
    # backend or image whose own entry is wrong is skipped (that entry is reported already).
    backends, images = cat["backends"], cat["images"]
    backend = values.get("backend")
    with problems.collect():
        if "backend" in values and (not isinstance(backend, str) or not backends.knows(backend)):
            raise CatalogError(f"{key}['backend']", f"unknown backend {backend!r}")
    image = values.get("image")
    with problems.collect():
        if "image" in values:
            if not isinstance(image, str) or not images.knows(image):
                raise CatalogError(f"{key}['image']", f"unknown image {image!r}")
            if backends.usable(backend) and images.usable(image) and not images.parsed[image].runs_on(
                backends.parsed[backend].kind
            ):
                raise CatalogError(f"{key}['image']", f"image {image!r} has nothing to run on backend {backend!r}")
    with problems.collect():
        if "gpus" in values:
            limit = cat["max_gpus"] if max_gpus is None else max_gpus
            gpus = _int(values["gpus"], f"{key}['gpus']")
            if gpus > limit:
                raise CatalogError(f"{key}['gpus']", f"is above the maximum of {limit}")
    for field, attr, noun in (("gpu_type", "gpu_types", "GPU type"), ("host", "host_choices", "host")):
        if field not in values or ("backend" in values and not backends.usable(backend)):
            continue  # no choice, or its backend is reported already
        with problems.collect():
            check_preset_choice(values[field], backend, key, backends, field, attr, noun)
    gpu_memory = values.get("gpu_memory", 0)
    classes = cat["gpu_memory_classes"]
    with problems.collect():
        if classes is not None and (
            isinstance(gpu_memory, bool) or not isinstance(gpu_memory, int) or gpu_memory not in classes
        ):
            raise CatalogError(f"{key}['gpu_memory']", f"must be one of the gpu_memory_classes {list(classes)}")
    with problems.collect():
        # a preset that could never start (with any GPU count) is refused now
        if backends.usable(backend) and isinstance(gpu_memory, int) and not isinstance(gpu_memory, bool):
            problem = gpu_type_memory_problem(backends.parsed[backend], values.get("gpu_type"), gpu_memory)
            if problem:
                raise CatalogError(f"{key}['gpu_memory']", problem)
    for f, choices, types in (("cpu", "cpu_choices", (int, float)), ("memory", "memory_choices", (int,))):
        v = values.get(f)
        with problems.collect():
            if cat[choices] is not None and v is not None and (
                isinstance(v, bool) or not isinstance(v, types) or v not in cat[choices]
            ):
                raise CatalogError(f"{key}['{f}']", f"must be one of {choices} {list(cat[choices])}")


def check_preset_choice(value: Any, backend: Any, key: str, backends: Known, field: str, attr: str, noun: str) -> None:
    """A preset's per-backend choice (``gpu_type``, ``host``): offered by the backend the
    preset also fixes, so a preset can never fail at spawn time. None = no choice."""
    if value is None:
        return
    if not isinstance(value, str):
        raise CatalogError(f"{key}['{field}']", f"must be a {noun} name (got {value!r})")
    if backend is None:
        raise CatalogError(f"{key}['{field}']", f"needs 'backend' set alongside it: {noun}s are offered per backend")
    offered = getattr(backends.parsed[backend], attr)
    if value not in offered:
        raise CatalogError(
            f"{key}['{field}']",
            f"backend {backend!r} offers no {noun} {value!r}"
            + (f"; it offers: {', '.join(offered)}" if offered else f" (it offers no {noun} choice)"),
        )

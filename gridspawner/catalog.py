"""The catalog: what the admin offers, validated once, as frozen values.

`build_catalog` turns the raw trait values of `GridSpawner` into a `Catalog`. Any mistake
raises `CatalogError` naming the config key (``c.GridSpawner.backends['gpu'].kind``), so a
bad config stops the hub at start-up instead of surprising a user at spawn time.
"""

from __future__ import annotations

import math
from typing import Any

from .backends import backend_class, known_kinds
from .catalog_presets import Known, check_profile_values, parse_policy, parse_profiles
from .catalog_values import BackendConfig, Catalog, ImageConfig, Policy, Profile, gpu_type_memory_problem
from .fields import PRESET_NAMES
from .mounts.config import parse_storage
from .vocabulary import (
    CatalogError,
    CatalogErrors,
    Problems,
    check_keys,
    check_name,
    frozen,
    parse_duration,
    require_dict,
    require_int,
)

__all__ = [
    "BackendConfig",
    "Catalog",
    "CatalogError",
    "CatalogErrors",
    "ImageConfig",
    "Policy",
    "Profile",
    "build_catalog",
    "gpu_type_memory_problem",
    "parse_duration",
]


# --------------------------------------------------------------------------- parsing


def _number_list(value: Any, key: str, *, integers: bool) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise CatalogError(key, f"must be a list of numbers (got {type(value).__name__})")
    out = []
    for i, v in enumerate(value):
        ok_types = (int,) if integers else (int, float)
        if isinstance(v, bool) or not isinstance(v, ok_types) or not math.isfinite(v) or v < 0:
            kind = "integers" if integers else "numbers"
            raise CatalogError(f"{key}[{i}]", f"must be non-negative {kind} (got {v!r})")
        out.append(v)
    if len(set(out)) != len(out):
        raise CatalogError(key, "contains duplicates")
    return tuple(sorted(out))


def _parse_backends(raw: Any, problems: Problems) -> Known:
    raw = require_dict(raw, "c.GridSpawner.backends")
    if not raw:
        raise CatalogError("c.GridSpawner.backends", "at least one backend must be configured")
    out, broken = {}, []
    for name, conf in raw.items():
        key = f"c.GridSpawner.backends[{name!r}]"
        broken.append(name)
        with problems.collect():
            out[name] = _parse_backend(name, conf, key)
            broken.pop()
    return Known(out, broken)


def _parse_backend(name: Any, conf: Any, key: str) -> BackendConfig:
    check_name(name, key)
    conf = require_dict(conf, key)
    kind = conf.get("kind")
    if kind not in known_kinds():
        raise CatalogError(f"{key}.kind", f"must be one of {', '.join(known_kinds())} (got {kind!r})")
    cls = backend_class(kind, f"{key}.kind")
    display = conf.get("display_name", name)
    desc = conf.get("description", "")
    for k, v in (("display_name", display), ("description", desc)):
        if not isinstance(v, str):
            raise CatalogError(f"{key}.{k}", "must be a string")
    own = {k: v for k, v in conf.items() if k not in ("kind", "display_name", "description")}
    settings = cls.parse_settings(name, own, key)
    gpu_types = {str(k): str(v) for k, v in (cls.gpu_type_choices(settings) or {}).items()}
    hosts = {str(k): str(v) for k, v in (cls.host_choices(settings) or {}).items()}
    sizes = {str(k): int(v) for k, v in (cls.gpu_type_memory(settings) or {}).items() if k in gpu_types}
    ref_problem = cls.image_ref_problem(settings)
    return BackendConfig(name, kind, display, desc, settings, frozen(gpu_types), frozen(hosts),
                         cls.resource_limits(settings), frozen(sizes), ref_problem,
                         cls.parse_image if ref_problem is None else None)


def _parse_images(raw: Any, problems: Problems) -> Known:
    raw = require_dict(raw, "c.GridSpawner.images")
    if not raw:
        raise CatalogError("c.GridSpawner.images", "at least one image/environment must be configured")
    out, broken = {}, []
    for img, conf in raw.items():
        broken.append(img)
        with problems.collect():
            out[img] = _parse_image(img, conf, f"c.GridSpawner.images[{img!r}]")
            broken.pop()
    return Known(out, broken)


def _parse_image(img: Any, conf: Any, key: str) -> ImageConfig:
    check_name(img, key)
    conf = require_dict(conf, key)
    check_keys(conf, ("display_name", "description", *known_kinds()), key)
    per_kind = {}
    for kind in known_kinds():
        if kind in conf:
            per_kind[kind] = backend_class(kind, f"{key}[{kind!r}]").parse_image(
                img, require_dict(conf[kind], f"{key}[{kind!r}]"), f"{key}[{kind!r}]"
            )
    if not per_kind:
        raise CatalogError(key, f"says what to run on no backend kind; add one of: {', '.join(known_kinds())}")
    display = conf.get("display_name", img)
    desc = conf.get("description", "")
    for k, v in (("display_name", display), ("description", desc)):
        if not isinstance(v, str):
            raise CatalogError(f"{key}[{k!r}]", "must be a string")
    return ImageConfig(img, display, desc, frozen(per_kind))


#: stands in for a max_gpus that is itself wrong (reported), so no limit check reports more
_ANY_COUNT = 10**6


def build_catalog(
    *,
    backends: Any,
    images: Any,
    max_gpus: Any = 8,
    gpu_memory_classes: Any = (0, 16, 24, 40, 80),
    cpu_choices: Any = (),
    memory_choices: Any = (),
    group_policy: Any = None,
    default_policy: Any = None,
    profiles: Any = None,
    default_options: Any = None,
    gpu_memory_tolerance: Any = 0.07,
    max_runtime: Any = None,
    storage: Any = None,
) -> Catalog:
    """Validate the admin's settings and return the frozen catalog.

    Every setting is checked, whatever else is wrong: one wrong key raises its CatalogError,
    several raise CatalogErrors listing each (a value that only a wrong entry makes
    invalid — a profile naming a backend whose own entry is wrong — is not reported twice)."""
    problems = Problems()
    cat: dict[str, Any] = {"max_gpus": _ANY_COUNT, "backends": Known({}, section_failed=True),
                           "images": Known({}, section_failed=True), "gpu_memory_classes": None,
                           "cpu_choices": None, "memory_choices": None}
    with problems.collect():
        cat["max_gpus"] = require_int(max_gpus, "c.GridSpawner.max_gpus")
    with problems.collect():
        cat["backends"] = _parse_backends(backends, problems)
    with problems.collect():
        cat["images"] = _parse_images(images, problems)
    with problems.collect():
        classes = _number_list(gpu_memory_classes, "c.GridSpawner.gpu_memory_classes", integers=True)
        cat["gpu_memory_classes"] = classes if 0 in classes else (0, *classes)
    with problems.collect():
        cat["cpu_choices"] = _number_list(cpu_choices, "c.GridSpawner.cpu_choices", integers=False)
    with problems.collect():
        cat["memory_choices"] = _number_list(memory_choices, "c.GridSpawner.memory_choices", integers=True)
    with problems.collect():
        if isinstance(gpu_memory_tolerance, bool) or not isinstance(gpu_memory_tolerance, (int, float)) or not (
            0 <= gpu_memory_tolerance < 0.5
        ):
            raise CatalogError("c.GridSpawner.gpu_memory_tolerance", "must be a fraction between 0 and 0.5, e.g. 0.07")
        cat["gpu_memory_tolerance"] = float(gpu_memory_tolerance)
    backends_known, images_known = cat["backends"], cat["images"]
    if backends_known.complete:  # a wrong backend entry may be the kind an image is for
        for img in images_known.parsed.values():
            with problems.collect():
                if not any(img.runs_on(b.kind) for b in backends_known.parsed.values()):
                    raise CatalogError(f"c.GridSpawner.images[{img.key!r}]", "runs on none of the configured backends' kinds")

    cat["group_policy"] = {}
    with problems.collect():
        for g, p in require_dict(group_policy or {}, "c.GridSpawner.group_policy").items():
            with problems.collect():
                cat["group_policy"][g] = parse_policy(
                    p, f"c.GridSpawner.group_policy[{g!r}]", backends_known, images_known, cat["max_gpus"]
                )
    cat["group_policy"] = frozen(cat["group_policy"])
    with problems.collect():
        cat["default_policy"] = parse_policy(
            default_policy if default_policy is not None else {},
            "c.GridSpawner.default_policy",
            backends_known,
            images_known,
            cat["max_gpus"],
        )
    cat["profiles"] = {}
    with problems.collect():
        cat["profiles"] = parse_profiles(profiles or {}, cat, problems)
    cat["profiles"] = frozen(cat["profiles"])

    cat["defaults"] = frozen({})
    with problems.collect():
        defaults = require_dict(default_options or {}, "c.GridSpawner.default_options")
        check_keys(defaults, PRESET_NAMES, "c.GridSpawner.default_options")
        check_profile_values(defaults, "c.GridSpawner.default_options", cat, None, problems)
        cat["defaults"] = frozen(defaults)
    with problems.collect():
        cat["max_runtime"] = parse_duration(max_runtime, "c.GridSpawner.max_runtime")
    with problems.collect():
        cat["storage"] = parse_storage(storage or None)
    problems.raise_any()
    cat["backends"] = frozen(backends_known.parsed)
    cat["images"] = frozen(images_known.parsed)
    return Catalog(**cat)

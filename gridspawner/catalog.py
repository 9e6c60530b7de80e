"""The catalog: what the admin offers, validated once, as frozen values.

`build_catalog` turns the raw trait values of `GridSpawner` into a `Catalog`. Any mistake
raises `CatalogError` naming the config key (``c.GridSpawner.backends['gpu'].kind``), so a
bad config stops the hub at start-up instead of surprising a user at spawn time.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping

from .backends import backend_class, known_kinds

#: Option fields a user may set (form field names == REST user_options keys).
FIELDS = ("backend", "image", "gpus", "gpu_memory", "gpu_type", "host", "cpu", "memory", "mounts")

#: Keys allowed in one profile's ``values``.
PROFILE_VALUE_FIELDS = ("backend", "image", "gpus", "gpu_memory", "gpu_type", "host", "cpu", "memory")

_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class CatalogError(ValueError):
    """A bad admin setting. ``key`` names it the way it is written in jupyterhub_config.py."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class CatalogErrors(CatalogError):
    """Several bad settings, found in one pass: ``errors`` holds one `CatalogError` per key
    (in config order). ``key``/``message`` are the first one's, so a caller that handles a
    single CatalogError still names a real key; ``str()`` lists them all, one a line."""

    def __init__(self, errors: Iterable[CatalogError]):
        self.errors = tuple(errors)
        self.key, self.message = self.errors[0].key, self.errors[0].message
        lines = "\n".join(f"  {e}" for e in self.errors)
        ValueError.__init__(self, f"{len(self.errors)} settings are wrong:\n{lines}")


class _Problems:
    """Collects CatalogErrors so that one pass over the config reports every bad key."""

    def __init__(self) -> None:
        self.errors: list[CatalogError] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run the block; a CatalogError it raises is recorded instead of propagated."""
        try:
            yield
        except CatalogErrors as e:
            self.errors.extend(e.errors)
        except CatalogError as e:
            self.errors.append(e)

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise CatalogErrors(self.errors)


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class BackendConfig:
    """One backend the admin offers: its name, kind and the kind's parsed settings.

    ``gpu_types``: the GPU types a user may pick there (key → display text), from the kind's
    ``gpu_type_choices``; empty when the backend offers no such choice.

    ``host_choices``: the hosts a user may pick there (host name → display text), from the
    kind's ``host_choices``; empty when the backend places servers itself.

    ``resource_limits``: whether the user's ``cpu`` / ``memory`` choices are enforced there
    (``all``, ``some`` hosts, ``none``), from the kind's ``resource_limits``.

    ``gpu_type_memory``: GB per GPU of the GPU types whose size the settings fix (MIG
    profiles), from the kind's ``gpu_type_memory``; see `gpu_type_memory_problem`."""

    name: str
    kind: str
    display_name: str
    description: str
    settings: Any
    gpu_types: Mapping[str, str] = field(default_factory=dict)
    host_choices: Mapping[str, str] = field(default_factory=dict)
    resource_limits: str = "all"
    gpu_type_memory: Mapping[str, int] = field(default_factory=dict)


def gpu_type_memory_problem(backend: BackendConfig, gpu_type: str | None, gpu_memory: int) -> str | None:
    """The one rule for a GPU type of fixed size (a MIG slice) and the minimum VRAM asked
    for: the slice must have at least that much. A user-facing message, or None when they go
    together (or the type's size is not known from the settings: products are matched by
    the cluster's node labels). Used by request validation and by the profile checks."""
    have = backend.gpu_type_memory.get(gpu_type) if gpu_type else None
    if have is None or not gpu_memory or have >= gpu_memory:
        return None
    name = backend.gpu_types.get(gpu_type, gpu_type)
    return f"the GPU type {name!r} has {have} GB per GPU, less than the {gpu_memory} GB asked for; ask for at most {have} GB or choose another GPU type"


@dataclass(frozen=True)
class ImageConfig:
    """One image/environment; ``per_kind`` maps a backend kind to what to run there."""

    key: str
    display_name: str
    description: str
    per_kind: Mapping[str, Any]

    def runs_on(self, kind: str) -> bool:
        return kind in self.per_kind


@dataclass(frozen=True)
class Policy:
    """What a set of users may choose. ``None`` for backends/images means "all of them"."""

    backends: frozenset[str] | None
    images: frozenset[str] | None
    max_gpus: int
    free_choice: bool

    def allows_backend(self, name: str) -> bool:
        return self.backends is None or name in self.backends

    def allows_image(self, key: str) -> bool:
        return self.images is None or key in self.images

    def union(self, other: Policy) -> Policy:
        def join(a, b):
            return None if a is None or b is None else a | b

        return Policy(
            backends=join(self.backends, other.backends),
            images=join(self.images, other.images),
            max_gpus=max(self.max_gpus, other.max_gpus),
            free_choice=self.free_choice or other.free_choice,
        )


@dataclass(frozen=True)
class Profile:
    """An admin preset: values it sets, which of them the user may still change."""

    key: str
    display_name: str
    description: str
    groups: frozenset[str]
    values: Mapping[str, Any]
    changeable: frozenset[str]
    max_gpus: int | None
    max_runtime: float | None  # seconds

    def visible_to(self, groups: Iterable[str]) -> bool:
        return not self.groups or bool(self.groups & set(groups))


@dataclass(frozen=True)
class Catalog:
    backends: Mapping[str, BackendConfig]
    images: Mapping[str, ImageConfig]
    max_gpus: int
    gpu_memory_classes: tuple[int, ...]
    cpu_choices: tuple[float, ...]
    memory_choices: tuple[int, ...]
    group_policy: Mapping[str, Policy]
    default_policy: Policy
    profiles: Mapping[str, Profile]
    defaults: Mapping[str, Any]
    gpu_memory_tolerance: float
    max_runtime: float | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: data mounts (`gridspawner.mounts.config.StorageConfig`); empty = mounts disabled
    storage: Any = field(default_factory=lambda: _empty_storage())

    def policy_for(self, groups: Iterable[str]) -> Policy:
        """Union of the policies of the user's groups; the default policy if none apply."""
        mine = [self.group_policy[g] for g in sorted(set(groups)) if g in self.group_policy]
        if not mine:
            return self.default_policy
        policy = mine[0]
        for other in mine[1:]:
            policy = policy.union(other)
        return policy

    def profiles_for(self, groups: Iterable[str]) -> list[Profile]:
        groups = set(groups)
        return [p for p in self.profiles.values() if p.visible_to(groups)]


def _empty_storage():
    from .mounts.config import StorageConfig  # the mounts package imports CatalogError from here

    return StorageConfig()


# --------------------------------------------------------------------------- parsing


def parse_duration(value: Any, key: str) -> float | None:
    """``None``/0 → no limit; a number of seconds; or "90m", "8h", "2d"."""
    if value is None or value == 0 or value == "":
        return None
    if isinstance(value, bool):
        raise CatalogError(key, "must be a duration such as 3600, '90m', '8h' or '2d'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.fullmatch(value.strip())):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise CatalogError(key, f"must be a duration such as 3600, '90m', '8h' or '2d' (got {value!r})")
    if not (math.isfinite(seconds) and seconds > 0):
        raise CatalogError(key, f"must be positive and finite (got {value!r})")
    return seconds


def _require_dict(value: Any, key: str) -> dict:
    if not isinstance(value, Mapping):
        raise CatalogError(key, f"must be a dict (got {type(value).__name__})")
    return dict(value)


def _check_keys(raw: Mapping, allowed: Iterable[str], key: str) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise CatalogError(
            f"{key}[{unknown[0]!r}]",
            f"unknown setting; expected one of: {', '.join(sorted(allowed))}",
        )


def _check_name(name: Any, key: str) -> str:
    if not isinstance(name, str) or not _KEY_RE.fullmatch(name):
        raise CatalogError(
            key, f"names must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (got {name!r})"
        )
    return name


def _int(value: Any, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CatalogError(key, f"must be an integer >= {minimum} (got {value!r})")
    return value


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


class Known:
    """The names a section (backends, images) defines: those that parsed, and those whose
    entry was wrong (already reported). References to a broken name are not reported again,
    and checks that need the broken entry's settings are skipped. ``section_failed``: the
    whole section is unusable, so any name may be meant."""

    def __init__(self, parsed: Mapping[str, Any], broken: Iterable[Any] = (), section_failed: bool = False):
        self.parsed, self.broken, self.section_failed = parsed, tuple(broken), section_failed

    def names(self) -> list[str]:
        """Every name the section defines, in config order (names that are no string left out)."""
        return [*self.parsed, *(b for b in self.broken if isinstance(b, str) and b not in self.parsed)]

    def knows(self, name: Any) -> bool:
        return self.section_failed or isinstance(name, str) and (name in self.parsed or name in self.broken)

    def usable(self, name: Any) -> bool:
        """The name parsed: checks that need its settings can run."""
        return isinstance(name, str) and name in self.parsed

    @property
    def complete(self) -> bool:
        return not self.broken and not self.section_failed


def _parse_backends(raw: Any, problems: _Problems) -> Known:
    raw = _require_dict(raw, "c.GridSpawner.backends")
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
    _check_name(name, key)
    conf = _require_dict(conf, key)
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
    return BackendConfig(name, kind, display, desc, settings, _frozen(gpu_types), _frozen(hosts),
                         cls.resource_limits(settings), _frozen(sizes))


def _parse_images(raw: Any, problems: _Problems) -> Known:
    raw = _require_dict(raw, "c.GridSpawner.images")
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
    _check_name(img, key)
    conf = _require_dict(conf, key)
    _check_keys(conf, ("display_name", "description", *known_kinds()), key)
    per_kind = {}
    for kind in known_kinds():
        if kind in conf:
            per_kind[kind] = backend_class(kind, f"{key}[{kind!r}]").parse_image(
                img, _require_dict(conf[kind], f"{key}[{kind!r}]"), f"{key}[{kind!r}]"
            )
    if not per_kind:
        raise CatalogError(key, f"says what to run on no backend kind; add one of: {', '.join(known_kinds())}")
    display = conf.get("display_name", img)
    desc = conf.get("description", "")
    for k, v in (("display_name", display), ("description", desc)):
        if not isinstance(v, str):
            raise CatalogError(f"{key}[{k!r}]", "must be a string")
    return ImageConfig(img, display, desc, _frozen(per_kind))


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
    from .catalog_presets import check_profile_values, parse_policy, parse_profiles  # they import this module

    problems = _Problems()
    cat: dict[str, Any] = {"max_gpus": _ANY_COUNT, "backends": Known({}, section_failed=True),
                           "images": Known({}, section_failed=True), "gpu_memory_classes": None,
                           "cpu_choices": None, "memory_choices": None}
    with problems.collect():
        cat["max_gpus"] = _int(max_gpus, "c.GridSpawner.max_gpus")
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
        for g, p in _require_dict(group_policy or {}, "c.GridSpawner.group_policy").items():
            with problems.collect():
                cat["group_policy"][g] = parse_policy(
                    p, f"c.GridSpawner.group_policy[{g!r}]", backends_known, images_known, cat["max_gpus"]
                )
    cat["group_policy"] = _frozen(cat["group_policy"])
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
    cat["profiles"] = _frozen(cat["profiles"])

    cat["defaults"] = _frozen({})
    with problems.collect():
        defaults = _require_dict(default_options or {}, "c.GridSpawner.default_options")
        _check_keys(defaults, PROFILE_VALUE_FIELDS, "c.GridSpawner.default_options")
        check_profile_values(defaults, "c.GridSpawner.default_options", cat, None, problems)
        cat["defaults"] = _frozen(defaults)
    with problems.collect():
        cat["max_runtime"] = parse_duration(max_runtime, "c.GridSpawner.max_runtime")
    from .mounts.config import parse_storage

    with problems.collect():
        cat["storage"] = parse_storage(storage or None)
    problems.raise_any()
    cat["backends"] = _frozen(backends_known.parsed)
    cat["images"] = _frozen(images_known.parsed)
    return Catalog(**cat)

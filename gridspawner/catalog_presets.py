"""The parts of the catalog that refer to other parts: policies and profiles name backends
and images, profile values must be among the offered choices. Checked per entry and per
value, so `gridspawner.catalog.build_catalog` reports every wrong one; a reference to an
entry that is wrong itself is not reported again (`Known`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .catalog_values import Policy, Profile
from .field_rules import Preset
from .fields import FIELDS, PRESET_NAMES
from .vocabulary import (
    IMAGE_REF_PATTERN,
    CatalogError,
    Problems,
    check_keys,
    check_name,
    frozen,
    parse_duration,
    require_dict,
    require_int,
)


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


def _name_set(value: Any, key: str, known: Known, what: str) -> frozenset[str] | None:
    if value is None or value == "*":
        return None
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise CatalogError(key, f"must be a list of {what} names or '*' (got {value!r})")
    for v in value:
        if not isinstance(v, str) or not known.knows(v):
            raise CatalogError(key, f"unknown {what} {v!r}; known: {', '.join(known.names()) or '(none)'}")
    return frozenset(value)


POLICY_KEYS = ("backends", "images", "max_gpus", "free_choice", "image_refs")


def parse_policy(raw: Any, key: str, backends: Known, images: Known, max_gpus: int) -> Policy:
    raw = require_dict(raw, key)
    check_keys(raw, POLICY_KEYS, key)
    limit = require_int(raw.get("max_gpus", max_gpus), f"{key}['max_gpus']")
    free = raw.get("free_choice", True)
    if not isinstance(free, bool):
        raise CatalogError(f"{key}['free_choice']", "must be True or False")
    return Policy(
        backends=_name_set(raw.get("backends", "*"), f"{key}['backends']", backends, "backend"),
        images=_name_set(raw.get("images", "*"), f"{key}['images']", images, "image"),
        max_gpus=min(limit, max_gpus),
        free_choice=free,
        image_refs=_image_ref_patterns(raw.get("image_refs", []), f"{key}['image_refs']"),
    )


def _image_ref_patterns(value: Any, key: str) -> tuple[str, ...]:
    """The ``image_refs`` of a policy: a list of patterns (`IMAGE_REF_PATTERN`)."""
    if not isinstance(value, (list, tuple)):
        raise CatalogError(key, f"must be a list of image reference patterns such as 'registry.example.edu/*' (got {value!r})")
    for i, p in enumerate(value):
        if not isinstance(p, str) or not IMAGE_REF_PATTERN.fullmatch(p):
            raise CatalogError(f"{key}[{i}]", "must be an image reference pattern: letters, digits, '.', '_', '-', "
                                              f"'/', ':', '@' and the wildcards '*' and '?', starting with a letter or digit (got {p!r})")
    return tuple(value)


PROFILE_KEYS = ("display_name", "description", "groups", "values", "changeable", "max_gpus", "max_runtime")


def parse_profiles(raw: Any, cat: dict, problems: Problems) -> dict[str, Profile]:
    raw = require_dict(raw, "c.GridSpawner.profiles")
    out = {}
    for name, conf in raw.items():
        with problems.collect():
            out[name] = parse_profile(name, conf, f"c.GridSpawner.profiles[{name!r}]", cat, problems)
    return out


def parse_profile(name: Any, conf: Any, key: str, cat: dict, problems: Problems) -> Profile:
    check_name(name, key)
    conf = require_dict(conf, key)
    check_keys(conf, PROFILE_KEYS, key)
    values = require_dict(conf.get("values", {}), f"{key}['values']")
    check_keys(values, PRESET_NAMES, f"{key}['values']")
    changeable = conf.get("changeable", [])
    with problems.collect():
        if not isinstance(changeable, (list, tuple)) or any(f not in PRESET_NAMES for f in changeable):
            raise CatalogError(
                f"{key}['changeable']", f"must be a list of field names from: {', '.join(PRESET_NAMES)}"
            )
    groups = conf.get("groups", [])
    with problems.collect():
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) for g in groups):
            raise CatalogError(f"{key}['groups']", "must be a list of JupyterHub group names")
    max_gpus = conf.get("max_gpus")
    with problems.collect():
        if max_gpus is not None:
            max_gpus = min(require_int(max_gpus, f"{key}['max_gpus']"), cat["max_gpus"])
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
        values=frozen(values),
        changeable=frozenset(changeable) if isinstance(changeable, (list, tuple)) else frozenset(),
        max_gpus=max_gpus,
        max_runtime=max_runtime,
    )


def check_profile_values(values: Mapping, key: str, cat: dict, max_gpus: int | None, problems: Problems) -> None:
    """A preset's values (a profile's, or ``default_options``), each checked by its field's
    rule (`gridspawner.fields`) as strictly as a user's request is, so a preset the catalog
    accepts can never fail at spawn time (16.0 or True would be refused there). Every wrong
    value is reported; a check that needs a backend or image whose own entry is wrong is
    skipped (that entry is reported already)."""
    preset = Preset(values, key, cat, max_gpus)
    for f in FIELDS:
        if f.preset and f.name in values:
            with problems.collect():
                f.rule.check_preset(f.name, values[f.name], preset)

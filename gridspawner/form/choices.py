"""The profile choices of the spawn form: which one is selected, what each fixes, the values
shown and which fields appear. Mirrors what ``request.build_request`` accepts, so the form
offers what it will take."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..catalog import Catalog, Policy, Profile
from ..request import default_values, gpu_limit
from .view import FORM_FIELDS


@dataclass(slots=True)
class _Choice:
    """What one profile choice (or Custom) means for the fields, also sent to the script."""

    fixed: frozenset[str]
    values: dict[str, Any] = field(default_factory=dict)
    max_gpus: int = 0


def _chosen(policy: Policy, profiles: list[Profile], values: dict) -> Profile | None:
    """Which choice is selected: a profile, or None for Custom."""
    visible = {p.key: p for p in profiles}
    wanted = values.get("profile")
    if isinstance(wanted, str) and wanted in visible:
        return visible[wanted]
    if values and policy.free_choice:
        return None  # earlier options without (a valid) profile: Custom
    return profiles[0] if profiles else None


def _choices(catalog: Catalog, policy: Policy, profiles: list[Profile]) -> dict[str, _Choice]:
    """Custom ("", where the policy allows free choice) and every visible profile, by key."""
    choices: dict[str, _Choice] = {}
    if policy.free_choice:
        choices[""] = _Choice(frozenset(), {}, gpu_limit(catalog, policy, None))
    for p in profiles:
        choices[p.key] = _Choice(_fixed(p), dict(p.values), gpu_limit(catalog, policy, p))
    return choices


def _fixed(profile: Profile) -> frozenset[str]:
    return frozenset(f for f in profile.values if f not in profile.changeable)


def _profile_start(catalog: Catalog, policy: Policy, profile: Profile, base: dict) -> dict:
    """The values a profile starts from (mirrors request._starting_values)."""
    values = dict(base)
    values.update(profile.values)
    if "backend" in profile.values and "image" not in profile.values:
        images = policy.images
        backends = policy.backends
        if backends is not None:
            backends = backends | {profile.values["backend"]}
        values["image"] = default_values(
            catalog, Policy(backends, images, policy.max_gpus, policy.free_choice)
        ).get("image")
    return values


def _shown(catalog: Catalog, policy: Policy, chosen: Profile | None, choices: dict[str, _Choice], values: dict) -> dict:
    """The values shown: the defaults, the chosen profile's, then what was submitted where
    the chosen profile does not fix it."""
    base = default_values(catalog, policy)
    shown = _profile_start(catalog, policy, chosen, base) if chosen else dict(base)
    fixed_now = choices[chosen.key].fixed if chosen else frozenset()
    for f in FORM_FIELDS:
        if f in values and f not in fixed_now:
            shown[f] = values[f]
    return shown


def _rendered(
    catalog: Catalog, policy: Policy, choices: dict[str, _Choice], backend_names: list[str], nothing: bool
) -> set[str]:
    """Which fields appear."""
    if nothing:
        rendered: set[str] = set()
    elif policy.free_choice:
        rendered = set(FORM_FIELDS)
    else:
        rendered = {f for f in FORM_FIELDS if any(f not in c.fixed for c in choices.values())}
    if not catalog.cpu_choices:
        rendered.discard("cpu")
    if not catalog.memory_choices:
        rendered.discard("memory")
    if not any(catalog.backends[b].gpu_types for b in backend_names):
        rendered.discard("gpu_type")  # no backend on offer has a GPU type choice
    if not any(catalog.backends[b].host_choices for b in backend_names):
        rendered.discard("host")  # every backend on offer places servers itself
    return rendered

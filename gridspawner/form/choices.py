"""The profile choices of the spawn form: which one is selected, what each fixes, the values
shown and which fields appear. Built from what ``request.build_request`` accepts (its
starting values, its GPU limit), so the form offers what it will take."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..catalog_values import Catalog, Policy, Profile
from ..field_rules import BackendChoice, ListChoice
from ..fields import FIELD
from ..request import fit_defaults, starting_values
from .view import FORM_FIELDS


@dataclass(slots=True)
class Choice:
    """What one profile choice (or Custom) means for the fields, also sent to the script."""

    fixed: frozenset[str]
    values: dict[str, Any] = field(default_factory=dict)
    max_gpus: int = 0


def chosen_profile(policy: Policy, profiles: list[Profile], values: dict) -> Profile | None:
    """Which choice is selected: a profile, or None for Custom."""
    visible = {p.key: p for p in profiles}
    wanted = values.get("profile")
    if isinstance(wanted, str) and wanted in visible:
        return visible[wanted]
    if values and policy.free_choice:
        return None  # earlier options without (a valid) profile: Custom
    return profiles[0] if profiles else None


def profile_choices(catalog: Catalog, policy: Policy, profiles: list[Profile]) -> dict[str, Choice]:
    """Custom ("", where the policy allows free choice) and every visible profile, by key."""
    choices: dict[str, Choice] = {}
    if policy.free_choice:
        choices[""] = Choice(frozenset(), {}, catalog.gpu_limit(policy, None))
    for p in profiles:
        choices[p.key] = Choice(_fixed(p), dict(p.values), catalog.gpu_limit(policy, p))
    return choices


def _fixed(profile: Profile) -> frozenset[str]:
    return frozenset(f for f in profile.values if f not in profile.changeable)


def shown_values(catalog: Catalog, policy: Policy, chosen: Profile | None, choices: dict[str, Choice], values: dict) -> dict:
    """The values shown: where a request for the chosen profile starts, then what was
    submitted where the chosen profile does not fix it."""
    shown = starting_values(catalog, policy, chosen)
    fit_defaults(shown, {}, catalog, policy, chosen)
    fixed_now = choices[chosen.key].fixed if chosen else frozenset()
    for f in FORM_FIELDS:
        if f in values and f not in fixed_now:
            shown[f] = values[f]
    return shown


def rendered_fields(
    catalog: Catalog, policy: Policy, choices: dict[str, Choice], backend_names: list[str], nothing: bool
) -> set[str]:
    """Which fields appear: none when nothing is on offer; the ones some choice lets the
    user change; never a list the hub does not offer, nor a per-backend choice that no
    backend on offer has."""
    if nothing:
        return set()
    if policy.free_choice:
        rendered = set(FORM_FIELDS)
    else:
        rendered = {f for f in FORM_FIELDS if any(f not in c.fixed for c in choices.values())}
    for name in list(rendered):
        rule = FIELD[name].rule
        if isinstance(rule, ListChoice) and not rule.offered(catalog):
            rendered.discard(name)
        elif isinstance(rule, BackendChoice) and not any(rule.offered_by(catalog.backends[b]) for b in backend_names):
            rendered.discard(name)
    return rendered

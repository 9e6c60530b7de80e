"""From user_options to a validated, frozen LaunchRequest — pure functions, no I/O.

Every value a user sends (form or REST) is checked here against the catalog and against
what the user's groups (or the chosen profile) allow. All problems are collected and raised
together as one `OptionsError` mapping field → message, so the form can show each message
next to its field and the REST API can answer 400 with all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from .catalog_values import Catalog, Policy, Profile
from .field_rules import Checking
from .fields import CHOICE_NAMES, FIELDS, OPTION_NAMES, PRESET_NAMES
from .vocabulary import MAX_SHOWN, OptionsError, shown

__all__ = ["LaunchRequest", "OptionsError", "build_request", "default_values", "fit_defaults", "starting_values"]


@dataclass(frozen=True)
class LaunchRequest:
    """What the user asked for, fully validated. Backends never see raw user_options."""

    backend: str
    backend_kind: str
    image: str
    gpus: int
    gpu_memory: int  # minimum GB per GPU, 0 = any
    cpu: float | None = None
    memory: int | None = None  # GB
    profile: str | None = None
    max_runtime: float | None = None  # seconds
    #: validated data mounts (`gridspawner.mounts.specs.MountSpec`), in the user's order;
    #: no secrets (those travel apart, in memory only)
    mounts: tuple = ()
    #: what the image runs on this backend's kind: the kind's ``parse_image`` result
    image_settings: Any = None
    #: a GPU type the backend offers (its ``gpu_type_choices`` key); None = any GPU.
    #: Always None when gpus == 0.
    gpu_type: str | None = None
    #: a host the backend lets the user pick (its ``host_choices`` key); None = the backend
    #: places the server itself (best fit)
    host: str | None = None
    #: ``image`` is a reference the user typed (a custom image their policy's
    #: ``image_refs`` allow), not an image key; ``image_settings`` runs it as the kind's
    #: ``parse_image`` would run ``{"image": reference}``
    image_ref: bool = False
    #: the checked values of the registry's fields that have no attribute above
    #: (`gridspawner.fields`): a choice added to the registry reaches the backends here
    choices: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"backend={self.backend}"]
        if self.host:
            parts.append(f"host={self.host}")
        parts += [f"image={self.image}", f"gpus={self.gpus}"]
        if self.gpus and self.gpu_memory:
            parts.append(f"gpu_memory>={self.gpu_memory}GB")
        if self.gpus and self.gpu_type:
            parts.append(f"gpu_type={self.gpu_type}")
        if self.cpu:
            parts.append(f"cpu={self.cpu:g}")
        if self.memory:
            parts.append(f"memory={self.memory}GB")
        if self.profile:
            parts.append(f"profile={self.profile}")
        if self.mounts:
            parts.append(f"mounts={len(self.mounts)}")
        parts += [f"{k}={v}" for k, v in self.choices.items() if v is not None]
        return " ".join(parts)


#: the registry's fields LaunchRequest has an attribute for
_ATTRIBUTES = frozenset(f.name for f in fields(LaunchRequest))


def default_values(catalog: Catalog, policy: Policy) -> dict[str, Any]:
    """The values a form starts from / REST falls back to, restricted to what ``policy`` allows."""
    values: dict[str, Any] = {}
    for f in FIELDS:
        if f.preset:
            values[f.name] = f.rule.default(f.name, catalog, policy, values)
    return values


def starting_values(catalog: Catalog, policy: Policy, profile: Profile | None) -> dict[str, Any]:
    """Where a request (and the form) starts for ``profile`` (None: no profile): the
    defaults, then the profile's values. `fit_defaults` then matches the defaults to them."""
    values = default_values(catalog, policy)
    if profile is not None:
        values.update(profile.values)
    return values


def build_request(options: Any, catalog: Catalog, groups: Iterable[str], *, username: str = "") -> LaunchRequest:
    """Validate ``options`` (a user_options dict) for the user ``username`` in ``groups``.

    Missing keys take the profile's or the catalog's defaults. ``mounts`` rows are checked
    against ``catalog.storage`` for that user (bucket/path patterns may name ``{username}``);
    secret fields in them are validated but never kept in the result. Raises OptionsError
    (mount fields are named ``mounts[i].field``).
    """
    groups = list(groups)
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise OptionsError({"user_options": "must be an object of option fields"})

    errors: dict[str, str] = {}
    for key in options:
        if key not in OPTION_NAMES:
            name = key if isinstance(key, str) and key.isprintable() and len(key) <= MAX_SHOWN else shown(key)
            errors[str(name)] = f"unknown option; expected one of: profile, {', '.join(CHOICE_NAMES)}"

    policy = catalog.policy_for(groups)
    profile = _pick_profile(options.get("profile"), catalog, groups, policy, errors)
    if "profile" in errors:
        raise OptionsError(errors)

    values = starting_values(catalog, policy, profile)
    for f in PRESET_NAMES:
        if f not in options:
            continue
        if profile is not None and f not in profile.changeable and f in profile.values:
            if options[f] != profile.values[f]:
                errors[f] = f"is fixed to {shown(profile.values[f])} by the profile {profile.display_name!r}"
            continue
        values[f] = options[f]
    fit_defaults(values, options, catalog, policy, profile)

    c = Checking(catalog, policy, profile, options, values, groups, username, errors)
    for f in FIELDS:
        if f.name != "profile":
            c.checked[f.name] = f.rule.check(f.name, f.rule.value_to_check(f.name, c), c)
    if errors:
        raise OptionsError(errors)

    checked = c.checked
    backend, image = checked.pop("backend"), checked.pop("image")
    conf = catalog.backends[backend]
    kind = conf.kind
    max_runtime = profile.max_runtime if profile and profile.max_runtime else catalog.max_runtime
    image_ref = image not in catalog.images  # checked: a reference the policy allows
    return LaunchRequest(
        backend=backend,
        backend_kind=kind,
        image=image,
        image_ref=image_ref,
        profile=profile.key if profile else None,
        max_runtime=max_runtime,
        image_settings=(conf.parse_image_ref(image, {"image": image}, "image") if image_ref
                        else catalog.images[image].per_kind.get(kind)),
        choices=MappingProxyType({k: v for k, v in checked.items() if k not in _ATTRIBUTES}),
        **{k: v for k, v in checked.items() if k in _ATTRIBUTES},
    )


def _pick_profile(value: Any, catalog: Catalog, groups: list[str], policy: Policy, errors: dict) -> Profile | None:
    visible = {p.key: p for p in catalog.profiles_for(groups)}
    if value in (None, ""):
        if not policy.free_choice:
            if visible:
                errors["profile"] = f"choose one of the profiles offered to you: {', '.join(visible)}"
            else:
                errors["profile"] = "no server options are available to you; ask the hub admin"
        return None
    if not isinstance(value, str):
        errors["profile"] = f"must be a profile name (got {shown(value)})"
        return None
    if value not in visible:
        errors["profile"] = f"unknown profile {shown(value)}" + (
            f"; choose one of: {', '.join(visible)}" if visible else ""
        )
        return None
    return visible[value]


def fit_defaults(values: dict, options: Mapping, catalog: Catalog, policy: Policy, profile: Profile | None) -> None:
    """A default yields to a choice: when the backend and image do not go together and only
    one of them was chosen (by the user or the profile), replace the other, defaulted one by
    the first allowed value that suits the choice. Two chosen values are left to the checks."""
    backend, image = values.get("backend"), values.get("image")
    if not (isinstance(backend, str) and backend in catalog.backends and isinstance(image, str) and image in catalog.images):
        return
    if catalog.images[image].runs_on(catalog.backends[backend].kind):
        return
    chosen = set(options) | set(profile.values if profile is not None else ())
    allowed = policy.with_profile(profile) if profile is not None else policy
    if "image" not in chosen:
        kind = catalog.backends[backend].kind
        suits = [i for i, img in catalog.images.items() if allowed.allows_image(i) and img.runs_on(kind)]
        if suits:
            values["image"] = suits[0]
    elif "backend" not in chosen:
        suits = [b for b, conf in catalog.backends.items() if allowed.allows_backend(b) and catalog.images[image].runs_on(conf.kind)]
        if suits:
            values["backend"] = suits[0]



"""From user_options to a validated, frozen LaunchRequest — pure functions, no I/O.

Every value a user sends (form or REST) is checked here against the catalog and against
what the user's groups (or the chosen profile) allow. All problems are collected and raised
together as one `OptionsError` mapping field → message, so the form can show each message
next to its field and the REST API can answer 400 with all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .catalog import FIELDS, Catalog, Policy, Profile

_MAX_SHOWN = 40  # characters of a bad value quoted back in a message


class OptionsError(ValueError):
    """Invalid user options. ``errors`` maps a field name to a user-facing message."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


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
    mounts: tuple = ()

    def summary(self) -> str:
        parts = [f"backend={self.backend}", f"image={self.image}", f"gpus={self.gpus}"]
        if self.gpus and self.gpu_memory:
            parts.append(f"gpu_memory>={self.gpu_memory}GB")
        if self.cpu:
            parts.append(f"cpu={self.cpu:g}")
        if self.memory:
            parts.append(f"memory={self.memory}GB")
        if self.profile:
            parts.append(f"profile={self.profile}")
        return " ".join(parts)


def shown(value: Any) -> str:
    """A bad value, quoted safely and briefly for an error message."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def default_values(catalog: Catalog, policy: Policy) -> dict[str, Any]:
    """The values a form starts from / REST falls back to, restricted to what ``policy`` allows."""
    allowed_backends = [b for b in catalog.backends if policy.allows_backend(b)]
    backend = catalog.defaults.get("backend")
    if backend not in allowed_backends:
        backend = allowed_backends[0] if allowed_backends else None
    kind = catalog.backends[backend].kind if backend else None
    images = [i for i, img in catalog.images.items() if policy.allows_image(i) and (kind is None or img.runs_on(kind))]
    image = catalog.defaults.get("image")
    if image not in images:
        image = images[0] if images else None
    return {
        "backend": backend,
        "image": image,
        "gpus": min(catalog.defaults.get("gpus", 0), policy.max_gpus),
        "gpu_memory": catalog.defaults.get("gpu_memory", 0),
        "cpu": catalog.defaults.get("cpu"),
        "memory": catalog.defaults.get("memory"),
    }


def build_request(options: Any, catalog: Catalog, groups: Iterable[str]) -> LaunchRequest:
    """Validate ``options`` (a user_options dict) for a user in ``groups``.

    Missing keys take the profile's or the catalog's defaults. Raises OptionsError.
    """
    groups = list(groups)
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise OptionsError({"user_options": "must be an object of option fields"})

    errors: dict[str, str] = {}
    for key in options:
        if key not in FIELDS and key != "profile":
            name = key if isinstance(key, str) and key.isprintable() and len(key) <= _MAX_SHOWN else shown(key)
            errors[str(name)] = f"unknown option; expected one of: profile, {', '.join(FIELDS)}"

    policy = catalog.policy_for(groups)
    profile = _pick_profile(options.get("profile"), catalog, groups, policy, errors)
    if "profile" in errors:
        raise OptionsError(errors)

    values = _starting_values(catalog, policy, profile)
    for f in FIELDS:
        if f not in options or f == "mounts":
            continue
        if profile is not None and f not in profile.changeable and f in profile.values:
            if options[f] != profile.values[f]:
                errors[f] = f"is fixed to {shown(profile.values[f])} by the profile {profile.display_name!r}"
            continue
        values[f] = options[f]

    backend = _check_backend(values["backend"], catalog, policy, profile, errors)
    kind = catalog.backends[backend].kind if backend else None
    image = _check_image(values["image"], catalog, policy, profile, kind, errors)
    gpus = _check_gpus(values["gpus"], catalog, policy, profile, errors)
    gpu_memory = _check_choice(values["gpu_memory"], catalog.gpu_memory_classes, "gpu_memory", errors, integer=True)
    cpu = _check_optional_choice(values.get("cpu"), catalog.cpu_choices, "cpu", errors, integer=False)
    memory = _check_optional_choice(values.get("memory"), catalog.memory_choices, "memory", errors, integer=True)
    mounts = options.get("mounts")
    if mounts not in (None, []):
        errors["mounts"] = (
            "must be a list" if not isinstance(mounts, list) else "data mounts are not enabled on this hub"
        )
    if errors:
        raise OptionsError(errors)

    max_runtime = profile.max_runtime if profile and profile.max_runtime else catalog.max_runtime
    return LaunchRequest(
        backend=backend,
        backend_kind=kind,
        image=image,
        gpus=gpus,
        gpu_memory=gpu_memory if gpus else 0,
        cpu=cpu,
        memory=memory,
        profile=profile.key if profile else None,
        max_runtime=max_runtime,
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


def _starting_values(catalog: Catalog, policy: Policy, profile: Profile | None) -> dict[str, Any]:
    values = default_values(catalog, policy)
    if profile is not None:
        values.update(profile.values)
        # a profile's image must suit its backend even where the catalog default does not
        if "backend" in profile.values and "image" not in profile.values:
            values["image"] = default_values(catalog, _profile_policy(policy, profile)).get("image")
    return values


def _profile_policy(policy: Policy, profile: Profile) -> Policy:
    """What a profile lets the user pick: the group policy plus the profile's own values."""
    backends = policy.backends
    images = policy.images
    if backends is not None and "backend" in profile.values:
        backends = backends | {profile.values["backend"]}
    if images is not None and "image" in profile.values:
        images = images | {profile.values["image"]}
    return Policy(backends, images, policy.max_gpus, policy.free_choice)


def _check_backend(value, catalog, policy, profile, errors) -> str | None:
    if not isinstance(value, str):
        errors["backend"] = f"must be a backend name (got {shown(value)})"
        return None
    if value not in catalog.backends:
        errors["backend"] = f"unknown backend {shown(value)}"
        return None
    allowed = _profile_policy(policy, profile) if profile else policy
    if not allowed.allows_backend(value):
        errors["backend"] = f"backend {value!r} is not available to you"
        return None
    return value


def _check_image(value, catalog, policy, profile, kind, errors) -> str | None:
    if not isinstance(value, str):
        errors["image"] = f"must be an image name (got {shown(value)})"
        return None
    if value not in catalog.images:
        errors["image"] = f"unknown image {shown(value)}; choose one from the list"
        return None
    allowed = _profile_policy(policy, profile) if profile else policy
    if not allowed.allows_image(value):
        errors["image"] = f"image {value!r} is not available to you"
        return None
    if kind is not None and not catalog.images[value].runs_on(kind):
        errors["image"] = f"image {value!r} cannot run on this backend"
        return None
    return value


def _check_gpus(value, catalog, policy, profile, errors) -> int:
    if not _is_int(value):
        errors["gpus"] = f"must be a whole number (got {shown(value)})"
        return 0
    if value < 0:
        errors["gpus"] = "must not be negative"
        return 0
    if profile is not None and profile.max_gpus is not None:
        limit = profile.max_gpus
    else:
        limit = policy.max_gpus
        if profile is not None:
            limit = max(limit, int(profile.values.get("gpus", 0)))
    limit = min(limit, catalog.max_gpus)
    if value > limit:
        errors["gpus"] = f"at most {limit} GPU{'s' if limit != 1 else ''} allowed for you"
        return 0
    return value


def _check_choice(value, choices, field, errors, *, integer: bool):
    ok = _is_int(value) if integer else _is_number(value)
    if not ok or value not in choices:
        errors[field] = f"must be one of {', '.join(f'{c:g}' for c in choices)} (got {shown(value)})"
        return choices[0] if choices else 0
    return value


def _check_optional_choice(value, choices, field, errors, *, integer: bool):
    if value is None or (value == 0 and _is_number(value)):
        return None
    if not choices:
        errors[field] = "this hub does not offer a choice here"
        return None
    return _check_choice(value, choices, field, errors, integer=integer)

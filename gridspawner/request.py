"""From user_options to a validated, frozen LaunchRequest — pure functions, no I/O.

Every value a user sends (form or REST) is checked here against the catalog and against
what the user's groups (or the chosen profile) allow. All problems are collected and raised
together as one `OptionsError` mapping field → message, so the form can show each message
next to its field and the REST API can answer 400 with all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .catalog import FIELDS, Catalog, Policy, Profile, gpu_type_memory_problem

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
    #: validated data mounts (`gridspawner.mounts.request.MountSpec`), in the user's order;
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
        return " ".join(parts)


def shown(value: Any) -> str:
    """A bad value, quoted safely and briefly for an error message."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # ints over 4300 digits, absurdly nested lists
        text = f"<{type(value).__name__}>"
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
    # a default GPU type or host is offered by the default backend only
    gpu_type = _offered(catalog.defaults.get("gpu_type"), catalog, backend, "gpu_types")
    host = _offered(catalog.defaults.get("host"), catalog, backend, "host_choices")
    return {
        "backend": backend,
        "image": image,
        "gpus": min(catalog.defaults.get("gpus", 0), policy.max_gpus),
        "gpu_memory": catalog.defaults.get("gpu_memory", 0),
        "gpu_type": gpu_type,
        "host": host,
        "cpu": catalog.defaults.get("cpu"),
        "memory": catalog.defaults.get("memory"),
    }


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
    _fit_defaults(values, options, catalog, policy, profile)

    backend = _check_backend(values["backend"], catalog, policy, profile, errors)
    kind = catalog.backends[backend].kind if backend else None
    image = _check_image(values["image"], catalog, policy, profile, kind, errors)
    gpus = _check_gpus(values["gpus"], catalog, policy, profile, errors)
    gpu_memory = _check_choice(values["gpu_memory"], catalog.gpu_memory_classes, "gpu_memory", errors, integer=True)
    gpu_type_value = _inherited_choice("gpu_type", "gpu_types", values, options, catalog, backend, profile)
    gpu_type = _check_gpu_type(gpu_type_value, catalog, backend, gpus, errors)
    _check_gpu_type_memory(catalog, backend, gpu_type, gpu_memory, profile, errors)
    host_value = _inherited_choice("host", "host_choices", values, options, catalog, backend, profile)
    host = _check_host(host_value, catalog, backend, errors)
    cpu = _check_optional_choice(values.get("cpu"), catalog.cpu_choices, "cpu", errors, integer=False)
    memory = _check_optional_choice(values.get("memory"), catalog.memory_choices, "memory", errors, integer=True)
    mounts = _check_mounts(options.get("mounts"), catalog, groups, username, kind, errors)
    if errors:
        raise OptionsError(errors)

    max_runtime = profile.max_runtime if profile and profile.max_runtime else catalog.max_runtime
    return LaunchRequest(
        backend=backend,
        backend_kind=kind,
        image=image,
        gpus=gpus,
        gpu_memory=gpu_memory if gpus else 0,
        gpu_type=gpu_type,  # None without GPUs (_check_gpu_type)
        host=host,
        cpu=cpu,
        memory=memory,
        profile=profile.key if profile else None,
        max_runtime=max_runtime,
        mounts=mounts,
        image_settings=catalog.images[image].per_kind.get(kind),
    )


def _check_mounts(raw: Any, catalog: Catalog, groups: list[str], username: str, kind: str | None, errors: dict) -> tuple:
    from .mounts.request import parse_mounts  # imports OptionsError from this module

    try:
        specs, _ = parse_mounts(raw, catalog.storage, groups, username)
    except OptionsError as e:
        errors.update(e.errors)
        return ()
    if kind == "kubernetes":
        csi = catalog.storage.kubernetes.csi
        for i, spec in enumerate(specs):
            if spec.mode == "mount" and spec.type not in csi:
                errors[f"mounts[{i}].mode"] = (
                    f"this backend cannot mount {spec.type} storage (no CSI driver configured); use mode 'copy'"
                )
    return specs


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
        values.update(profile.values)  # _fit_defaults then matches the defaults to them
    return values


def _fit_defaults(values: dict, options: Mapping, catalog: Catalog, policy: Policy, profile: Profile | None) -> None:
    """A default yields to a choice: when the backend and image do not go together and only
    one of them was chosen (by the user or the profile), replace the other, defaulted one by
    the first allowed value that suits the choice. Two chosen values are left to the checks."""
    backend, image = values.get("backend"), values.get("image")
    if not (isinstance(backend, str) and backend in catalog.backends and isinstance(image, str) and image in catalog.images):
        return
    if catalog.images[image].runs_on(catalog.backends[backend].kind):
        return
    chosen = set(options) | set(profile.values if profile is not None else ())
    allowed = _profile_policy(policy, profile) if profile is not None else policy
    if "image" not in chosen:
        kind = catalog.backends[backend].kind
        suits = [i for i, img in catalog.images.items() if allowed.allows_image(i) and img.runs_on(kind)]
        if suits:
            values["image"] = suits[0]
    elif "backend" not in chosen:
        suits = [b for b, conf in catalog.backends.items() if allowed.allows_backend(b) and catalog.images[image].runs_on(conf.kind)]
        if suits:
            values["backend"] = suits[0]


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


def gpu_limit(catalog: Catalog, policy: Policy, profile: Profile | None) -> int:
    """The most GPUs a user may ask for: the profile's own maximum, else the policy's (never
    below what the profile itself sets), and never above the hub's ``max_gpus``."""
    if profile is not None and profile.max_gpus is not None:
        limit = profile.max_gpus
    else:
        limit = policy.max_gpus
        if profile is not None:
            limit = max(limit, int(profile.values.get("gpus", 0)))
    return min(limit, catalog.max_gpus)


def _check_gpus(value, catalog, policy, profile, errors) -> int:
    if not _is_int(value):
        errors["gpus"] = f"must be a whole number (got {shown(value)})"
        return 0
    if value < 0:
        errors["gpus"] = "must not be negative"
        return 0
    limit = gpu_limit(catalog, policy, profile)
    if value > limit:
        errors["gpus"] = f"at most {limit} GPU{'s' if limit != 1 else ''} allowed for you"
        return 0
    return value


def _offered(value: Any, catalog: Catalog, backend: str | None, attr: str) -> Any:
    """``value`` if ``backend`` offers it among its per-backend choices (``attr``:
    "gpu_types" or "host_choices"), else None."""
    if backend is None or value not in getattr(catalog.backends[backend], attr):
        return None
    return value


def _inherited_choice(field: str, attr: str, values: dict, options: Mapping, catalog: Catalog, backend, profile) -> Any:
    """The per-backend choice (gpu_type, host) to check. A value the user did not send — a
    default's or a changeable preset's — yields to "no choice" when the chosen backend does
    not offer it; a value the user sent, or a profile fixes, is checked as it is."""
    value = values.get(field)
    fixed = profile is not None and field in profile.values and field not in profile.changeable
    if field in options or backend is None or fixed:
        return value
    return _offered(value, catalog, backend, attr)


def _check_backend_choice(value, offered, field: str, noun: str, none_offered: str, errors: dict) -> str | None:
    """A key of what the chosen backend offers for ``field`` (a GPU type, a host), or None:
    no choice, the backend decides. ``offered`` is None when the backend itself is invalid
    (its own error says what is wrong)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors[field] = f"must be a {noun} name (got {shown(value)})"
        return None
    if offered is None:
        return None
    if not offered:
        errors[field] = none_offered
    elif value not in offered:
        errors[field] = f"unknown {noun} {shown(value)}; choose one of: {', '.join(offered)}"[:280]
    else:
        return value
    return None


def _check_gpu_type(value, catalog: Catalog, backend: str | None, gpus: int, errors: dict) -> str | None:
    """A key of the chosen backend's GPU types, or None (any GPU). Without GPUs the choice
    means nothing and is dropped, like gpu_memory (a form keeps its last selection)."""
    if not gpus:
        return None
    offered = catalog.backends[backend].gpu_types if backend is not None else None
    return _check_backend_choice(value, offered, "gpu_type", "GPU type", "this backend offers no GPU type choice", errors)


def _check_gpu_type_memory(catalog: Catalog, backend, gpu_type, gpu_memory, profile: Profile | None, errors: dict) -> None:
    """A GPU type of fixed size (a MIG slice) smaller than the VRAM asked for. The message
    goes next to ``gpu_memory``, or next to ``gpu_type`` when a profile fixes the memory."""
    if backend is None or gpu_type is None or "gpu_memory" in errors:
        return
    problem = gpu_type_memory_problem(catalog.backends[backend], gpu_type, gpu_memory)
    if problem:
        fixed = profile is not None and "gpu_memory" in profile.values and "gpu_memory" not in profile.changeable
        errors["gpu_type" if fixed else "gpu_memory"] = problem


def _check_host(value, catalog: Catalog, backend: str | None, errors: dict) -> str | None:
    """A host the chosen backend lets the user pick, or None ("any host": the backend's
    best fit). Backends that place servers themselves offer no host, and any host is an error."""
    offered = catalog.backends[backend].host_choices if backend is not None else None
    return _check_backend_choice(
        value, offered, "host", "host", "this backend places servers itself; no host choice", errors
    )


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

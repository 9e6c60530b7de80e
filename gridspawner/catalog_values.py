"""The catalog's frozen values: what the admin offers (backends, images), what groups may
choose (`Policy`), the presets (`Profile`), and the `Catalog` holding them.

Built once by `gridspawner.catalog.build_catalog`; read by the request checks, the form and
the backends. Pure values: nothing here does I/O or validates raw settings.
"""

from __future__ import annotations

import fnmatch

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .mounts.config import StorageConfig


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
    #: why a user's image reference cannot run here (the kind's ``image_ref_problem``);
    #: None: it can, and ``parse_image_ref`` turns one into what the kind runs
    image_ref_problem: str | None = "this backend runs no container images"
    parse_image_ref: Any = None


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
    #: patterns of the image references members may give instead of an image key (custom
    #: images, `allows_image_ref`); empty: none
    image_refs: tuple[str, ...] = ()

    def allows_image_ref(self, ref: str) -> bool:
        """Whether ``ref`` matches one of ``image_refs`` (fnmatch, case-sensitive)."""
        return any(fnmatch.fnmatchcase(ref, p) for p in self.image_refs)

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
            image_refs=tuple(dict.fromkeys((*self.image_refs, *other.image_refs))),
        )

    def with_profile(self, profile: Profile) -> Policy:
        """What a profile lets the user pick: this policy plus the profile's own backend and image."""
        backends, images = self.backends, self.images
        if backends is not None and "backend" in profile.values:
            backends = backends | {profile.values["backend"]}
        if images is not None and "image" in profile.values:
            images = images | {profile.values["image"]}
        return Policy(backends, images, self.max_gpus, self.free_choice, self.image_refs)


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
    #: data mounts (`gridspawner.mounts.config.StorageConfig`); empty = mounts disabled
    storage: StorageConfig = field(default_factory=StorageConfig)

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

    def gpu_limit(self, policy: Policy, profile: Profile | None) -> int:
        """The most GPUs a user may ask for: the profile's own maximum, else the policy's
        (never below what the profile itself sets), and never above the hub's ``max_gpus``."""
        if profile is not None and profile.max_gpus is not None:
            limit = profile.max_gpus
        else:
            limit = policy.max_gpus
            if profile is not None:
                limit = max(limit, int(profile.values.get("gpus", 0)))
        return min(limit, self.max_gpus)

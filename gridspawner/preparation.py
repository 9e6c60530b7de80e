"""One spawn's user_options → a validated request with its data mounts checked: done once
per spawn, before JupyterHub starts the server (JupyterHub's ``apply_user_options`` hook),
or at form submit time, whose result that hook then reuses.

A `Prepared` carries the mounts' credentials (typed keys, STS credentials, SSH keys): it
lives in memory only, on the spawner, until ``start()`` hands it to the backend.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable

from .catalog_values import Catalog
from .mounts.resolve import resolve_mounts
from .mounts.specs import strip_secrets
from .request import LaunchRequest, build_request
from .vocabulary import OptionsError

#: how long a form submission's preparation waits for the spawn that follows it
SUBMISSION_TTL = 300.0


@dataclass(frozen=True)
class Prepared:
    """A spawn ready to launch: ``request`` (no secret) and ``mounts`` (`ResolvedMount` values
    with working credentials, checked live; empty without mounts)."""

    request: LaunchRequest
    mounts: tuple = field(default=(), repr=False)


@dataclass(frozen=True)
class Submission:
    """A form submission that passed: the user_options JupyterHub will spawn with (no
    secret) and what they were prepared into. Reused only for exactly those options."""

    options: Any
    prepared: Prepared = field(repr=False)
    expires: float = field(default_factory=lambda: time.monotonic() + SUBMISSION_TTL)

    def matches(self, options: Any) -> bool:
        return time.monotonic() < self.expires and options == self.options


class MountCheckFailed(OptionsError):
    """The options are valid but a data mount failed its live check (``mounts[i].field``);
    ``request`` is the valid request (its backend labels the spawn metrics)."""

    def __init__(self, errors: dict, request: LaunchRequest):
        super().__init__(errors)
        self.request = request


def quota_field(request: LaunchRequest, catalog: Catalog) -> str:
    """The field a quota refusal belongs to: ``gpus``, unless the request's profile fixes
    the GPU count (then the user changes the profile)."""
    profile = catalog.profiles.get(request.profile) if request.profile else None
    if profile is not None and "gpus" in profile.values and "gpus" not in profile.changeable:
        return "profile"
    return "gpus"


async def prepare(
    options: Any,
    catalog: Catalog,
    groups: Iterable[str],
    username: str,
    progress: Callable[[str], None] = lambda message: None,
    quota: Callable[[int], Awaitable[str | None]] | None = None,
) -> Prepared:
    """Validate ``options`` (user_options, typed secrets still in their mount rows), check
    the user's GPU quota (``quota(gpus)``: why that many more GPUs would exceed it, or None)
    and check every data mount live (bounded by the storage's ``check_timeout``, see
    `gridspawner.mounts.resolve.check_limit`). Raises OptionsError naming each field
    (MountCheckFailed when only the live checks failed)."""
    request = build_request(options, catalog, groups, username=username)
    if quota is not None and request.gpus > 0:
        why = await quota(request.gpus)
        if why is not None:
            raise OptionsError({quota_field(request, catalog): why})
    if not request.mounts:
        return Prepared(request)
    _, secrets = strip_secrets(options)
    n = len(request.mounts)
    progress(f"Checking {n} data mount{'s' if n != 1 else ''}")
    try:
        mounts = await resolve_mounts(request.mounts, secrets, catalog.storage, username)
    except OptionsError as e:
        raise MountCheckFailed(e.errors, request) from None
    return Prepared(request, mounts)

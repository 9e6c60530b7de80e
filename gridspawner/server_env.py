"""What a server can read about itself from its environment (``GRIDSPAWNER_*``): pure builders.

The names are a public contract (docs/reference/server-environment.md lists them): notebooks
read them, and gridspawner's optional JupyterLab extension (``gridspawner-lab``) reads the
deadline and the warning times from them. None of the values is a secret; backends deliver
them like any other environment variable (host launch scripts quote every value).

Three builders, by when the facts are known:

- `request_env`: what the spawner knows before the launch (backend, image, profile, GPU
  count, the maximum run time's deadline and the warning times);
- `placement_env`: what a host backend knows once it has placed the server (host, the GPUs'
  models and memory, in ``CUDA_VISIBLE_DEVICES`` order);
- `gpu_type_env`: what the Kubernetes backend knows before scheduling (a GPU type that fixes
  the model or the size); the node name comes from the Downward API (`HOST_FIELD_PATH`).
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable, Sequence

from .vocabulary import CatalogError, parse_duration
from .gpu import GPU

PREFIX = "GRIDSPAWNER_"

BACKEND = "GRIDSPAWNER_BACKEND"
BACKEND_KIND = "GRIDSPAWNER_BACKEND_KIND"
BACKEND_DISPLAY_NAME = "GRIDSPAWNER_BACKEND_DISPLAY_NAME"
HOST = "GRIDSPAWNER_HOST"
GPUS = "GRIDSPAWNER_GPUS"
GPU_MODELS = "GRIDSPAWNER_GPU_MODELS"
GPU_MEMORY_GB = "GRIDSPAWNER_GPU_MEMORY_GB"
IMAGE = "GRIDSPAWNER_IMAGE"
IMAGE_DISPLAY_NAME = "GRIDSPAWNER_IMAGE_DISPLAY_NAME"
PROFILE = "GRIDSPAWNER_PROFILE"
PROFILE_DISPLAY_NAME = "GRIDSPAWNER_PROFILE_DISPLAY_NAME"
DEADLINE = "GRIDSPAWNER_DEADLINE"
DEADLINE_ISO = "GRIDSPAWNER_DEADLINE_ISO"
STOP_WARNINGS = "GRIDSPAWNER_STOP_WARNINGS"
STOPS_FILE = "GRIDSPAWNER_STOPS_FILE"

#: every name above: the facts an admin's ``env`` setting may not set (start-up error)
FACTS = frozenset({BACKEND, BACKEND_KIND, BACKEND_DISPLAY_NAME, HOST, GPUS, GPU_MODELS, GPU_MEMORY_GB, IMAGE,
                   IMAGE_DISPLAY_NAME, PROFILE, PROFILE_DISPLAY_NAME, DEADLINE, DEADLINE_ISO, STOP_WARNINGS,
                   STOPS_FILE})

#: the Downward API field that holds a pod's node once it is scheduled
HOST_FIELD_PATH = "spec.nodeName"
#: the file name of the stops hook in a host session directory (see `stops_file_env`)
STOPS_FILE_NAME = "stops.json"

#: the warning times when the admin sets none: 30 and 5 minutes before a stop
DEFAULT_STOP_WARNINGS = (1800, 300)
_WARNINGS_KEY = "c.GridSpawner.stop_warnings"


def iso_utc(epoch: float) -> str:
    """``2025-06-01T14:30:00Z`` for an epoch time (whole seconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(epoch)))


def deadline_env(deadline: float | None) -> dict[str, str]:
    """The deadline as epoch seconds (rounded down: the hub stops at or after it) and ISO 8601
    UTC; both empty when the server has no maximum run time."""
    if deadline is None:
        return {DEADLINE: "", DEADLINE_ISO: ""}
    return {DEADLINE: str(math.floor(deadline)), DEADLINE_ISO: iso_utc(deadline)}


def parse_stop_warnings(value: Any, key: str = _WARNINGS_KEY) -> tuple[int, ...]:
    """The admin's warning times (a list of durations: seconds or ``"30m"``-style strings) as
    whole seconds, longest first, without repeats. Raises CatalogError naming ``key``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise CatalogError(key, f"must be a list of durations such as [1800, 300] or ['30m', '5m'] (got {value!r})")
    seconds: set[int] = set()
    for i, item in enumerate(value):
        parsed = parse_duration(item, f"{key}[{i}]")
        if parsed is None:
            raise CatalogError(f"{key}[{i}]", f"must be a positive duration (got {item!r})")
        seconds.add(max(1, round(parsed)))
    return tuple(sorted(seconds, reverse=True))


def request_env(request: Any, catalog: Any, deadline: float | None,
                stop_warnings: Sequence[int] = DEFAULT_STOP_WARNINGS) -> dict[str, str]:
    """What the spawner knows before launching ``request`` (a `LaunchRequest`): the backend,
    image and profile (keys and display names), the GPU count, the deadline (None: no
    maximum run time) and when the JupyterLab extension warns before a stop. The GPUs'
    models and memory start empty; a backend that knows them adds them."""
    backend = catalog.backends.get(request.backend)
    image = catalog.images.get(request.image)
    profile = catalog.profiles.get(request.profile) if request.profile else None
    env = {
        BACKEND: request.backend,
        BACKEND_KIND: request.backend_kind,
        BACKEND_DISPLAY_NAME: backend.display_name if backend is not None else request.backend,
        GPUS: str(request.gpus),
        GPU_MODELS: "",
        GPU_MEMORY_GB: "",
        IMAGE: request.image,
        IMAGE_DISPLAY_NAME: image.display_name if image is not None else request.image,
        PROFILE: request.profile or "",
        PROFILE_DISPLAY_NAME: profile.display_name if profile is not None else "",
        STOP_WARNINGS: ",".join(str(int(s)) for s in stop_warnings),
    }
    env.update(deadline_env(deadline))
    return env


def _listed(values: Iterable[str]) -> str:
    # one entry per GPU, comma-separated: a comma inside a model name would split it
    return ",".join(v.replace(",", " ").strip() for v in values)


def placement_env(host: str, gpus: Sequence[GPU]) -> dict[str, str]:
    """Where a host backend placed the server: the host's name and, per allocated GPU in
    ``CUDA_VISIBLE_DEVICES`` order, its model and its memory in (nominal) GB."""
    return {
        HOST: host,
        GPUS: str(len(gpus)),
        GPU_MODELS: _listed(g.name for g in gpus),
        GPU_MEMORY_GB: ",".join(str(g.memory_gb) for g in gpus),
    }


def gpu_type_env(count: int, model: str | None, memory_gb: int | None) -> dict[str, str]:
    """The GPU facts the Kubernetes backend knows before scheduling: a GPU type that fixes the
    model (a product) or the size (a MIG slice) names it for each of the ``count`` GPUs;
    anything not fixed stays empty (the device plugin picks the card on the node)."""
    if count <= 0:
        return {}
    env = {}
    if model:
        env[GPU_MODELS] = _listed([model] * count)
    if memory_gb:
        env[GPU_MEMORY_GB] = ",".join([str(memory_gb)] * count)
    return env


def stops_file_env(session_dir: str) -> dict[str, str]:
    """The stops hook on host backends: a JSON file in the server's session directory through
    which the hub may announce a changed or an additional stop while the server runs
    (the JupyterLab extension re-reads it; see docs/admin/lab-extension.md for its format)."""
    return {STOPS_FILE: f"{session_dir.rstrip('/')}/{STOPS_FILE_NAME}"}


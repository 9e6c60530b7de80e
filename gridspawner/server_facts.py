"""What a user got and how long it lasts: the facts of one running server, for the hub's pages.

A pure builder (`server_facts`) from what the spawner saved — its state (``backend``,
``launch`` with the backend's ``host``/``node`` and ``gpus``, ``started_at``, ``deadline``,
``mounts``) and its ``user_options`` — plus the catalog for display names. No I/O: the hub's
home and admin pages (`gridspawner.pages`) build these on every page view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .gpu import GPU
from .mounts.specs import MountSpec
from .server_env import iso_utc


@dataclass(frozen=True)
class GPUGroup:
    """``count`` GPUs of one model and size."""

    count: int
    model: str
    memory_gb: int

    @property
    def text(self) -> str:
        size = f", {self.memory_gb} GB" + (" each" if self.count > 1 else "") if self.memory_gb else ""
        return f"{self.count} × {self.model}{size}"


@dataclass(frozen=True)
class ServerFacts:
    """One running server as its user (or an admin) sees it. Times are epoch seconds."""

    user: str
    server: str  # "" for the user's default server
    backend: str
    backend_display_name: str
    place: str  # the host or Kubernetes node; "" while unknown
    gpu_count: int
    gpu_groups: tuple[GPUGroup, ...]
    environment: str
    profile_display_name: str
    mounts: tuple[str, ...]
    started_at: float | None
    stops_at: float | None
    warn_before: int  # seconds before ``stops_at`` from which the pages warn (0: never)
    now: float

    @property
    def server_label(self) -> str:
        return self.server or "default server"

    @property
    def gpus_text(self) -> str:
        """``2 × NVIDIA A100-SXM4-80GB, 80 GB each``; ``none``; ``2 GPUs`` when the models are
        not known (a Kubernetes node the backend had not seen)."""
        if self.gpu_groups:
            return "; ".join(g.text for g in self.gpu_groups)
        if self.gpu_count <= 0:
            return "none"
        return "1 GPU" if self.gpu_count == 1 else f"{self.gpu_count} GPUs"

    @property
    def time_left(self) -> float | None:
        return None if self.stops_at is None else max(0.0, self.stops_at - self.now)

    @property
    def time_left_text(self) -> str:
        left = self.time_left
        return "no time limit" if left is None else countdown_text(left)

    @property
    def stopping_soon(self) -> bool:
        """Within the first stop warning (the JupyterLab extension warns then too)."""
        left = self.time_left
        return left is not None and self.warn_before > 0 and left <= self.warn_before

    @property
    def started_at_iso(self) -> str:
        return iso_utc(self.started_at) if self.started_at is not None else ""

    @property
    def stops_at_iso(self) -> str:
        return iso_utc(self.stops_at) if self.stops_at is not None else ""


def countdown_text(seconds: float) -> str:
    """``2 h 5 min``, ``25 min``, ``40 s`` (rounded down to the unit shown)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    hours, minutes = divmod(s // 60, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def gpu_groups(gpus: Sequence[GPU]) -> tuple[GPUGroup, ...]:
    """The GPUs by (model, nominal size), in the order they were allocated."""
    counts: dict[tuple[str, int], int] = {}
    for g in gpus:
        key = (g.name, g.memory_gb)
        counts[key] = counts.get(key, 0) + 1
    return tuple(GPUGroup(n, model, gb) for (model, gb), n in counts.items())


def mount_text(spec: MountSpec, storage: Any) -> str:
    """``Campus S3: lab-imaging/ada/ → scans (read-only, copied)``: the storage's display
    name (not its address), the source, and where it appears in the data directory."""
    if spec.type == "s3":
        where = getattr(storage, "s3", {}).get(spec.endpoint or "")
        source = f"{spec.bucket}/{spec.prefix}"
    else:
        where = getattr(storage, "ssh", {}).get(spec.host or "")
        source = spec.path or ""
    name = getattr(where, "display_name", "") or (spec.endpoint if spec.type == "s3" else spec.host) or spec.type
    notes = [n for n, on in (("read-only", spec.read_only), ("copied", spec.mode == "copy")) if on]
    return f"{name}: {source} → {spec.target}" + (f" ({', '.join(notes)})" if notes else "")


def _chosen(options: Mapping[str, Any], profile: Any, key: str) -> Any:
    """A value of this server's request: the user's option, else the profile's."""
    if key in options:
        return options[key]
    return (getattr(profile, "values", None) or {}).get(key)


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def server_facts(user: str, server: str, state: Mapping[str, Any] | None, user_options: Any, catalog: Any,
                 now: float, stop_warnings: Sequence[int] = ()) -> ServerFacts | None:
    """The facts of a server from the spawner's saved ``state`` (None when nothing runs) and
    its ``user_options``; display names from ``catalog``; ``stop_warnings`` (seconds, see
    ``c.GridSpawner.stop_warnings``) sets when the pages start warning before a stop."""
    if not state or not isinstance(state.get("launch"), Mapping):
        return None
    launch = state["launch"]
    options = user_options if isinstance(user_options, Mapping) else {}
    profile = catalog.profiles.get(options.get("profile")) if isinstance(options.get("profile"), str) else None
    backend_name = str(state.get("backend") or "")
    backend = catalog.backends.get(backend_name)
    image_key = _chosen(options, profile, "image")
    image = catalog.images.get(image_key) if isinstance(image_key, str) else None
    gpus = tuple(GPU.from_dict(g) for g in launch.get("gpus") or () if isinstance(g, Mapping))
    mounts = tuple(MountSpec.from_dict(m) for m in state.get("mounts") or () if isinstance(m, Mapping))
    deadline = state.get("deadline")
    started = state.get("started_at")
    return ServerFacts(
        user=user,
        server=server,
        backend=backend_name,
        backend_display_name=backend.display_name if backend is not None else backend_name,
        place=str(launch.get("host") or launch.get("node") or ""),
        gpu_count=len(gpus) or _int(_chosen(options, profile, "gpus")),
        gpu_groups=gpu_groups(gpus),
        environment=image.display_name if image is not None else str(image_key or ""),
        profile_display_name=profile.display_name if profile is not None else "",
        mounts=tuple(mount_text(m, catalog.storage) for m in mounts),
        started_at=float(started) if isinstance(started, (int, float)) else None,
        stops_at=float(deadline) if isinstance(deadline, (int, float)) else None,
        warn_before=max(stop_warnings, default=0),
        now=now,
    )

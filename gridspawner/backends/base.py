"""The backend protocol: the small surface every kind (local, ssh, kubernetes, slurm) implements."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping

from ..gpu import GPU, min_mib

if TYPE_CHECKING:
    from ..request import LaunchRequest


class BackendError(Exception):
    """A failure to tell the user as is (no traceback): the message is user-facing.

    ``outcome`` is the word the spawn metric records (`gridspawner.metrics.OUTCOMES`); each
    subclass says what kind of failure it is, so users and admins get the real reason."""

    outcome: ClassVar[str] = "failure"


class NoCapacity(BackendError):
    """The hosts (or the cluster) answered, and nothing free fits the request right now."""

    outcome: ClassVar[str] = "no_capacity"


class Unreachable(BackendError):
    """No host could be reached: no route, connection refused, or no answer in time."""

    outcome: ClassVar[str] = "unreachable"


class AccessDenied(BackendError):
    """The backend may not act for this user: the host refused the login (key not accepted),
    or the user's name cannot be an account there."""

    outcome: ClassVar[str] = "access_denied"


@dataclass(frozen=True)
class LaunchContext:
    """Everything about *who* is launching, separate from *what* was asked (the request).

    ``env`` holds the JupyterHub environment including the API token: backends deliver it to
    the server process only (never argv, logs, or files others can read).

    ``mounts`` are the request's data mounts resolved for this launch
    (`gridspawner.mounts.resolved.ResolvedMount`, in the order of ``request.mounts``, ``index``
    = position): source, target, mode and the credentials that work for it. They carry
    SECRETS and exist in memory only: a backend turns them into its own objects (host
    script fragments, Kubernetes volumes and Secrets) and never puts them in ``Launch.state``
    or a log. Empty when the request has no mounts.
    """

    user: str
    server_name: str
    slug: str  # safe, unique per (user, server): letters, digits, '-'
    env: Mapping[str, str] = field(repr=False)  # holds the API token: never in a repr
    cmd: tuple[str, ...]  # Spawner.cmd (jupyterhub-singleuser); an image may replace it
    args: tuple[str, ...]  # Spawner.get_args(): arguments for that command
    log: logging.Logger | logging.LoggerAdapter
    progress: Callable[[str], None] = lambda message: None
    mounts: tuple = field(default=(), repr=False)
    #: the admin's storage settings (`gridspawner.mounts.config.StorageConfig`: FUSE tool,
    #: data directory, Kubernetes CSI templates); no secrets. None when there are no mounts.
    storage: Any = None


@dataclass
class Launch:
    """A running server as a backend sees it. ``state`` is JSON-able and holds no secret."""

    url: str
    state: dict
    gpus: tuple[GPU, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class BatchJob:
    """A command run to completion on a request's placement instead of a Jupyter server (a
    notebook run, `gridspawner.runs`). Backends give it the same placement, GPU ledger /
    scheduling, image, mounts, limits and clean-up as a server.

    ``argv`` runs inside the chosen environment (image or prefix) with the job's work directory
    as its current directory; every element is data (backends quote it, never re-format it).
    ``files``: put into the work directory before ``argv`` runs (the notebook, its parameters);
    names are plain file names. ``outputs``: work-directory-relative files brought back to the
    hub when the job has ended (`BatchResult.files`). ``env``: extra environment for ``argv``
    (no secrets: mount credentials travel in ``LaunchContext.mounts`` as for servers).
    The data mounts must be reachable from the work directory as ``<data_dir>/<target>``
    (``data_dir``: ``LaunchContext.storage.data_dir``, default ``data``): a run's parameter
    bound to a mount is given that relative path (`gridspawner.runs.submit`).
    """

    run_id: str  # safe and unique: letters, digits, '-'
    argv: tuple[str, ...]
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    outputs: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class BatchResult:
    """What a finished batch job left: its exit code (None when it is not known, e.g. the
    job was lost), the ``outputs`` that exist (name → bytes) and the tail of its combined
    stdout/stderr (at most ``BATCH_LOG_TAIL`` bytes, decoded with replacement). ``timed_out``:
    the backend's own bound on the job's run time ended it (Slurm's TIMEOUT, a Kubernetes
    pod's activeDeadlineSeconds), so the run is timed out, not failed."""

    exit_code: int | None
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    log_tail: str = ""
    timed_out: bool = False


#: the most bytes of a batch job's log kept in `BatchResult.log_tail`
BATCH_LOG_TAIL = 64 * 1024


@dataclass(frozen=True)
class HostCapacity:
    """GPUs on one host (or node) and which of them are free."""

    name: str
    gpus: tuple[GPU, ...] = ()
    free: frozenset[str] = frozenset()  # uuids
    error: str | None = None  # set when the host could not be probed

    @property
    def reachable(self) -> bool:
        return self.error is None

    def free_gpus(self) -> list[GPU]:
        return [g for g in self.gpus if g.uuid in self.free]

    def fits(self, count: int, gb: int, tolerance: float) -> bool:
        if not self.reachable:
            return False
        if count == 0:
            return True
        need = min_mib(gb, tolerance)
        return sum(1 for g in self.free_gpus() if g.memory_total_mib >= need) >= count


@dataclass(frozen=True)
class Capacity:
    """A backend's capacity snapshot. ``updated`` is a time.time() stamp; 0 = never probed."""

    backend: str
    hosts: tuple[HostCapacity, ...] = ()
    updated: float = 0.0
    error: str | None = None

    @property
    def known(self) -> bool:
        return self.updated > 0 and self.error is None

    @property
    def total_gpus(self) -> int:
        return sum(len(h.gpus) for h in self.hosts if h.reachable)

    @property
    def free_gpus(self) -> int:
        return sum(len(h.free_gpus()) for h in self.hosts if h.reachable)  # stale uuids in free never count

    @property
    def largest_free_gb(self) -> int:
        sizes = [g.memory_gb for h in self.hosts if h.reachable for g in h.free_gpus()]
        return max(sizes, default=0)

    def largest_free_count(self, gb: int, tolerance: float) -> int:
        """The most GPUs of at least ``gb`` GB free together on one host."""
        need = min_mib(gb, tolerance)
        return max(
            (sum(1 for g in h.free_gpus() if g.memory_total_mib >= need) for h in self.hosts if h.reachable),
            default=0,
        )

    def fits(self, count: int, gb: int, tolerance: float) -> tuple[bool, str]:
        """(fits, reason). Unknown capacity never blocks: the launch decides then."""
        if not self.known or count == 0:
            return True, ""
        if any(h.fits(count, gb, tolerance) for h in self.hosts):
            return True, ""
        if self.total_gpus == 0:
            if self.hosts and not any(h.reachable for h in self.hosts):
                return False, "no host of this backend is reachable now"
            return False, "this backend has no GPUs"
        size = f" with ≥ {gb} GB" if gb else ""
        best = self.largest_free_count(gb, tolerance)
        return False, f"no host has {count} free GPU{'s' if count != 1 else ''}{size} (at most {best} free now)"

    def summary(self) -> str:
        """'3 of 4 GPUs free, up to 80 GB' — the line the form shows."""
        if self.error:
            return f"capacity unknown: {self.error}"
        if not self.updated:
            return "checking capacity…"
        down = sum(1 for h in self.hosts if not h.reachable)
        note = f" ({down} host{'s' if down != 1 else ''} unreachable)" if down else ""
        if self.total_gpus == 0:
            # every host down says nothing about GPUs: not "CPU only"
            return "no host reachable now" if down and down == len(self.hosts) else f"CPU only{note}"
        up_to = f", up to {self.largest_free_gb} GB" if self.free_gpus else ""
        return f"{self.free_gpus} of {self.total_gpus} GPUs free{up_to}{note}"


@dataclass
class Reconciled:
    """What one look for orphans on a backend found and did (`Backend.reconcile`): where it
    looked (hosts, namespaces), a line per orphan reclaimed (what, where, why), the orphans
    it left alone for now (and why), failures, and how many GPU claims it freed."""

    backend: str
    looked_at: list[str] = field(default_factory=list)
    reclaimed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    freed_claims: int = 0


class Backend(ABC):
    """One configured backend. Instances are shared by all spawners of a hub process."""

    kind: ClassVar[str]
    #: whether `renew_credentials` can replace the STS credentials of a running server's
    #: S3 mounts; where it cannot, the spawner stops the server before they expire
    renews_credentials: ClassVar[bool] = False
    #: whether `poll`'s status tells a clean exit (0) from a failure; where it cannot (hosts:
    #: a server found gone reads 1 whatever its exit), usage records say "ended"
    exit_status_known: ClassVar[bool] = False

    #: this hub's stable id (`gridspawner.hub_identity`), set by `SharedBackends`; written into
    #: what the backend leaves on hosts and clusters. Empty outside a hub: nothing is reclaimed.
    hub_id: str = ""

    def __init__(self, name: str, settings: Any, *, tolerance: float = 0.07):
        self.name = name
        self.settings = settings
        self.tolerance = tolerance
        self.log = logging.getLogger(f"gridspawner.{self.kind}.{name}")

    # -- config (classmethods: run at hub start-up, before any instance exists)
    @classmethod
    @abstractmethod
    def parse_settings(cls, name: str, raw: dict, key: str) -> Any:
        """Validate this kind's backend settings; raise CatalogError naming ``key``."""

    @classmethod
    @abstractmethod
    def parse_image(cls, image: str, raw: dict, key: str) -> Any:
        """Validate what an image runs on this kind; raise CatalogError naming ``key``."""

    @classmethod
    def gpu_type_choices(cls, settings: Any) -> dict[str, str]:
        """The GPU types a user may pick on a backend with these (parsed) settings: key →
        display text, in the admin's order (the ``gpu_type`` option). Default: none — the
        backend places GPUs by count and minimum memory only."""
        return {}

    @classmethod
    def gpu_type_memory(cls, settings: Any) -> dict[str, int]:
        """GB of memory per GPU of those ``gpu_type_choices`` whose size the settings fix
        (e.g. a MIG profile), so a request for more VRAM than that is a field error at
        submit. Types left out have no size known in advance. Default: none."""
        return {}

    @classmethod
    def host_choices(cls, settings: Any) -> dict[str, str]:
        """The hosts a user may pick on a backend with these (parsed) settings: host name →
        display text, in the admin's order (the ``host`` option). Default: none — the
        backend places servers itself (best fit by GPU count and minimum memory)."""
        return {}

    @classmethod
    def image_ref_problem(cls, settings: Any) -> str | None:
        """Why a backend with these (parsed) settings cannot run an image reference a user
        typed (a custom image, where the policy's ``image_refs`` allow one); None when it
        can: `parse_image` then takes ``{"image": reference}``. Default: it cannot."""
        return f"backend kind {cls.kind!r} runs no container images"

    @classmethod
    def mounts_problem(cls, settings: Any) -> str | None:
        """Why servers and runs on a backend with these (parsed) settings cannot have data
        mounts (a field error at a run's submit); None when they can (the default)."""
        return None

    @classmethod
    def resource_limits(cls, settings: Any) -> str:
        """Whether servers on a backend with these (parsed) settings are held to the user's
        ``cpu`` / ``memory`` choices: ``"all"`` (every server), ``"some"`` (on some hosts) or
        ``"none"``. The form tells users where their choice is not enforced. Default: all."""
        return "all"

    # -- lifecycle
    #: the start budget of a kind that does not say (`start_budget`)
    default_start_budget: ClassVar[float] = 300.0

    def start_budget(self, request: LaunchRequest) -> float:
        """The most seconds `launch` may take for ``request``, by this backend's own
        documented timeouts (connect, commands, image pull, data copies). The spawner gives
        JupyterHub this as the server's start timeout unless the admin sets
        ``c.Spawner.start_timeout``, so JupyterHub never cuts a launch that its backend still
        allows — the backend's own, more telling error comes first."""
        return self.default_start_budget

    @abstractmethod
    async def launch(self, ctx: LaunchContext, request: LaunchRequest) -> Launch:
        """Place and start a server; report steps through ``ctx.progress``.

        Raises BackendError with a user-facing message: NoCapacity only when the hosts
        answered and nothing fits; Unreachable / AccessDenied when that is why.
        Must leave nothing behind (processes, directories, GPU claims) when it raises.
        """

    @abstractmethod
    async def restore(self, state: dict) -> Launch:
        """Re-attach to a server from its saved state (after a hub restart): rebuild tunnels."""

    @abstractmethod
    async def poll(self, launch: Launch) -> int | None:
        """None while running, else an exit status."""

    @abstractmethod
    async def stop(self, launch: Launch, now: bool = False) -> None:
        """Stop the server, release its GPUs and remove what launch made."""

    @abstractmethod
    async def probe_capacity(self) -> Capacity:
        """Ask the hosts/cluster what is free. Called in the background, never on a request."""

    async def renew_credentials(self, launch: Launch, secrets: Mapping[int, Any]) -> list[int]:
        """Give the running server's S3 mounts new STS credentials (mount index →
        `gridspawner.mounts.resolved.S3Secret`); returns the indexes that took them. Only
        where `renews_credentials` is true."""
        raise BackendError(f"backend kind {self.kind!r} cannot renew the credentials of a running server's mounts")

    async def reconcile(self, known: Callable[[], Iterable[dict]], grace: float, *,
                        probe_max_age: float = 0.0) -> Reconciled:
        """Crash recovery: stop and remove what this backend runs for this hub (``hub_id``)
        that no server the hub knows uses and that has not changed for ``grace`` seconds —
        what a hub killed mid-launch or mid-stop left. ``known()`` returns the saved launch
        states of every server the hub knows on this backend; it is called after the backend
        has looked, so a launch that finishes meanwhile counts as known. A launch in flight
        in this process is never touched; a GPU whose process still runs is never freed.
        ``probe_max_age``: a host probe at most this old may be reused. Default: nothing to do."""
        return Reconciled(backend=self.name)

    def note_cut_short(self, user: str, server_name: str, slug: str) -> None:
        """JupyterHub believed this server ran, but no launch state says where: a launch of it
        was cut short by a crash before its state was saved. A backend whose looks for orphans
        cannot see everything may look for this one specifically. Default: nothing."""

    async def announce_stops(self, launch: Launch, entries: list[dict]) -> bool:
        """Tell the running server about stops the hub plans: the entries of the stops file
        (docs/admin/lab-extension.md), which replace the file's content. True when the
        server was told; False where this kind has no way to (the default)."""
        return False

    def gpu_busy(self, launch: Launch, threshold: int, max_age: float) -> bool | None:
        """Whether the server's GPUs are in use (utilisation at least ``threshold`` % by its
        own processes), from what this backend observed in the last ``max_age`` seconds
        without asking anything new; None when it cannot tell (the idle policy then keeps
        the server: see docs/admin/usage.md)."""
        return None

    # -- batch jobs (notebook runs): the same placement and clean-up as servers
    #: whether this kind implements the batch operations below
    runs_batch: ClassVar[bool] = False

    async def start_batch(self, ctx: LaunchContext, request: LaunchRequest, job: BatchJob) -> Launch:
        """Place ``request`` (GPUs, image, mounts, limits) and start ``job.argv`` there, like
        `launch` but with no Jupyter server and no URL (``Launch.url`` is ""). ``Launch.state``
        is JSON-able, holds no secret and is enough for `poll_batch` / `finish_batch` /
        `stop` after a restart of the process (it also holds ``job.outputs``). Raises
        BackendError like `launch` (NoCapacity only when nothing fits now: the caller queues)
        and leaves nothing behind when it raises."""
        raise BackendError(f"backend kind {self.kind!r} does not run batch jobs")

    async def poll_batch(self, launch: Launch) -> int | None:
        """None while the job runs, else its exit code (a job found gone without an exit code
        reads -1)."""
        raise BackendError(f"backend kind {self.kind!r} does not run batch jobs")

    async def finish_batch(self, launch: Launch) -> BatchResult:
        """After `poll_batch` said the job ended (or after `stop`): bring back its outputs and
        log tail, then release everything it held (GPU, mounts, session/pod, Secrets).
        Idempotent: a second call returns what is still there (possibly nothing)."""
        raise BackendError(f"backend kind {self.kind!r} does not run batch jobs")

    async def delete_forever(self, user: str, server_name: str, slug: str) -> None:
        """The user or named server is deleted for good: remove what outlives a server
        (e.g. a home volume). Default: nothing outlives a server."""

    async def close(self) -> None:
        """Release connections (hub shutdown)."""


def empty_capacity(backend: str) -> Capacity:
    return Capacity(backend=backend, updated=0.0)


__all__ = [
    "AccessDenied",
    "BATCH_LOG_TAIL",
    "Backend",
    "BackendError",
    "BatchJob",
    "BatchResult",
    "Capacity",
    "HostCapacity",
    "Launch",
    "LaunchContext",
    "NoCapacity",
    "Reconciled",
    "Unreachable",
    "empty_capacity",
]

"""GridSpawner: the only class that knows JupyterHub. Traits, form glue and delegation.

Validation lives in `request`, the form in `form`, the work in `backends`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import Any

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Dict, Float, Int, List, Union, Unicode, default

from .backends.base import BackendError, Launch, LaunchContext, NoCapacity
from .catalog import CatalogError
from .form import parse_form, render_form
from .request import LaunchRequest, OptionsError, build_request, default_values
from .runtime import Runtime, catalog_for
from .startup import schedule_startup_check

# Last invalid form submission per user, shown once by the next form render. Kept here (not
# on the spawner) because JupyterHub re-renders the form through the user's default spawner.
_form_feedback: dict[str, tuple[dict, dict]] = {}


class GridSpawner(Spawner):
    """Spawn a user's server on a backend the user picks: Kubernetes, SSH hosts or this machine."""

    # ------------------------------------------------------------------ catalog traits
    backends = Dict(
        help="""
        The places servers can run, by name. Each value is a dict with ``kind`` (``local``:
        this machine; ``ssh``: remote hosts; ``kubernetes``: a cluster), optional
        ``display_name`` and ``description`` shown in the form, and the kind's own settings
        (see the admin guide for each kind).

        Example::

            c.GridSpawner.backends = {
                "here": {"kind": "local", "display_name": "Hub machine"},
            }
        """,
    ).tag(config=True)

    images = Dict(
        help="""
        The images or environments users choose from, by key. Each value has
        ``display_name``, optional ``description``, and one entry per backend kind saying what
        to run there, e.g. ``{"local": {"cmd": ["jupyterhub-singleuser"], "env": {...}}}``.
        An image is offered on a backend only when it has an entry for that backend's kind.
        """,
    ).tag(config=True)

    max_gpus = Int(
        8,
        help="The most GPUs any single server may ask for, whatever a group policy says.",
    ).tag(config=True)

    gpu_memory_classes = List(
        [0, 16, 24, 40, 80],
        help="""
        The minimum-VRAM-per-GPU choices offered, in GB; 0 means "any GPU" and is always
        offered. A card counts as N GB when it reports at least
        ``N * 1024 * (1 - gpu_memory_tolerance)`` MiB.
        """,
    ).tag(config=True)

    gpu_memory_tolerance = Float(
        0.07,
        help="""
        How much less VRAM than the nominal size a card may report and still match a class
        (a fraction). GPUs report a few percent less than their marketed size: an "A10 24 GB"
        reports 23028 MiB, a "T4 16 GB" 15360 MiB. The default 0.07 accepts those while a
        16 GB card never matches 24 GB.
        """,
    ).tag(config=True)

    cpu_choices = List(
        [],
        help="CPU counts users may pick (e.g. ``[1, 2, 4, 8]``). Empty: no CPU field; the backend's default applies.",
    ).tag(config=True)

    memory_choices = List(
        [],
        help="Memory sizes in GB users may pick (e.g. ``[4, 8, 16]``). Empty: no memory field.",
    ).tag(config=True)

    group_policy = Dict(
        help="""
        What members of a JupyterHub group may choose, by group name. Each value may set
        ``backends`` and ``images`` (lists of names, or ``"*"`` for all), ``max_gpus`` and
        ``free_choice`` (``False``: members may only start the profiles offered to them).
        A user in several listed groups gets the union of their policies; a user in none of
        them gets `default_policy`.

        Example (a course that may use one GPU, only through its profile)::

            c.GridSpawner.group_policy = {
                "ml101": {"backends": ["gpu-lab"], "images": ["pytorch"],
                          "max_gpus": 1, "free_choice": False},
            }
        """,
    ).tag(config=True)

    default_policy = Dict(
        {"backends": "*", "images": "*", "free_choice": True},
        help="""
        The policy for users in none of the groups named in `group_policy` (same keys).
        The default lets them choose any backend and image, up to `max_gpus` GPUs; set e.g.
        ``{"free_choice": False}`` to offer them profiles only.
        """,
    ).tag(config=True)

    profiles = Dict(
        help="""
        Named presets shown first in the form, by key. Each value may have ``display_name``,
        ``description``, ``groups`` (JupyterHub groups that see it; empty or missing: everyone),
        ``values`` (any of backend, image, gpus, gpu_memory, cpu, memory), ``changeable``
        (the fields from ``values`` the user may still change), ``max_gpus`` (a cap when
        ``gpus`` is changeable) and ``max_runtime`` (e.g. ``"4h"``: the server is stopped after
        that long, so a forgotten GPU server does not run for a week).

        Example::

            c.GridSpawner.profiles = {
                "ml-course": {
                    "display_name": "ML course: 1 T4, PyTorch",
                    "groups": ["ml101"],
                    "values": {"backend": "gpu-lab", "image": "pytorch", "gpus": 1, "gpu_memory": 16},
                    "max_runtime": "4h",
                },
            }
        """,
    ).tag(config=True)

    default_options = Dict(
        help="""
        Starting values for the form and for REST requests that omit a field: any of
        backend, image, gpus, gpu_memory, cpu, memory. Unset: the first backend and image
        the user may use, no GPU.
        """,
    ).tag(config=True)

    max_runtime = Union(
        [Float(), Unicode()],
        default_value=0.0,
        help="""
        Stop every server after this long (seconds, or a string such as ``"12h"``, ``"3d"``);
        0 means no limit. A profile's own ``max_runtime`` takes precedence.
        """,
    ).tag(config=True)

    capacity_refresh_interval = Float(
        15.0,
        help="Seconds between background capacity probes of every backend (the form shows the cached result).",
    ).tag(config=True)

    @default("port")
    def _default_port(self):
        # jupyter-server refuses --sock unless the port is its default (8888); the URL the
        # proxy uses is the backend's relay/tunnel, which start() returns.
        return 8888

    @default("options_form")
    def _default_options_form(self):
        return GridSpawner._render_options_form

    # ------------------------------------------------------------------ shared objects
    def _raw_catalog(self) -> dict[str, Any]:
        return {
            "backends": self.backends,
            "images": self.images,
            "max_gpus": self.max_gpus,
            "gpu_memory_classes": self.gpu_memory_classes,
            "cpu_choices": self.cpu_choices,
            "memory_choices": self.memory_choices,
            "group_policy": self.group_policy,
            "default_policy": self.default_policy,
            "profiles": self.profiles,
            "default_options": self.default_options,
            "gpu_memory_tolerance": self.gpu_memory_tolerance,
            "max_runtime": self.max_runtime,
        }

    @property
    def catalog(self):
        return catalog_for(self._raw_catalog())

    @property
    def runtime(self) -> Runtime:
        runtime = Runtime.for_catalog(self.catalog, self.capacity_refresh_interval)
        runtime.capacity.ensure_running()
        return runtime

    def _groups(self) -> list[str]:
        user = self.user
        if user is None:
            return []
        return [g.name for g in getattr(user, "groups", [])]

    def _user_name(self) -> str:
        return self.user.name if self.user is not None else ""

    # ------------------------------------------------------------------ form
    @staticmethod
    def _render_options_form(spawner: "GridSpawner") -> str:
        values, errors = _form_feedback.pop(spawner._user_name(), (None, None))
        if values is None:
            values = dict(spawner.user_options or {}) or None
        return render_form(
            catalog=spawner.catalog,
            groups=spawner._groups(),
            capacity=spawner.runtime.capacity.snapshot(),
            values=values,
            errors=errors or {},
        )

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        options = parse_form(formdata)
        try:
            build_request(options, self.catalog, self._groups())
        except OptionsError as e:
            _form_feedback[self._user_name()] = (options, e.errors)
            raise web.HTTPError(400, f"Please correct: {e}") from None
        return options

    # ------------------------------------------------------------------ lifecycle
    _launch: Launch | None = None
    _backend_name: str | None = None
    _saved_launch_state: dict | None = None
    _started_at: float | None = None
    _deadline: float | None = None
    _deadline_handle: asyncio.TimerHandle | None = None
    _progress_queue: asyncio.Queue | None = None

    def _build_request(self) -> LaunchRequest:
        try:
            return build_request(self.user_options, self.catalog, self._groups())
        except OptionsError as e:
            raise web.HTTPError(400, f"Invalid server options: {e}") from None

    def _slug(self) -> str:
        user, server = self._user_name(), self.name or ""
        digest = hashlib.sha256(f"{user}\0{server}".encode()).hexdigest()[:10]
        readable = re.sub(r"[^a-z0-9]+", "-", f"{user}-{server}".lower()).strip("-")[:20]
        return f"{readable}-{digest}" if readable else digest

    def _progress(self, message: str) -> None:
        self.log.info("%s: %s", self._log_name, message)
        if self._progress_queue is not None:
            self._progress_queue.put_nowait(message)

    async def start(self):
        request = self._build_request()
        backend = self.runtime.backends[request.backend]
        self._progress_queue = asyncio.Queue()
        self.log.info("Starting %s on backend %s: %s", self._log_name, request.backend, request.summary())
        ctx = LaunchContext(
            user=self._user_name(),
            server_name=self.name or "",
            slug=self._slug(),
            env=self.get_env(),
            cmd=tuple(self.cmd),
            args=tuple(self.get_args()),
            log=self.log,
            progress=self._progress,
        )
        try:
            launch = await backend.launch(ctx, request)
        except NoCapacity as e:
            raise web.HTTPError(503, f"No capacity: {e}") from None
        except BackendError as e:
            raise web.HTTPError(500, f"Could not start your server: {e}") from None
        finally:
            self.runtime.capacity.poke()
            if self._progress_queue is not None:
                self._progress_queue.put_nowait(None)
        self._launch, self._backend_name = launch, request.backend
        self._started_at = time.time()
        self._deadline = self._started_at + request.max_runtime if request.max_runtime else None
        self._arm_deadline()
        return launch.url

    async def progress(self):
        queue = self._progress_queue
        if queue is None:
            return
        step = 0
        while True:
            message = await queue.get()
            if message is None:
                break
            step += 1
            yield {"progress": min(90, 10 + 20 * step), "message": message}

    async def _ensure_attached(self) -> Launch | None:
        if self._launch is None and self._saved_launch_state and self._backend_name in self.runtime.backends:
            self._launch = await self.runtime.backends[self._backend_name].restore(self._saved_launch_state)
            self._arm_deadline()
        return self._launch

    async def poll(self):
        try:
            launch = await self._ensure_attached()
        except BackendError as e:
            self.log.warning("%s could not be re-attached: %s", self._log_name, e)
            return 1
        if launch is None:
            return 0
        if self._deadline is not None and time.time() >= self._deadline:
            self.log.warning("%s reached its maximum run time; stopping it", self._log_name)
            await self.stop()
            return 0
        return await self.runtime.backends[self._backend_name].poll(launch)

    async def get_url(self):
        launch = await self._ensure_attached()
        return launch.url if launch is not None else await super().get_url()

    async def stop(self, now=False):
        self._cancel_deadline()
        try:
            launch = await self._ensure_attached()
        except BackendError as e:
            self.log.warning("%s could not be re-attached for stopping: %s", self._log_name, e)
            return
        if launch is None:
            return
        await self.runtime.backends[self._backend_name].stop(launch, now=now)
        self.runtime.capacity.poke()
        self._launch = None
        self._saved_launch_state = None

    # ------------------------------------------------------------------ max run time
    def _arm_deadline(self) -> None:
        self._cancel_deadline()
        if self._deadline is None:
            return
        delay = max(0.0, self._deadline - time.time())
        loop = asyncio.get_running_loop()
        self._deadline_handle = loop.call_later(delay, lambda: asyncio.ensure_future(self._expire()))

    def _cancel_deadline(self) -> None:
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
            self._deadline_handle = None

    async def _expire(self) -> None:
        self._deadline_handle = None
        self.log.warning("%s reached its maximum run time; stopping it", self._log_name)
        if self.user is not None and hasattr(self.user, "stop"):
            await self.user.stop(self.name)
        else:
            await self.stop()

    # ------------------------------------------------------------------ state
    def get_state(self):
        state = super().get_state()
        launch_state = self._launch.state if self._launch is not None else self._saved_launch_state
        if launch_state:
            state["backend"] = self._backend_name
            state["launch"] = launch_state
            state["started_at"] = self._started_at
            state["deadline"] = self._deadline
        return state

    def load_state(self, state):
        super().load_state(state)
        if state.get("launch"):
            self._backend_name = state.get("backend")
            self._saved_launch_state = state["launch"]
            self._started_at = state.get("started_at")
            self._deadline = state.get("deadline")

    def clear_state(self):
        super().clear_state()
        self._cancel_deadline()
        self._launch = None
        self._saved_launch_state = None
        self._backend_name = None
        self._started_at = self._deadline = None

    def form_defaults(self) -> dict[str, Any]:
        """The values a fresh form starts from for this user (used by the docs and tests)."""
        return default_values(self.catalog, self.catalog.policy_for(self._groups()))


def validate_config(spawner: GridSpawner) -> None:
    """Build the catalog from ``spawner``'s config; raises CatalogError naming the key."""
    spawner.catalog


schedule_startup_check(GridSpawner, validate_config, CatalogError)

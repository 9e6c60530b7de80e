"""GridSpawner: the only class that knows JupyterHub. Form glue, state and delegation.

The admin's catalog traits live in `traits`, validation in `request`, the form in `form`,
data-mount credentials in `mounts`, the work in `backends`.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import default
from traitlets.config import Configurable

from . import metrics, pages
from .activation import activate
from .backends.base import BackendError, Launch, LaunchContext, NoCapacity
from .form import parse_form, render_form
from .form.feedback import FormFeedback
from .hub_identity import resolve_hub_id, session_slug
from .max_runtime import MaxRunTime
from .mounts.keys import KeyStore
from .mounts.renewal import CredentialRenewal, next_renewal, stop_deadline
from .mounts.specs import MountSpec, strip_secrets
from .preparation import MountCheckFailed, Prepared, Submission, prepare
from .recovery_traits import CrashRecoverySettings
from .progress_feed import ProgressFeed
from .refusals import drop_repeated_banner, launch_failure, no_capacity_message, refusal
from .request import LaunchRequest
from .runs.nudge import nudge
from .runs.traits import RunsSettings
from .server_env import parse_stop_warnings, request_env
from .shared_backends import SharedBackends, catalog_for
from .startup import schedule_startup_check
from .traits import CatalogSettings
from .usage.spawner_usage import SpawnerUsage, check_usage_config
from .vocabulary import OptionsError, Problems

# Refused form submissions, by (user, server), shown once by the next render of that
# server's form (see form/feedback.py for how JupyterHub renders it). Bounded in size and
# age; never holds a secret: the options are stripped first.
_form_feedback = FormFeedback()


class GridSpawner(CatalogSettings, CrashRecoverySettings, SpawnerUsage, RunsSettings, Spawner):
    """Spawn a user's server on a backend the user picks: Kubernetes, SSH hosts or this machine."""

    @default("port")
    def _default_port(self):
        # jupyter-server refuses --sock unless the port is its default (8888); the URL the
        # proxy uses is the backend's relay/tunnel, which start() returns.
        return 8888

    @default("options_form")
    def _default_options_form(self):
        return GridSpawner._render_options_form

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return GridSpawner._apply_options

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        activate()  # the hub uses GridSpawner: now (and only now) change the hub process
        pages.LIVE.add(self)  # for the admin page's list of servers

    def __init_subclass__(cls, **kwargs: Any):
        # a subclass defined in jupyterhub_config.py: the hub is about to use GridSpawner,
        # and its config is being loaded now (see startup.py)
        super().__init_subclass__(**kwargs)
        schedule_startup_check(GridSpawner)

    def _admin_set(self, name: str) -> bool:
        """Whether the admin's config sets trait ``name`` for this class (``c.Spawner.x``,
        ``c.GridSpawner.x`` or a subclass's section), as opposed to its default."""
        sections = [c.__name__ for c in type(self).__mro__ if isinstance(c, type) and issubclass(c, Configurable)]
        return any(section in self.config and name in self.config[section] for section in sections)

    # ------------------------------------------------------------------ shared objects
    @property
    def catalog(self):
        return catalog_for(self.raw_catalog())

    @property
    def shared(self) -> SharedBackends:
        """This process's backends for the configured catalog, their capacity probes running."""
        shared = SharedBackends.for_catalog(self.catalog, self.capacity_refresh_interval, resolve_hub_id(self.hub_id))
        shared.capacity.ensure_running()
        return shared

    def check_config(self) -> None:
        """Build the catalog from this spawner's config and check the settings the catalog
        does not hold (the hub id, usage and quotas); raises CatalogError naming the key,
        CatalogErrors naming every bad key. The hub's start-up check calls it."""
        problems = Problems()
        with problems.collect():
            self.catalog
        with problems.collect():
            parse_stop_warnings(self.stop_warnings)
        with problems.collect():
            resolve_hub_id(self.hub_id)
        check_usage_config(self, problems)
        with problems.collect():
            self.check_runs_store()
        problems.raise_any()

    def _groups(self) -> list[str]:
        user = self.user
        if user is None:
            return []
        return [g.name for g in getattr(user, "groups", [])]

    def _user_name(self) -> str:
        return self.user.name if self.user is not None else ""

    # ------------------------------------------------------------------ form
    @staticmethod
    async def _render_options_form(spawner: "GridSpawner") -> str:
        values, errors = _form_feedback.take(spawner._user_name(), spawner.name or "") or (None, None)
        if values is None:
            values = dict(strip_secrets(spawner.user_options or {})[0]) or None
        form = render_form(
            catalog=spawner.catalog,
            groups=spawner._groups(),
            capacity=spawner.shared.capacity.snapshot(),
            values=values,
            errors=errors or {},
            username=spawner._user_name(),
            ssh_public_key=await spawner._ssh_public_key(),
        )
        return drop_repeated_banner(spawner, form) + await spawner._usage_panel()

    async def _ssh_public_key(self) -> str | None:
        """The user's hub-managed SSH public key (made on first use), when an SSH storage
        host the user may use takes ``auth: key``; else None."""
        storage = self.catalog.storage
        if storage.key_dir is None or self.user is None:
            return None
        if not any("key" in storage.ssh[h].auth for h in storage.ssh_for(self._groups())):
            return None
        try:
            return await KeyStore(storage.key_dir).aensure(self._user_name())
        except OSError as e:
            self.log.warning("%s: cannot prepare the SSH key for data mounts: %s", self._log_name, e)
            return None

    async def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        """Parse and validate the form, check the data mounts live (so a wrong bucket is a
        field error on the form, and nothing starts), and return the options WITHOUT the
        typed secrets. What was prepared (secrets included) stays on this spawner, in
        memory, for the spawn JupyterHub starts next with exactly these options."""
        options = parse_form(formdata)
        clean, _ = strip_secrets(options)
        self._submission = None
        try:
            prepared = await self._prepare(options, show_progress=False)
        except OptionsError as e:
            metrics.count_rejected(e.errors)
            _form_feedback.put(self._user_name(), self.name or "", clean, e.errors)
            raise refusal(e.errors, prefix="Please correct", form=True) from None
        self._submission = Submission(clean, prepared)
        return clean

    # ------------------------------------------------------------------ one spawn's options
    _submission: Submission | None = None
    #: this spawn's validated request and checked mounts (secrets: memory only), or the 400
    #: it must end with; set by apply_user_options, taken by start()
    _prepared: Prepared | None = None
    _refusal: web.HTTPError | None = None

    async def _prepare(self, options: Any, show_progress: bool = True) -> Prepared:
        progress = self._progress if show_progress else lambda message: self.log.info("%s: %s", self._log_name, message)
        return await prepare(options, self.catalog, self._groups(), self._user_name(), progress=progress,
                             quota=self._quota_refusal)

    @staticmethod
    async def _apply_options(spawner: "GridSpawner", user_options: dict) -> None:
        """JupyterHub's ``apply_user_options`` hook (5.3+): runs in every spawn, form or
        REST, after the options are saved and before ``start()``."""
        await spawner._prepare_spawn(user_options)

    async def _prepare_spawn(self, user_options: Any) -> None:
        """Validate this spawn's options once (a form submission's preparation is reused
        when the options are the ones it returned), check the data mounts, and size the
        start timeout for the chosen backend. A refusal waits for ``start()``, which raises
        it: JupyterHub logs a traceback for any error raised by this hook, and a user's
        mistake is no hub fault."""
        self._begin_progress()
        self._prepared, self._refusal = None, None
        clean, inline = strip_secrets(user_options or {})
        if inline:
            self.user_options = clean  # typed secrets (REST) leave the spawner's options here
        submission, self._submission = self._submission, None
        started = time.monotonic()
        try:
            if submission is not None and not inline and submission.matches(clean):
                prepared = submission.prepared
            else:
                prepared = await self._prepare(user_options or {})
        except OptionsError as e:
            metrics.count_rejected(e.errors)
            if isinstance(e, MountCheckFailed):  # a valid request whose data mount failed its check
                metrics.observe_spawn(e.request.backend, "bad_request", time.monotonic() - started)
            self._refusal = refusal(e.errors)
            return
        self._prepared = prepared
        self._follow_start_budget(prepared.request)

    def _follow_start_budget(self, request: LaunchRequest) -> None:
        """JupyterHub gives ``start()`` ``start_timeout`` seconds (default 60): unless the
        admin set it, use the chosen backend's own budget (an image pull or a data copy
        may take minutes), so JupyterHub never cuts what the backend still allows."""
        if self._admin_set("start_timeout"):
            return
        budget = self.shared.backends[request.backend].start_budget(request)
        self.start_timeout = math.ceil(budget)

    # ------------------------------------------------------------------ lifecycle
    _launch: Launch | None = None
    _backend_name: str | None = None
    _saved_launch_state: dict | None = None
    _started_at: float | None = None
    _deadline: float | None = None
    _feed: ProgressFeed | None = None  # created by _begin_progress()

    _mount_specs: tuple = ()

    def _slug(self) -> str:
        return session_slug(self.shared.hub_id, self._user_name(), self.name or "")

    def _begin_progress(self) -> None:
        self._feed = ProgressFeed()

    def _progress(self, message: str) -> None:
        """Logged as it is; the spawn page gets it as a step, in users' words (progress_steps)."""
        self.log.info("%s: %s", self._log_name, message)
        if self._feed is not None:
            self._feed.add(message)

    def _end_progress(self) -> None:
        """However start() ends, the spawn page's progress stream ends with it."""
        if self._feed is not None:
            self._feed.end()

    async def start(self):
        if self._prepared is None and self._refusal is None:
            # the admin replaced apply_user_options with a hook of their own: prepare here
            await self._prepare_spawn(self.user_options)
        prepared, refusal = self._prepared, self._refusal
        self._prepared = self._refusal = None  # the mounts' secrets go with this start
        if refusal is not None:
            self._end_progress()
            raise refusal
        request = prepared.request
        backend = self.shared.backends[request.backend]
        self._feed.steps.describe(request, self.catalog.backends[request.backend].display_name, backend)
        self.log.info("Starting %s on backend %s (start timeout %s s): %s",
                      self._log_name, request.backend, self.start_timeout, request.summary())
        started, outcome = time.monotonic(), "failure"
        credentials_stop = None
        try:
            self._mount_specs = tuple(request.mounts)
            # counted from before the launch, so that the server finds it in its environment
            deadline = time.time() + request.max_runtime if request.max_runtime else None
            credentials_stop = None if backend.renews_credentials else stop_deadline(prepared.mounts)
            if credentials_stop is not None:
                deadline = min(deadline or credentials_stop, credentials_stop)
                self._progress(f"the server will be stopped at {time.strftime('%H:%M', time.gmtime(credentials_stop))} "
                               "UTC, before the temporary S3 credentials of its data mounts expire (this backend "
                               "cannot renew them)")
            ctx = LaunchContext(
                user=self._user_name(),
                server_name=self.name or "",
                slug=self._slug(),
                env={**self.get_env(), **request_env(request, self.catalog, deadline, parse_stop_warnings(self.stop_warnings))},
                cmd=tuple(self.cmd),
                args=tuple(self.get_args()),
                log=self.log,
                progress=self._progress,
                mounts=prepared.mounts,
                storage=self.catalog.storage if prepared.mounts else None,
            )
            launch = await self._launch_on(backend, ctx, request)
            outcome = "success"
        except web.HTTPError as e:
            outcome = getattr(e, "gridspawner_outcome", None) or {400: "bad_request"}.get(e.status_code, "failure")
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._end_progress()
            metrics.observe_spawn(request.backend, outcome, time.monotonic() - started)
        self._launch, self._backend_name = launch, request.backend
        self._started_at = time.time()
        self._deadline = deadline
        self._max_run_time().arm(self._deadline, self._backend_name)
        self._credential_renewal().arm(backend, launch, self._mount_specs, self.catalog.storage, self._user_name(),
                                       next_renewal(prepared.mounts))
        await self._usage.started(self, self.usage, request, launch)
        return launch.url

    async def _launch_on(self, backend, ctx: LaunchContext, request: LaunchRequest) -> Launch:
        """backend.launch, its failures as HTTP errors the user reads; capacity refreshed after."""
        try:
            return await backend.launch(ctx, request)
        except NoCapacity as e:
            self.log.warning("%s: No capacity: %s", self._log_name, e)  # where, for the admin
            cap = await self.shared.capacity.refresh_backend(request.backend)
            raise launch_failure(e, no_capacity_message(self.catalog.backends[request.backend].display_name, cap,
                                                        request.gpus, request.gpu_memory,
                                                        self.catalog.gpu_memory_tolerance, str(e))) from None
        except BackendError as e:
            raise launch_failure(e) from None
        finally:
            self.shared.capacity.poke()

    async def progress(self):
        """Replay the launch's progress messages, then follow new ones until start() ends.

        Every consumer (each open spawn page) sees every message.
        """
        if self._feed is not None:
            async for event in self._feed.follow():
                yield event

    def _backend(self):
        """The backend this server runs on; BackendError if the admin removed it since."""
        backend = self.shared.backends.get(self._backend_name)
        if backend is None:
            raise BackendError(f"backend {self._backend_name!r} is no longer configured")
        return backend

    async def _ensure_attached(self) -> Launch | None:
        if self._launch is None and self._saved_launch_state:
            self._launch = await self._backend().restore(self._saved_launch_state)
            self._usage.restored(self, self.usage)
            self._max_run_time().arm(self._deadline, self._backend_name)
            # after a hub restart: how old the mounts' credentials are is unknown, renew now
            self._credential_renewal().arm(self._backend(), self._launch, self._mount_specs, self.catalog.storage,
                                           self._user_name(), time.time())
        return self._launch

    async def poll(self):
        try:
            launch = await self._ensure_attached()
        except BackendError as e:
            self.log.warning("%s could not be re-attached: %s", self._log_name, e)
            await self._usage.lost(self.usage)
            return 1
        if launch is None:
            self._note_cut_short()
            return 0
        if self._deadline is not None and time.time() >= self._deadline:
            self._max_run_time().note_expired(self._deadline, self._backend_name)
            self._usage.stop_reason = "max_runtime"
            await self.stop()
            return 0
        backend = self._backend()
        status = await backend.poll(launch)
        if status is None:
            self._usage.alive()
        else:
            await self._usage.gone(self.usage, status, backend.exit_status_known)
        return status

    def _note_cut_short(self) -> None:
        """JupyterHub polls a server it believes runs, and there is no launch state: a launch
        cut short by a crash (the state is saved only after start() returns). Its backend may
        look for what that launch left (see gridspawner.reconcile). Not after a start() of
        this process (a failed launch cleans up after itself)."""
        if self._feed is not None:
            return
        name = (self.user_options or {}).get("backend") if isinstance(self.user_options, dict) else None
        backend = self.shared.backends.get(name) if self.server is not None and isinstance(name, str) else None
        if backend is not None:
            backend.note_cut_short(self._user_name(), self.name or "", self._slug())

    async def get_url(self):
        """The server's URL as JupyterHub stores it (``server.url``: the backend's address plus
        ``/user/NAME/[SERVER/]``), so a hub restart that finds the same address logs nothing."""
        launch = await self._ensure_attached()
        if launch is None:
            return await super().get_url()
        return hub_server_url(launch.url, self.server.base_url if self.server is not None else "/")

    async def stop(self, now=False):
        self._max_run_time().cancel()
        try:
            try:
                launch = await self._ensure_attached()
            except BackendError as e:
                self.log.warning("%s could not be re-attached for stopping: %s", self._log_name, e)
                return
            finally:
                self._credential_renewal().cancel()
            if launch is None:
                return
            await self._backend().stop(launch, now=now)
            nudge(self._backend_name)  # its GPUs are free: a queued run may start now
            self._launch = None
            self._saved_launch_state = None
            # recorded before the capacity poke, so that the refresh it starts comes last: a
            # refresh whose subprocess is being created when JupyterHub, at its shutdown,
            # cancels every task can hang the hub's exit (CPython 3.11)
            await self._usage.stopped(self.usage)
            self.shared.capacity.poke()
        finally:
            await self._usage.stopped(self.usage)  # the paths above that failed (once only)

    async def delete_forever(self):
        """The user or this named server is deleted: let every backend drop what outlived it."""
        for name, backend in self.shared.backends.items():
            try:
                await backend.delete_forever(self._user_name(), self.name or "", self._slug())
            except BackendError as e:
                self.log.warning("%s: backend %s could not delete stored data: %s", self._log_name, name, e)

    _renewal: CredentialRenewal | None = None

    def _credential_renewal(self) -> CredentialRenewal:
        """The renewal of this server's S3 mount credentials (see `gridspawner.mounts.renewal`)."""
        if self._renewal is None:
            self._renewal = CredentialRenewal(self.log, self._log_name)
        return self._renewal

    _max_run_time_timer: MaxRunTime | None = None

    def _max_run_time(self) -> MaxRunTime:
        """The timer that stops this server at its deadline (see `gridspawner.max_runtime`)."""
        if self._max_run_time_timer is None:
            self._max_run_time_timer = MaxRunTime(self.log, self._log_name, lambda: self._stop_by_hub("max_runtime"))
        return self._max_run_time_timer

    # ------------------------------------------------------------------ state
    def get_state(self):
        state = super().get_state()
        launch_state = self._launch.state if self._launch is not None else self._saved_launch_state
        if launch_state:
            state["backend"] = self._backend_name
            state["launch"] = launch_state
            state["started_at"] = self._started_at
            state["deadline"] = self._deadline
            if self._mount_specs:
                # what was mounted, without a secret: MountSpec values only
                state["mounts"] = [m.to_dict() for m in self._mount_specs]
            state.update(self._usage.state())
        return state

    def load_state(self, state):
        super().load_state(state)
        if state.get("launch"):
            self._backend_name = state.get("backend")
            self._saved_launch_state = state["launch"]
            self._started_at = state.get("started_at")
            self._deadline = state.get("deadline")
            rows = state.get("mounts") or []
            self._mount_specs = tuple(MountSpec.from_dict(m) for m in rows if isinstance(m, dict))
            self._usage.load_state(state)

    def clear_state(self):
        super().clear_state()
        # (not the form's submission: JupyterHub clears the state at the start of every
        # spawn too, before apply_user_options takes the submission)
        self._prepared = self._refusal = None
        self._max_run_time().cancel()
        self._credential_renewal().cancel()
        self._launch = None
        self._saved_launch_state = None
        self._backend_name = None
        self._started_at = self._deadline = None
        self._mount_specs = ()
        self._usage.clear()


def hub_server_url(address: str, base_url: str) -> str:
    """``address`` (``http://10.0.0.5:8888``, what a backend returns) with the server's
    ``base_url`` as its path: the form of JupyterHub's ``Server.url``, which a restarted hub
    compares with ``get_url()``."""
    parts = urlsplit(address)
    host = parts.hostname or ""
    port = parts.port or {"https": 443}.get(parts.scheme, 80)  # what JupyterHub stores without one
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, base_url or "/", "", ""))



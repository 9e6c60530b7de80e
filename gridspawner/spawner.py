"""GridSpawner: the only class that knows JupyterHub. Form glue, state and delegation.

The admin's catalog traits live in `traits`, validation in `request`, the form in `form`,
data-mount credentials in `mounts`, the work in `backends`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import default

from . import metrics
from .backends.base import BackendError, Launch, LaunchContext, NoCapacity, Unreachable
from .form import parse_form, render_form
from .mounts.dbfilter import install_user_options_filter
from .mounts.renewal import CredentialRenewal, next_renewal, stop_deadline
from .mounts.request import MountSpec, strip_secrets
from .mounts.resolve import SecretStash, fingerprint, resolve_mounts
from .request import LaunchRequest, OptionsError, build_request, default_values
from .runtime import Runtime, catalog_for
from .startup import schedule_startup_check
from .traits import CatalogSettings

# Last invalid form submission per user, shown once by the next form render. Kept here (not
# on the spawner) because JupyterHub re-renders the form through the user's default spawner.
# Never holds a secret: the options are stripped first.
_form_feedback: dict[str, tuple[dict, dict]] = {}

# Secrets typed into the form (S3 keys, SSH passwords), by (user, server): JupyterHub saves
# the options to its database between options_from_form and start(), so they travel apart,
# in this process's memory only, and start() takes them out.
_form_secrets = SecretStash(ttl=300)


install_user_options_filter()


class GridSpawner(CatalogSettings, Spawner):
    """Spawn a user's server on a backend the user picks: Kubernetes, SSH hosts or this machine."""

    @default("port")
    def _default_port(self):
        # jupyter-server refuses --sock unless the port is its default (8888); the URL the
        # proxy uses is the backend's relay/tunnel, which start() returns.
        return 8888

    @default("options_form")
    def _default_options_form(self):
        return GridSpawner._render_options_form

    # ------------------------------------------------------------------ shared objects
    @property
    def catalog(self):
        return catalog_for(self.raw_catalog())

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
    async def _render_options_form(spawner: "GridSpawner") -> str:
        values, errors = _form_feedback.pop(spawner._user_name(), (None, None))
        if values is None:
            values = dict(strip_secrets(spawner.user_options or {})[0]) or None
        return render_form(
            catalog=spawner.catalog,
            groups=spawner._groups(),
            capacity=spawner.runtime.capacity.snapshot(),
            values=values,
            errors=errors or {},
            username=spawner._user_name(),
            ssh_public_key=await spawner._ssh_public_key(),
        )

    async def _ssh_public_key(self) -> str | None:
        """The user's hub-managed SSH public key (made on first use), when an SSH storage
        host the user may use takes ``auth: key``; else None."""
        storage = self.catalog.storage
        if storage.key_dir is None or self.user is None:
            return None
        if not any("key" in storage.ssh[h].auth for h in storage.ssh_for(self._groups())):
            return None
        from .mounts.keys import KeyStore

        try:
            return await KeyStore(storage.key_dir).aensure(self._user_name())
        except OSError as e:
            self.log.warning("%s: cannot prepare the SSH key for data mounts: %s", self._log_name, e)
            return None

    async def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        """Parse and validate the form, check the data mounts live (so a wrong bucket is a
        field error on the form, and nothing starts), and return the options WITHOUT the
        typed secrets: those wait in memory for start()."""
        options = parse_form(formdata)
        clean, secrets = strip_secrets(options)
        user, server = self._user_name(), self.name or ""
        try:
            request = build_request(options, self.catalog, self._groups(), username=user)
            resolved = None
            if request.mounts:
                resolved = await resolve_mounts(request.mounts, secrets, self.catalog.storage, user)
        except OptionsError as e:
            metrics.count_rejected(e.errors)
            _form_feedback[user] = (clean, e.errors)
            _form_secrets.drop(user, server)
            raise web.HTTPError(400, f"Please correct: {e}") from None
        if request.mounts:
            _form_secrets.put(user, server, secrets, resolved, fingerprint(request.mounts))
        else:
            _form_secrets.drop(user, server)
        return clean

    # ------------------------------------------------------------------ lifecycle
    _launch: Launch | None = None
    _backend_name: str | None = None
    _saved_launch_state: dict | None = None
    _started_at: float | None = None
    _deadline: float | None = None
    _deadline_handle: asyncio.TimerHandle | None = None
    _progress_events: list[str] | None = None  # created by start()
    _progress_done: bool = False
    _progress_changed: asyncio.Event | None = None

    _mount_specs: tuple = ()

    def _take_secrets(self) -> tuple[dict, tuple | None, tuple]:
        """The mount secrets of this start: the form's (stashed by options_from_form) and any
        in the in-memory user_options (REST), which are taken out of it here."""
        stashed, resolved, specs = _form_secrets.take(self._user_name(), self.name or "")
        clean, inline = strip_secrets(self.user_options)
        if inline:
            self.user_options = clean
        secrets = {i: {**stashed.get(i, {}), **inline.get(i, {})} for i in set(stashed) | set(inline)}
        return secrets, (resolved if not inline else None), specs

    def _build_request(self, secrets: dict | None = None) -> LaunchRequest:
        options = self.user_options
        if secrets and isinstance(options, dict) and isinstance(options.get("mounts"), list):
            rows = [dict(r, **secrets.get(i, {})) if isinstance(r, dict) else r for i, r in enumerate(options["mounts"])]
            options = {**options, "mounts": rows}
        try:
            return build_request(options, self.catalog, self._groups(), username=self._user_name())
        except OptionsError as e:
            metrics.count_rejected(e.errors)
            raise web.HTTPError(400, f"Invalid server options: {e}") from None

    async def _resolve_mounts(self, request: LaunchRequest, secrets: dict, resolved, specs) -> tuple:
        """Credentials for every mount and the live checks (skipped when the form just
        checked exactly these mounts). A failure is a 400 naming ``mounts[i].field``."""
        if not request.mounts:
            return ()
        if resolved is not None and specs == fingerprint(request.mounts):
            return resolved
        self._progress(f"Checking {len(request.mounts)} data mount{'s' if len(request.mounts) != 1 else ''}")
        try:
            return await resolve_mounts(request.mounts, secrets, self.catalog.storage, self._user_name())
        except OptionsError as e:
            metrics.count_rejected(e.errors)
            raise web.HTTPError(400, f"Invalid server options: {e}") from None

    def _slug(self) -> str:
        user, server = self._user_name(), self.name or ""
        digest = hashlib.sha256(f"{user}\0{server}".encode()).hexdigest()[:10]
        readable = re.sub(r"[^a-z0-9]+", "-", f"{user}-{server}".lower()).strip("-")[:20]
        return f"{readable}-{digest}" if readable else digest

    def _progress(self, message: str) -> None:
        self.log.info("%s: %s", self._log_name, message)
        if self._progress_changed is not None:
            self._progress_events.append(message)
            self._progress_changed.set()

    async def start(self):
        secrets, resolved, specs = self._take_secrets()
        request = self._build_request(secrets)
        backend = self.runtime.backends[request.backend]
        self._progress_events, self._progress_done = [], False
        self._progress_changed = asyncio.Event()
        self.log.info("Starting %s on backend %s: %s", self._log_name, request.backend, request.summary())
        started, outcome = time.monotonic(), "failure"
        credentials_stop = None
        try:
            mounts = await self._resolve_mounts(request, secrets, resolved, specs)
            self._mount_specs = tuple(request.mounts)
            ctx = LaunchContext(
                user=self._user_name(),
                server_name=self.name or "",
                slug=self._slug(),
                env=self.get_env(),
                cmd=tuple(self.cmd),
                args=tuple(self.get_args()),
                log=self.log,
                progress=self._progress,
                mounts=mounts,
                storage=self.catalog.storage if mounts else None,
            )
            credentials_stop = None if backend.renews_credentials else stop_deadline(mounts)
            if credentials_stop is not None:
                self._progress(f"the server will be stopped at {time.strftime('%H:%M', time.gmtime(credentials_stop))} "
                               "UTC, before the temporary S3 credentials of its data mounts expire (this backend "
                               "cannot renew them)")
            launch = await self._launch_on(backend, ctx, request)
            outcome = "success"
        except web.HTTPError as e:
            outcome = getattr(e, "gridspawner_outcome", None) or {400: "bad_request"}.get(e.status_code, "failure")
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:  # however start() ends, the spawn page's progress stream ends with it
            self._progress_done = True
            self._progress_changed.set()
            metrics.observe_spawn(request.backend, outcome, time.monotonic() - started)
        self._launch, self._backend_name = launch, request.backend
        self._started_at = time.time()
        self._deadline = self._started_at + request.max_runtime if request.max_runtime else None
        if credentials_stop is not None:
            self._deadline = min(self._deadline or credentials_stop, credentials_stop)
        self._arm_deadline()
        self._credential_renewal().arm(backend, launch, self._mount_specs, self.catalog.storage, self._user_name(),
                                       next_renewal(mounts))
        return launch.url

    async def _launch_on(self, backend, ctx: LaunchContext, request: LaunchRequest) -> Launch:
        """backend.launch, its failures as HTTP errors the user reads; capacity refreshed after."""
        try:
            return await backend.launch(ctx, request)
        except BackendError as e:
            raise launch_failure(e) from None
        finally:
            self.runtime.capacity.poke()

    async def progress(self):
        """Replay the launch's progress messages, then follow new ones until start() ends.

        Every consumer (each open spawn page) sees every message.
        """
        seen = 0
        while True:
            events, done, changed = self._progress_events, self._progress_done, self._progress_changed
            if changed is None:
                return
            while seen < len(events):
                seen += 1
                yield {"progress": min(90, 10 + 15 * seen), "message": events[seen - 1]}
            if done:
                return
            changed.clear()
            await changed.wait()

    def _backend(self):
        """The backend this server runs on; BackendError if the admin removed it since."""
        backend = self.runtime.backends.get(self._backend_name)
        if backend is None:
            raise BackendError(f"backend {self._backend_name!r} is no longer configured")
        return backend

    async def _ensure_attached(self) -> Launch | None:
        if self._launch is None and self._saved_launch_state:
            self._launch = await self._backend().restore(self._saved_launch_state)
            self._arm_deadline()
            # after a hub restart: how old the mounts' credentials are is unknown, renew now
            self._credential_renewal().arm(self._backend(), self._launch, self._mount_specs, self.catalog.storage,
                                           self._user_name(), time.time())
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
            self._note_expired()
            await self.stop()
            return 0
        return await self._backend().poll(launch)

    async def get_url(self):
        """The server's URL as JupyterHub stores it (``server.url``: the backend's address plus
        ``/user/NAME/[SERVER/]``), so a hub restart that finds the same address logs nothing."""
        launch = await self._ensure_attached()
        if launch is None:
            return await super().get_url()
        return hub_server_url(launch.url, self.server.base_url if self.server is not None else "/")

    async def stop(self, now=False):
        self._cancel_deadline()
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
        self.runtime.capacity.poke()
        self._launch = None
        self._saved_launch_state = None

    async def delete_forever(self):
        """The user or this named server is deleted: let every backend drop what outlived it."""
        for name, backend in self.runtime.backends.items():
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

    _expiry_noted: float | None = None

    def _note_expired(self) -> None:
        """Log and count an expiry once per deadline (the timer and a poll may both see it)."""
        if self._expiry_noted == self._deadline:
            return
        self._expiry_noted = self._deadline
        self.log.warning("%s reached its maximum run time; stopping it", self._log_name)
        metrics.MAX_RUNTIME_STOPS.labels(self._backend_name or "").inc()

    async def _expire(self) -> None:
        self._deadline_handle = None
        self._note_expired()
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
            if self._mount_specs:
                # what was mounted, without a secret: MountSpec values only
                state["mounts"] = [m.to_dict() for m in self._mount_specs]
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

    def clear_state(self):
        super().clear_state()
        self._cancel_deadline()
        self._credential_renewal().cancel()
        self._launch = None
        self._saved_launch_state = None
        self._backend_name = None
        self._started_at = self._deadline = None
        self._mount_specs = ()

    def form_defaults(self) -> dict[str, Any]:
        """The values a fresh form starts from for this user (used by the docs and tests)."""
        return default_values(self.catalog, self.catalog.policy_for(self._groups()))


def launch_failure(e: BackendError) -> web.HTTPError:
    """The HTTP error a failed launch becomes: "No capacity: …" (503) only when the backend
    found nothing free that fits; hosts that could not be reached are 503 too, any other
    failure 500. It carries the backend's ``outcome`` word for the spawn metric."""
    if isinstance(e, NoCapacity):
        err = web.HTTPError(503, f"No capacity: {e}")
    else:
        err = web.HTTPError(503 if isinstance(e, Unreachable) else 500, f"Could not start your server: {e}")
    err.gridspawner_outcome = e.outcome
    return err


def hub_server_url(address: str, base_url: str) -> str:
    """``address`` (``http://10.0.0.5:8888``, what a backend returns) with the server's
    ``base_url`` as its path: the form of JupyterHub's ``Server.url``, which a restarted hub
    compares with ``get_url()``."""
    parts = urlsplit(address)
    host = parts.hostname or ""
    port = parts.port or {"https": 443}.get(parts.scheme, 80)  # what JupyterHub stores without one
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, base_url or "/", "", ""))


def validate_config(spawner: GridSpawner) -> None:
    """Build the catalog from ``spawner``'s config; raises CatalogError naming the key."""
    spawner.catalog


schedule_startup_check()

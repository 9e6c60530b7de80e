"""The Kubernetes backend: sends what `objects` builds, reads everything back from watches.

One instance per configured backend, shared by every spawner of the hub process. It holds
one API client and, started lazily on first use, three shared watches: our pods (label
selector), the namespace's pod events (field selector ``involvedObject.kind=Pod``) and the
nodes (for capacity). Readiness, exit status and progress come from those caches; the only
API calls a spawn makes are creates (Secret, pod; the home claim once per user and hub
process) and a stop makes deletes (pod, Secret).

This file holds the Backend protocol (launch, restore, poll, stop, …); its parts live next
to it, each a mixin of `KubernetesBackend` over the state `__init__` sets up:

- ``connection``       the API client; create/read/delete with 404/409 handling;
- ``cluster_watches``  the pod, event and node watches and their subscribers;
- ``secret_cleanup``   the token and mount Secrets' lifecycle, the orphan sweep;
- ``server_cleanup``   a server that ended by itself: its pod and Secrets deleted;
- ``pod_reconcile``    crash recovery: pods of this hub that no server it knows uses;
- ``home_volume``      the home claim, created once and re-created when it vanished;
- ``readiness``        waiting for a pod to be ready, with progress and a verdict;
- ``gpu_fit``          (pure) GPU type names, a server's GPUs, "can it ever fit".
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
from typing import Any, Callable

import aiohttp

from ...gpu import GPU, describe
from ..base import Backend, BackendError, Capacity, Launch, LaunchContext
from . import objects
from .api import ApiError
from .capacity import CapacityTracker
from .cluster_watches import WatchesMixin
from .connection import ConnectionMixin
from .gpu_fit import gpu_type_text, gpus_for
from .gpu_scheduling import mig_memory_gb
from .home_volume import HomeVolumeMixin
from .objects import BuildError
from .pod_reconcile import PodReconcileMixin
from .readiness import ReadinessMixin
from .secret_cleanup import SecretCleanupMixin
from .server_cleanup import PodEnd, ServerCleanupMixin
from .settings import GPUType, KubernetesImage, KubernetesSettings, parse_image, parse_settings
from .watch import SharedWatch

_NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class KubernetesBackend(
    ConnectionMixin, WatchesMixin, SecretCleanupMixin, ServerCleanupMixin, HomeVolumeMixin, ReadinessMixin,
    PodReconcileMixin, Backend,
):
    """``kind: kubernetes`` — single-user servers as pods (kubernetes_asyncio)."""

    kind = "kubernetes"

    def __init__(self, name: str, settings: KubernetesSettings, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self.namespace: str | None = settings.namespace
        self.capacity = CapacityTracker(name, settings)
        self._api_client = None
        self._core = None
        self._connect_lock: asyncio.Lock | None = None
        self._pods: SharedWatch | None = None
        self._events: SharedWatch | None = None
        self._nodes: SharedWatch | None = None
        self._all_pods: SharedWatch | None = None
        self._event_sinks: dict[str, list[Callable[[dict], None]]] = {}
        self._pod_sinks: dict[str, list[Callable[[], None]]] = {}
        #: uid of a pod that ended or vanished -> its exit status and why (ServerCleanupMixin)
        self._gone: collections.OrderedDict[str, PodEnd] = collections.OrderedDict()
        #: uids of ended pods being deleted now
        self._removing: set[str] = set()
        #: pod name -> launches of it in flight: their Secret is theirs to create and clean up
        self._launching: collections.Counter[str] = collections.Counter()
        #: uids of pods whose Secret stop/cleanup deletes itself (the watch need not)
        self._secret_handled: collections.OrderedDict[str, None] = collections.OrderedDict()
        #: home claims known to exist (created, or found existing): not created again
        self._claims: set[str] = set()
        self._swept = False
        self._background: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ config
    @classmethod
    def parse_settings(cls, name: str, raw: dict, key: str) -> KubernetesSettings:
        return parse_settings(name, raw, key)

    @classmethod
    def parse_image(cls, image: str, raw: dict, key: str) -> KubernetesImage:
        return parse_image(image, raw, key)

    @classmethod
    def gpu_type_choices(cls, settings: KubernetesSettings) -> dict[str, str]:
        """The admin's ``gpu_types``: key → "NVIDIA A100 80GB" (a product) or "MIG 1g.10gb"."""
        return {key: gpu_type_text(t) for key, t in settings.gpu_types.items()}

    @classmethod
    def gpu_type_memory(cls, settings: KubernetesSettings) -> dict[str, int]:
        """A MIG type's slices have the memory its profile names ("1g.10gb" → 10 GB)."""
        return {key: mig_memory_gb(t.mig) for key, t in settings.gpu_types.items() if t.mig}


    def start_budget(self, request) -> float:
        """``start_timeout`` (scheduling, image pull, data copies, readiness), removing a
        leftover pod of the same server (``stop_timeout``) and the API calls before the pod
        exists (watches, home claim, Secrets: ``api_timeout`` each, three at most in a row)."""
        s = self.settings
        return s.start_timeout + s.stop_timeout + 3 * s.api_timeout

    # ------------------------------------------------------------------ helpers
    def _image(self, request) -> KubernetesImage:
        """What to run: the request's parsed ``kubernetes`` image entry (set by build_request)."""
        image = getattr(request, "image_settings", None)
        if isinstance(image, KubernetesImage):
            return image
        raise BackendError(f"image {request.image!r} has nothing to run on Kubernetes")

    def _gpu_type(self, request) -> GPUType | None:
        key = getattr(request, "gpu_type", None)
        if not key:
            return None
        types = self.settings.gpu_types
        if key not in types:
            offered = ", ".join(types) or "none"
            raise BackendError(f"GPU type {key!r} is not offered on {self.name} (offered: {offered})")
        return types[key]

    # ------------------------------------------------------------------ launch
    async def _gpu_node_vram(self, request) -> tuple[int, ...]:
        """The VRAM sizes of the cluster's GPU nodes (node watch), for the smallest-card
        preference and "can never fit" verdicts; empty when unknown (the watch is optional:
        the hub may not list nodes)."""
        if not request.gpus or not self.settings.capacity:
            return ()
        try:
            await self._node_watch(timeout=5)
        except Exception as e:  # noqa: BLE001
            self.log.debug("no node watch for %s: %s", self.name, e)
            return ()
        return self.capacity.gpu_node_vram()

    async def launch(self, ctx: LaunchContext, request) -> Launch:
        s = self.settings
        image = self._image(request)
        gpu_type = self._gpu_type(request)
        names = objects.server_names(ctx.user, ctx.server_name, s)
        launch_id = secrets.token_hex(8)
        node_vram = await self._gpu_node_vram(request)
        try:
            pod_manifest = objects.build_pod(
                s,
                image,
                user=ctx.user,
                server_name=ctx.server_name,
                names=names,
                env=ctx.env,
                cmd=ctx.cmd,
                args=ctx.args,
                gpus=request.gpus,
                gpu_memory=request.gpu_memory,
                cpu=request.cpu,
                memory=request.memory,
                tolerance=self.tolerance,
                gpu_type=gpu_type,
                launch_id=launch_id,
                summary=request.summary()[:1000],
                node_vram_mib=node_vram,
            )
            # data mounts: CSI volumes / copy init containers, credentials in their own Secrets
            fragments, mount_secrets = objects.build_mounts(
                s, names, ctx.user, ctx.server_name, ctx.mounts, ctx.storage, launch_id
            )
            objects.add_mounts(pod_manifest, fragments)
        except BuildError as e:
            raise BackendError(str(e)) from None
        secret_manifest = objects.build_secret(s, names, ctx.user, ctx.server_name, ctx.env, launch_id)
        for manifest in (pod_manifest, secret_manifest, *mount_secrets):  # whose they are: crash recovery
            objects.mark_hub(manifest, self.hub_id)
        core = await self._api()
        # in flight from here on: neither the sweep nor the pod watch touches this Secret
        self._launching[names.pod] += 1
        try:
            return await self._launch(
                ctx, request, core, names, launch_id, gpu_type, pod_manifest, secret_manifest, mount_secrets
            )
        finally:
            self._launching[names.pod] -= 1
            if not self._launching[names.pod]:
                del self._launching[names.pod]

    async def _launch(
        self, ctx, request, core, names, launch_id, gpu_type, pod_manifest, secret_manifest, mount_secrets=()
    ) -> Launch:
        s = self.settings
        try:
            pods = await self._pod_watch()
            await self._event_watch()
        except ApiError as e:
            raise BackendError(f"the hub cannot watch pods on {self.name}: {e.message}") from None
        except _NETWORK_ERRORS as e:
            raise BackendError(f"the cluster of {self.name} does not answer ({e or type(e).__name__})") from None

        changed = asyncio.Event()
        events: list[dict] = []

        def on_event(event: dict) -> None:
            events.append(event)
            changed.set()

        self._event_sinks.setdefault(names.pod, []).append(on_event)
        self._pod_sinks.setdefault(names.pod, []).append(changed.set)
        uid = None
        secret_uid = None
        made_mount_secrets: list[tuple[str, str | None]] = []
        try:
            if s.home_volume is not None:
                await self._ensure_home(names, ctx)
            leftover = pods.get(self._pod_key(names.pod))
            if leftover is not None:
                ctx.log.info("Removing a leftover pod %s of %s before starting", names.pod, ctx.user)
                await self._delete("pod", names.pod, grace=0)
                await self._wait_pod_gone(names.pod, None, s.stop_timeout)
            ctx.progress("Requesting a server from the cluster")
            # the Secret first: a kubelet retries a missing env Secret only slowly
            secret = await self._create(core.create_namespaced_secret, secret_manifest, launch_id, "secret")
            secret_uid = (secret.get("metadata") or {}).get("uid")
            if secret_uid:
                pod_manifest["metadata"]["annotations"][objects.SECRET_UID_ANNOTATION] = secret_uid
            if mount_secrets:
                ctx.progress(f"Preparing {len(mount_secrets)} data mount{'s' if len(mount_secrets) != 1 else ''}")
            for manifest in mount_secrets:
                made = await self._create(core.create_namespaced_secret, manifest, launch_id, "secret")
                made_mount_secrets.append((manifest["metadata"]["name"], (made.get("metadata") or {}).get("uid")))
            if made_mount_secrets:
                pod_manifest["metadata"]["annotations"][objects.MOUNT_SECRETS_ANNOTATION] = ",".join(
                    f"{n}={u or ''}" for n, u in made_mount_secrets
                )
            pod = await self._create(
                core.create_namespaced_pod,
                pod_manifest,
                launch_id,
                "pod",
                wait_gone=lambda: self._wait_pod_gone(names.pod, None, s.stop_timeout),
            )
            uid = pod["metadata"]["uid"]
            pod = await self._until_ready(ctx, request, names, uid, gpu_type, changed, events)
        except BaseException as e:
            reason = str(e) or type(e).__name__
            ctx.log.info("Start of %s on %s failed (%s); removing what was created", names.pod, self.name, reason)
            await asyncio.shield(self._cleanup(names, uid, secret_uid, made_mount_secrets))
            if isinstance(e, ApiError):
                raise BackendError(f"the cluster refused the server: {e.message}") from None
            if isinstance(e, _NETWORK_ERRORS):
                raise BackendError(f"the cluster did not answer ({reason})") from None
            raise
        finally:
            self._event_sinks[names.pod].remove(on_event)
            if not self._event_sinks[names.pod]:
                del self._event_sinks[names.pod]
            self._pod_sinks[names.pod].remove(changed.set)
            if not self._pod_sinks[names.pod]:
                del self._pod_sinks[names.pod]

        status = pod.get("status") or {}
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self._nodes.get(node_name) if self._nodes is not None and node_name else None
        gpus = gpus_for(node, request.gpus, s, gpu_type) if node else ()
        ip = status["podIP"]
        url = f"http://[{ip}]:{objects.PORT}" if ":" in ip else f"http://{ip}:{objects.PORT}"  # IPv6 pods
        state = {
            "namespace": self.namespace,
            "pod": names.pod,
            "uid": uid,
            "secret": names.secret,
            "secret_uid": secret_uid,
            "url": url,
            "node": node_name,
            "launch_id": launch_id,
            "gpus": [g.to_dict() for g in gpus],
        }
        if made_mount_secrets:
            state["mount_secrets"] = [[n, u] for n, u in made_mount_secrets]  # names and uids only
        description = f"pod {names.pod} on {node_name}" + (f", {describe(gpus)}" if gpus else "")
        ctx.log.info("%s is ready at %s (%s)", names.pod, url, description)
        return Launch(url=url, state=state, gpus=gpus, description=description)

    # ------------------------------------------------------------------ lifecycle
    def _check_state(self, state: Any) -> dict:
        if not isinstance(state, dict) or not all(isinstance(state.get(k), str) for k in ("pod", "uid", "url")):
            raise BackendError("the saved server state is not from the Kubernetes backend")
        return state

    async def restore(self, state: dict) -> Launch:
        """Re-attach without asking the cluster: a pod keeps its IP for its lifetime, so the
        saved URL stays right, and an API outage at hub start must not look like a stopped
        server. The pod watch starts in the background; poll reads it."""
        state = self._check_state(state)
        if state.get("namespace") and self.namespace and state["namespace"] != self.namespace:
            self.log.warning("server %s was started in namespace %s, now %s", state["pod"], state["namespace"], self.namespace)
        asyncio.ensure_future(self._start_pod_watch_quietly())
        gpus = tuple(GPU.from_dict(g) for g in state.get("gpus") or ())
        return Launch(url=state["url"], state=dict(state), gpus=gpus, description=f"pod {state['pod']} on {state.get('node')}")

    async def poll(self, launch: Launch) -> int | None:
        state = self._check_state(launch.state)
        try:
            pods = await self._pod_watch()
        except Exception as e:  # noqa: BLE001 - an API outage is not a stopped server
            self.log.warning("cannot check pod %s (%s); assuming it still runs", state["pod"], e)
            return None
        pod = pods.get(self._pod_key(state["pod"], state.get("namespace")))
        if pod is None or (pod.get("metadata") or {}).get("uid") != state["uid"]:
            end = self._gone.get(state["uid"]) or self._remember_end(state["uid"], 1, "it no longer exists (deleted outside the hub)")
        else:
            end = self._server_ended(pod)  # a pod that ended by itself is deleted with its Secrets now
            if end is None:
                term = objects.pod_terminated(pod)
                if term is None:
                    return None
                end = PodEnd(*term)  # being deleted (a stop): its DELETED event is remembered
        if not end.reported:
            self.log.warning("server pod %s stopped: %s", state["pod"], end.why)
            end.reported = True
        return end.status

    async def stop(self, launch: Launch, now: bool = False) -> None:
        state = self._check_state(launch.state)
        ns = state.get("namespace")
        grace = 0 if now else self.settings.termination_grace_seconds
        self._handled(state["uid"])  # the Secret is deleted just below, not by the pod watch
        try:
            deleted = await self._delete("pod", state["pod"], grace=grace, uid=state["uid"], namespace=ns)
            if state.get("secret"):
                # with its uid when known: never the Secret of a newer server of the same name
                await self._delete("secret", state["secret"], uid=state.get("secret_uid"), namespace=ns)
            for item in state.get("mount_secrets") or ():
                if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
                    await self._delete("secret", item[0], uid=item[1] or None, namespace=ns)
        except ApiError as e:
            raise BackendError(f"could not stop the server: {e.message}") from None
        except _NETWORK_ERRORS as e:
            raise BackendError(f"could not stop the server: the cluster did not answer ({e or type(e).__name__})") from None
        if deleted and not await self._wait_pod_gone(state["pod"], state["uid"], self.settings.stop_timeout + grace):
            self.log.warning("pod %s was not gone %g s after deletion", state["pod"], self.settings.stop_timeout + grace)

    async def delete_forever(self, user: str, server_name: str, slug: str) -> None:
        home = self.settings.home_volume
        if home is None or (server_name and not home.per_server):
            return  # a per-user home outlives the user's named servers
        names = objects.server_names(user, server_name, self.settings)
        self._claims.discard(names.home_claim)
        try:
            if await self._delete("claim", names.home_claim):
                self.log.info("deleted home volume %s of %s", names.home_claim, user)
        except ApiError as e:
            raise BackendError(f"could not delete the home volume {names.home_claim}: {e.message}") from None
        except _NETWORK_ERRORS as e:
            raise BackendError(f"could not delete the home volume {names.home_claim}: {e or type(e).__name__}") from None

    async def probe_capacity(self) -> Capacity:
        if not self.settings.capacity:
            return Capacity(backend=self.name, updated=time.time(), error="not reported for this backend")
        wait = min(10.0, self.settings.api_timeout)
        try:
            await self._node_watch(timeout=wait)
            if not self.settings.capacity_all_namespaces:
                await self._pod_watch(timeout=wait)
        except ApiError as e:
            if e.status in (401, 403):
                return Capacity(backend=self.name, updated=time.time(), error="the hub may not list nodes (see the RBAC in the admin guide)")
            return Capacity(backend=self.name, updated=time.time(), error=f"cluster API error {e.status}")
        except _NETWORK_ERRORS:
            return Capacity(backend=self.name, updated=time.time(), error="the cluster did not answer")
        return self.capacity.snapshot()

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for w in (self._pods, self._events, self._nodes, self._all_pods):
            if w is not None:
                await w.close()
        self._pods = self._events = self._nodes = self._all_pods = None
        if self._api_client is not None:
            await self._api_client.close()
            self._api_client = None
            self._core = None

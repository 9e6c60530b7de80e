"""The Kubernetes backend: sends what `objects` builds, reads everything back from watches.

One instance per configured backend, shared by every spawner of the hub process. It holds
one API client and, started lazily on first use, three shared watches: our pods (label
selector), the namespace's pod events (field selector ``involvedObject.kind=Pod``) and the
nodes (for capacity). Readiness, exit status and progress come from those caches; the only
API calls a spawn makes are creates (Secret, pod; the home claim once per user and hub
process) and a stop makes deletes (pod, Secret).

This file holds the Backend protocol (launch, restore, poll, stop, …). `KubernetesBackend`
is composed of parts that live next to it, each an object with its own state, given the
parts it uses when `__init__` wires them:

- ``connection``       `ClusterConnection`: the API client and namespace; create/read/delete
                       with 404/409 handling;
- ``cluster_watches``  `ClusterWatches`: the pod, event and node watches, and the launches
                       following their pod;
- ``secret_cleanup``   `SecretCleanup`: the token and mount Secrets' lifecycle, the sweep;
- ``server_cleanup``   `ServerRemoval`: a server that ended by itself: its pod and Secrets
                       deleted; how each pod ended;
- ``pod_reconcile``    `PodReconciler`: crash recovery, pods of this hub no server uses;
- ``home_volume``      `HomeVolumes`: the home claim, created once, re-created when it vanished;
- ``readiness``        `Readiness`: waiting for a pod to be ready, with progress and a verdict;
- ``in_flight``        the launches in flight and the background tasks every part respects;
- ``gpu_fit``          (pure) GPU type names, a server's GPUs, "can it ever fit".
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

import aiohttp

from ...gpu import GPU, describe
from ..base import Backend, BackendError, BatchJob, BatchResult, Capacity, Launch, LaunchContext, Reconciled
from . import objects
from .api import ApiError
from .capacity import CapacityTracker
from .cluster_watches import ClusterWatches
from .connection import ClusterConnection
from .gpu_fit import gpu_type_text, gpus_for
from .gpu_scheduling import mig_memory_gb
from .home_volume import HomeVolumes
from .in_flight import BackgroundTasks, LaunchesInFlight
from .objects import BuildError, ServerNames
from .batch import BatchRuns
from .pod_reconcile import PodReconciler
from .readiness import Readiness
from .secret_cleanup import SecretCleanup
from .server_cleanup import PodEnd, ServerRemoval, delete_pod_and_secrets
from .settings import GPUType, KubernetesImage, KubernetesSettings, parse_image, parse_settings

if TYPE_CHECKING:
    from ...request import LaunchRequest

_NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


@dataclass
class PodLaunch:
    """What a launch built before talking to the cluster: the server's names, the launch's
    id (recognises a retried create), the GPU type asked for, the pod, its token Secret and
    one Secret per data mount (manifests, with the hub's label)."""

    names: ServerNames
    launch_id: str
    gpu_type: GPUType | None
    pod: dict
    secret: dict
    mount_secrets: tuple[dict, ...] = ()


class KubernetesBackend(Backend):
    """``kind: kubernetes`` — single-user servers as pods (kubernetes_asyncio)."""

    kind = "kubernetes"
    #: a pod's container exit code tells a clean exit from a failure (usage records)
    exit_status_known = True
    #: notebook runs as bare pods (`batch`)
    runs_batch = True

    def __init__(self, name: str, settings: KubernetesSettings, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self.capacity = CapacityTracker(name, settings)
        self.connection = ClusterConnection(name, settings, self.log)
        self.in_flight = LaunchesInFlight()
        self.tasks = BackgroundTasks()
        self.secrets = SecretCleanup(self.connection, settings, name, self.log, self.in_flight, self.tasks)
        self.removal = ServerRemoval(self.connection, self.log, self.in_flight, self.tasks, self.secrets)
        self.watches = ClusterWatches(self.connection, settings, self.capacity, self.log, on_pod=self.removal.on_pod,
                                      on_first_list=lambda pods: self.tasks.start(self.secrets.sweep(pods)))
        self.homes = HomeVolumes(self.connection, settings)
        self.readiness = Readiness(settings, tolerance, self.capacity, self.watches, self.removal, self.homes)
        self.reconciler = PodReconciler(name, self.watches, self.removal, self.in_flight, self.log)
        self.batch = BatchRuns(self.connection, self.watches, self.readiness, self.removal, self.secrets, self.homes)

    @property
    def namespace(self) -> str | None:
        """The namespace servers run in (resolved on connecting when not configured)."""
        return self.connection.namespace

    # ------------------------------------------------------------------ config
    @classmethod
    def parse_settings(cls, name: str, raw: dict, key: str) -> KubernetesSettings:
        return parse_settings(name, raw, key)

    @classmethod
    def parse_image(cls, image: str, raw: dict, key: str) -> KubernetesImage:
        return parse_image(image, raw, key)

    @classmethod
    def image_ref_problem(cls, settings: KubernetesSettings) -> str | None:
        """Every pod runs an image: a user's reference runs as any image entry would."""
        return None

    @classmethod
    def gpu_type_choices(cls, settings: KubernetesSettings) -> dict[str, str]:
        """The admin's ``gpu_types``: key → "NVIDIA A100 80GB" (a product) or "MIG 1g.10gb"."""
        return {key: gpu_type_text(t) for key, t in settings.gpu_types.items()}

    @classmethod
    def gpu_type_memory(cls, settings: KubernetesSettings) -> dict[str, int]:
        """A MIG type's slices have the memory its profile names ("1g.10gb" → 10 GB)."""
        return {key: mig_memory_gb(t.mig) for key, t in settings.gpu_types.items() if t.mig}


    def start_budget(self, request: LaunchRequest) -> float:
        """``start_timeout`` (scheduling, image pull, data copies, readiness), removing a
        leftover pod of the same server (``stop_timeout``) and the API calls before the pod
        exists (watches, home claim, Secrets: ``api_timeout`` each, three at most in a row)."""
        s = self.settings
        return s.start_timeout + s.stop_timeout + 3 * s.api_timeout

    # ------------------------------------------------------------------ helpers
    def _image(self, request: LaunchRequest) -> KubernetesImage:
        """What to run: the request's parsed ``kubernetes`` image entry (set by build_request)."""
        image = request.image_settings
        if isinstance(image, KubernetesImage):
            return image
        raise BackendError(f"image {request.image!r} has nothing to run on Kubernetes")

    def _gpu_type(self, request: LaunchRequest) -> GPUType | None:
        key = request.gpu_type
        if not key:
            return None
        types = self.settings.gpu_types
        if key not in types:
            offered = ", ".join(types) or "none"
            raise BackendError(f"GPU type {key!r} is not offered on {self.name} (offered: {offered})")
        return types[key]

    # ------------------------------------------------------------------ launch
    async def _gpu_node_vram(self, request: LaunchRequest) -> tuple[int, ...]:
        """The VRAM sizes of the cluster's GPU nodes (node watch), for the smallest-card
        preference and "can never fit" verdicts; empty when unknown (the watch is optional:
        the hub may not list nodes)."""
        if not request.gpus or not self.settings.capacity:
            return ()
        try:
            await self.watches.node_watch(timeout=5)
        except Exception as e:  # noqa: BLE001
            self.log.debug("no node watch for %s: %s", self.name, e)
            return ()
        return self.capacity.gpu_node_vram()

    def _build(self, ctx: LaunchContext, request: LaunchRequest, image: KubernetesImage, gpu_type: GPUType | None,
               node_vram: tuple[int, ...], names: ServerNames | None = None) -> PodLaunch:
        """The manifests of ``ctx``'s server (pure: `objects` builds them); ``names``: other
        names than the server's (a notebook run's)."""
        s = self.settings
        names = names or objects.server_names(ctx.user, ctx.server_name, s)
        launch_id = secrets.token_hex(8)
        try:
            pod = objects.build_pod(
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
            objects.add_mounts(pod, fragments)
        except BuildError as e:
            raise BackendError(str(e)) from None
        secret = objects.build_secret(s, names, ctx.user, ctx.server_name, ctx.env, launch_id)
        for manifest in (pod, secret, *mount_secrets):  # whose they are: crash recovery
            objects.mark_hub(manifest, self.hub_id)
        return PodLaunch(names, launch_id, gpu_type, pod, secret, tuple(mount_secrets))

    async def launch(self, ctx: LaunchContext, request: LaunchRequest) -> Launch:
        image, gpu_type = self._image(request), self._gpu_type(request)  # checked before any I/O
        built = self._build(ctx, request, image, gpu_type, await self._gpu_node_vram(request))
        # in flight from here on: neither the sweep nor the pod watch touches this Secret
        with self.in_flight.launching(built.names.pod):
            return await self._launch(ctx, request, built)

    async def _launch(self, ctx: LaunchContext, request: LaunchRequest, built: PodLaunch) -> Launch:
        s, names, conn = self.settings, built.names, self.connection
        core = await conn.api()
        try:
            pods = await self.watches.pod_watch()
            await self.watches.event_watch()
        except ApiError as e:
            raise BackendError(f"the hub cannot watch pods on {self.name}: {e.message}") from None
        except _NETWORK_ERRORS as e:
            raise BackendError(f"the cluster of {self.name} does not answer ({e or type(e).__name__})") from None

        uid = None
        secret_uid = None
        made_mount_secrets: list[tuple[str, str | None]] = []
        annotations = built.pod["metadata"]["annotations"]
        with self.watches.follow(names.pod) as follower:
            try:
                if s.home_volume is not None:
                    await self.homes.ensure(names, ctx)
                leftover = pods.get(self.watches.pod_key(names.pod))
                if leftover is not None:
                    ctx.log.info("Removing a leftover pod %s of %s before starting", names.pod, ctx.user)
                    await conn.delete("pod", names.pod, grace=0)
                    await self.watches.wait_pod_gone(names.pod, None, s.stop_timeout)
                ctx.progress("Requesting a server from the cluster")
                # the Secret first: a kubelet retries a missing env Secret only slowly
                secret = await conn.create(core.create_namespaced_secret, built.secret, built.launch_id, "secret")
                secret_uid = (secret.get("metadata") or {}).get("uid")
                if secret_uid:
                    annotations[objects.SECRET_UID_ANNOTATION] = secret_uid
                if built.mount_secrets:
                    n = len(built.mount_secrets)
                    ctx.progress(f"Preparing {n} data mount{'s' if n != 1 else ''}")
                for manifest in built.mount_secrets:
                    made = await conn.create(core.create_namespaced_secret, manifest, built.launch_id, "secret")
                    made_mount_secrets.append((manifest["metadata"]["name"], (made.get("metadata") or {}).get("uid")))
                if made_mount_secrets:
                    annotations[objects.MOUNT_SECRETS_ANNOTATION] = ",".join(
                        f"{n}={u or ''}" for n, u in made_mount_secrets
                    )
                pod = await conn.create(
                    core.create_namespaced_pod,
                    built.pod,
                    built.launch_id,
                    "pod",
                    wait_gone=lambda: self.watches.wait_pod_gone(names.pod, None, s.stop_timeout),
                )
                uid = pod["metadata"]["uid"]
                pod = await self.readiness.until_ready(ctx, request, names, uid, built.gpu_type, follower)
            except BaseException as e:
                reason = str(e) or type(e).__name__
                ctx.log.info("Start of %s on %s failed (%s); removing what was created", names.pod, self.name, reason)
                await asyncio.shield(self.secrets.after_failed_launch(names, uid, secret_uid, made_mount_secrets))
                if isinstance(e, ApiError):
                    raise BackendError(f"the cluster refused the server: {e.message}") from None
                if isinstance(e, _NETWORK_ERRORS):
                    raise BackendError(f"the cluster did not answer ({reason})") from None
                raise

        status = pod.get("status") or {}
        node_name = (pod.get("spec") or {}).get("nodeName")
        nodes = self.watches.nodes
        node = nodes.get(node_name) if nodes is not None and node_name else None
        gpus = gpus_for(node, request.gpus, s, built.gpu_type) if node else ()
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
            "launch_id": built.launch_id,
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
        asyncio.ensure_future(self.watches.start_pod_watch_quietly())
        gpus = tuple(GPU.from_dict(g) for g in state.get("gpus") or ())
        return Launch(url=state["url"], state=dict(state), gpus=gpus, description=f"pod {state['pod']} on {state.get('node')}")

    async def poll(self, launch: Launch) -> int | None:
        state = self._check_state(launch.state)
        try:
            pods = await self.watches.pod_watch()
        except Exception as e:  # noqa: BLE001 - an API outage is not a stopped server
            self.log.warning("cannot check pod %s (%s); assuming it still runs", state["pod"], e)
            return None
        pod = pods.get(self.watches.pod_key(state["pod"], state.get("namespace")))
        if pod is None or (pod.get("metadata") or {}).get("uid") != state["uid"]:
            end = self.removal.end_of(state["uid"]) or self.removal.remember_end(
                state["uid"], 1, "it no longer exists (deleted outside the hub)")
        else:
            end = self.removal.server_ended(pod)  # a pod that ended by itself is deleted with its Secrets now
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
        grace = 0 if now else self.settings.termination_grace_seconds
        if isinstance(state.get("nonce"), str):  # a notebook run being cancelled: keep its log
            await self.batch.before_cancel(state)
        deleted = await delete_pod_and_secrets(self.connection, self.secrets, state, grace, "could not stop the server")
        if deleted and not await self.watches.wait_pod_gone(state["pod"], state["uid"], self.settings.stop_timeout + grace):
            self.log.warning("pod %s was not gone %g s after deletion", state["pod"], self.settings.stop_timeout + grace)

    async def announce_stops(self, launch: Launch, entries: list[dict]) -> bool:
        """Patch the pod's stops annotation, which its downwardAPI volume projects into the
        stops file the JupyterLab extension reads (the kubelet refreshes it at its next sync,
        within about a minute); False when the pod is gone."""
        state = self._check_state(launch.state)
        try:
            return await self.connection.patch_pod(state["pod"], objects.stops_patch(state["uid"], entries),
                                                   namespace=state.get("namespace"))
        except ApiError as e:
            raise BackendError(f"could not announce the stops to pod {state['pod']}: {e.message}") from None
        except _NETWORK_ERRORS as e:
            raise BackendError(f"could not announce the stops to pod {state['pod']}: the cluster did not answer "
                               f"({e or type(e).__name__})") from None

    # ------------------------------------------------------------------ notebook runs
    async def start_batch(self, ctx: LaunchContext, request: LaunchRequest, job: BatchJob) -> Launch:
        """A run's pod: the server's placement and objects, running ``job.argv`` (`batch`)."""
        image, gpu_type = self._image(request), self._gpu_type(request)
        node_vram = await self._gpu_node_vram(request)
        launch_id = ""

        def server_objects(names: ServerNames):
            nonlocal launch_id
            built = self._build(ctx, request, image, gpu_type, node_vram, names)
            launch_id = built.launch_id
            return built.pod, built.secret, list(built.mount_secrets)

        built = self.batch.build(ctx, job, server_objects, request.max_runtime)
        with self.in_flight.launching(built[0].pod):
            return await self.batch.start(ctx, request, job, built, launch_id, gpu_type)

    async def poll_batch(self, launch: Launch) -> int | None:
        return await self.batch.poll(launch)

    async def finish_batch(self, launch: Launch) -> BatchResult:
        return await self.batch.finish(launch)

    async def delete_forever(self, user: str, server_name: str, slug: str) -> None:
        home = self.settings.home_volume
        if home is None or (server_name and not home.per_server):
            return  # a per-user home outlives the user's named servers
        names = objects.server_names(user, server_name, self.settings)
        self.homes.forget(names.home_claim)
        try:
            if await self.connection.delete("claim", names.home_claim):
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
            await self.watches.node_watch(timeout=wait)
            if not self.settings.capacity_all_namespaces:
                await self.watches.pod_watch(timeout=wait)
        except ApiError as e:
            if e.status in (401, 403):
                return Capacity(backend=self.name, updated=time.time(), error="the hub may not list nodes (see the RBAC in the admin guide)")
            return Capacity(backend=self.name, updated=time.time(), error=f"cluster API error {e.status}")
        except _NETWORK_ERRORS:
            return Capacity(backend=self.name, updated=time.time(), error="the cluster did not answer")
        return self.capacity.snapshot()

    async def reconcile(self, known: Callable[[], Iterable[dict]], grace: float, *,
                        probe_max_age: float = 0.0) -> Reconciled:
        """Pods of this hub that no server it knows uses (`pod_reconcile`); the pod watch's
        cache is always current, so ``probe_max_age`` does not matter here."""
        return await self.reconciler.reconcile(self.hub_id, known, grace)

    async def close(self) -> None:
        await self.tasks.close()
        await self.watches.close()
        await self.connection.close()

"""Notebook runs on Kubernetes: `Backend.start_batch` / `poll_batch` / `finish_batch`.

A run is one bare pod (`batch_objects`) and one Secret (the job's files and secret env
values), plus a Secret per data mount, exactly as a server's. `start_batch` creates them and
waits until the container started (the same verdicts as a server: never fits, no capacity
now, an image that cannot be pulled — with the registry's reason — a container that cannot
be created); `poll_batch` reads the shared pod watch; `finish_batch` reads the pod log (the
outputs and the tail, `batch_objects.parse_log`) and deletes the pod and its Secrets, each
by uid. A run with a maximum run time gets the pod's ``activeDeadlineSeconds`` (tightened by
one patch once the container started); a pod the kubelet ended at that deadline finishes
as timed out. Cancel is the backend's ``stop(launch, now=True)`` (same state keys as a server).

The launch state (JSON, no secret) names the pod, its uid, its Secrets with uids, the
namespace, the run's nonce and outputs: a new backend instance (the executor restarted)
polls and finishes a run from it alone.

`BatchRuns` is one of the parts `KubernetesBackend` is composed of; it has no state of its own.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import secrets
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from ...gpu import describe
from ..base import BackendError, BatchJob, BatchResult, Launch, LaunchContext
from . import batch_objects, objects
from .api import ApiError, backoff_delay, is_transient
from .cluster_watches import ClusterWatches
from .connection import ClusterConnection
from .gpu_fit import gpus_for
from .home_volume import HomeVolumes
from .names import server_names
from .readiness import Readiness
from .secret_cleanup import SecretCleanup
from .server_cleanup import ServerRemoval, delete_pod_and_secrets

if TYPE_CHECKING:
    from ...request import LaunchRequest

_NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class BatchRuns:
    """The batch operations of one Kubernetes backend."""

    def __init__(self, connection: ClusterConnection, watches: ClusterWatches, readiness: Readiness,
                 removal: ServerRemoval, secrets_: SecretCleanup, homes: HomeVolumes):
        self.connection = connection
        self.settings = connection.settings
        self.watches = watches
        self.readiness = readiness
        self.removal = removal
        self.secrets = secrets_
        self.homes = homes
        #: pod uid → its log, read just before a cancel deleted the pod (bounded)
        self._last_logs: collections.OrderedDict[str, str] = collections.OrderedDict()

    async def before_cancel(self, state: dict) -> None:
        """A run is cancelled (`stop`): keep its log so far for `finish` (best effort)."""
        try:
            log = await self.read_log(state)
        except BackendError as e:
            self.connection.log.info("no log of the cancelled run pod %s: %s", state.get("pod"), e)
            return
        if log is not None:
            self._last_logs[state["uid"]] = log
            while len(self._last_logs) > 100:
                self._last_logs.popitem(last=False)

    # ------------------------------------------------------------------ start
    def build(self, ctx: LaunchContext, job: BatchJob, build_server, max_runtime: float | None = None):
        """(names, nonce, pod, secret, mount secrets) of a run, from the backend's server
        builder ``build_server(names)`` → (pod, secret, mount secrets), made into a run's
        (with ``max_runtime``: its activeDeadlineSeconds). BackendError when it cannot be."""
        problem = batch_objects.job_env_problem(job.env)
        if problem:
            raise BackendError(problem)
        # a run mounts its user's home claim (the default server's), as that server would
        names = dataclasses.replace(objects.run_names(job.run_id),
                                    home_claim=server_names(ctx.user, "", self.settings).home_claim)
        nonce = secrets.token_hex(12)
        pod, secret, mount_secrets = build_server(names)
        try:
            deadline = batch_objects.deadline_at_create(max_runtime, self.settings.start_timeout,
                                                        self.settings.run_deadline_margin)
            batch_objects.to_batch_pod(pod, job, nonce=nonce, secret=names.secret, deadline=deadline)
            batch_objects.add_files(secret, job)
            for manifest in mount_secrets:
                batch_objects.label_run(manifest, job.run_id)
        except objects.BuildError as e:
            raise BackendError(str(e)) from None
        return names, nonce, pod, secret, tuple(mount_secrets)

    async def start(self, ctx: LaunchContext, request: LaunchRequest, job: BatchJob, built, launch_id: str,
                    gpu_type) -> Launch:
        names, nonce, pod_manifest, secret_manifest, mount_secrets = built
        s, conn = self.settings, self.connection
        core = await conn.api()
        try:
            await self.watches.pod_watch()
            await self.watches.event_watch()
        except ApiError as e:
            raise BackendError(f"the runs executor cannot watch pods: {e.message}") from None
        except _NETWORK_ERRORS as e:
            raise BackendError(f"the cluster does not answer ({e or type(e).__name__})") from None
        uid = secret_uid = None
        made_mounts: list[tuple[str, str | None]] = []
        annotations = pod_manifest["metadata"]["annotations"]
        with self.watches.follow(names.pod) as follower:
            try:
                if s.home_volume is not None:
                    await self.homes.ensure(names, ctx)
                ctx.progress("Requesting a pod for the run from the cluster")
                made = await conn.create(core.create_namespaced_secret, secret_manifest, launch_id, "secret")
                secret_uid = (made.get("metadata") or {}).get("uid")
                if secret_uid:
                    annotations[objects.SECRET_UID_ANNOTATION] = secret_uid
                for manifest in mount_secrets:
                    made = await conn.create(core.create_namespaced_secret, manifest, launch_id, "secret")
                    made_mounts.append((manifest["metadata"]["name"], (made.get("metadata") or {}).get("uid")))
                if made_mounts:
                    annotations[objects.MOUNT_SECRETS_ANNOTATION] = ",".join(f"{n}={u or ''}" for n, u in made_mounts)
                pod = await conn.create(core.create_namespaced_pod, pod_manifest, launch_id, "pod")
                uid = pod["metadata"]["uid"]
                pod = await self.readiness.until_ready(ctx, request, names, uid, gpu_type, follower, batch=True)
            except BaseException as e:
                reason = str(e) or type(e).__name__
                ctx.log.info("Start of run pod %s failed (%s); removing what was created", names.pod, reason)
                await asyncio.shield(self.secrets.after_failed_launch(names, uid, secret_uid, made_mounts))
                if isinstance(e, ApiError):
                    raise BackendError(f"the cluster refused the run: {e.message}") from None
                if isinstance(e, _NETWORK_ERRORS):
                    raise BackendError(f"the cluster did not answer ({reason})") from None
                raise
        if request.max_runtime:
            await self._tighten_deadline(ctx, names.pod, uid, pod, request.max_runtime)
        node_name = (pod.get("spec") or {}).get("nodeName")
        nodes = self.watches.nodes
        node = nodes.get(node_name) if nodes is not None and node_name else None
        gpus = gpus_for(node, request.gpus, s, gpu_type) if node else ()
        state: dict[str, Any] = {
            "namespace": self.connection.namespace,
            "pod": names.pod,
            "uid": uid,
            "url": "",
            "secret": names.secret,
            "secret_uid": secret_uid,
            "node": node_name,
            "launch_id": launch_id,
            "gpus": [g.to_dict() for g in gpus],
            "run_id": job.run_id,
            "nonce": nonce,
            "outputs": list(job.outputs),
        }
        if made_mounts:
            state["mount_secrets"] = [[n, u] for n, u in made_mounts]
        description = f"pod {names.pod} on {node_name}" + (f", {describe(gpus)}" if gpus else "")
        ctx.log.info("run %s started: %s", job.run_id, description)
        return Launch(url="", state=state, gpus=gpus, description=description)

    async def _tighten_deadline(self, ctx: LaunchContext, name: str, uid: str, pod: dict, max_runtime: float) -> None:
        """Lower the started pod's activeDeadlineSeconds to what its start took + the maximum
        run time + the margin (Kubernetes lets a pod's deadline only go down). Best effort:
        a failure keeps the creation's bound, which holds as well, only later."""
        started = batch_objects.start_time(pod)
        current = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        if started is None or not isinstance(current, int):
            return
        tighter = batch_objects.deadline_once_started(max_runtime, self.settings.run_deadline_margin, started, time.time())
        if tighter >= current:
            return
        try:
            await self.connection.patch_pod(name, {"metadata": {"uid": uid}, "spec": {"activeDeadlineSeconds": tighter}})
        except (ApiError, *_NETWORK_ERRORS) as e:
            ctx.log.warning("run pod %s keeps its deadline of %s s (lowering it to %s s failed: %s)", name, current, tighter, e)

    # ------------------------------------------------------------------ poll / finish
    @staticmethod
    def check_state(state: Any) -> dict:
        if not isinstance(state, dict) or not all(isinstance(state.get(k), str) for k in ("pod", "uid", "nonce")):
            raise BackendError("the saved run state is not from the Kubernetes backend")
        return state

    def _pod(self, pods, state: dict) -> dict | None:
        pod = pods.get(self.watches.pod_key(state["pod"], state.get("namespace")))
        if pod is None or (pod.get("metadata") or {}).get("uid") != state["uid"]:
            return None
        return pod

    async def poll(self, launch: Launch) -> int | None:
        state = self.check_state(launch.state)
        try:
            pods = await self.watches.pod_watch()
        except Exception as e:  # noqa: BLE001 - an API outage is not an ended run
            self.connection.log.warning("cannot check run pod %s (%s); assuming it still runs", state["pod"], e)
            return None
        pod = self._pod(pods, state)
        if pod is None:
            end = self.removal.end_of(state["uid"])
            return end.status if end is not None else -1
        if objects.pod_finished(pod):
            return (objects.pod_terminated(pod) or (1, ""))[0]
        return None  # running, or being deleted (a cancel): over once it is gone

    async def read_log(self, state: dict) -> str | None:
        """The run container's whole log (None: the pod is gone), bounded by ``api_timeout``
        per try and ``api_retries`` retries of transient failures."""
        core = await self.connection.api()
        s = self.settings
        attempt = 0
        while True:
            try:
                response = await core.read_namespaced_pod_log(
                    state["pod"], state.get("namespace") or self.connection.namespace, container=objects.CONTAINER,
                    _preload_content=False, _request_timeout=s.api_timeout)
                try:
                    raw = await response.read()
                finally:
                    response.release()
                if not 200 <= response.status <= 299:
                    raise ApiError(response.status, response.reason or "", raw.decode(errors="replace")[:500])
                return raw.decode(errors="replace")
            except ApiError as e:
                if e.status in (400, 404):
                    return None
                error: BaseException = e
            except Exception as e:  # noqa: BLE001 - classified below
                status = getattr(e, "status", None)
                if status in (400, 404):
                    return None
                error = e
            if not is_transient(error) or attempt >= s.api_retries:
                raise BackendError(f"could not read the run's log: {error}") from None
            await asyncio.sleep(backoff_delay(attempt))
            attempt += 1

    async def finish(self, launch: Launch) -> BatchResult:
        state = self.check_state(launch.state)
        code: int | None = None
        pod = None
        timed_out = False
        try:
            pods = await self.watches.pod_watch()
            pod = self._pod(pods, state)
        except Exception:  # noqa: BLE001 - read the log anyway
            pass
        if pod is not None:
            timed_out = objects.pod_finished(pod) and batch_objects.deadline_exceeded(pod)
            term = objects.pod_terminated(pod)
            if term is not None and objects.pod_finished(pod):
                code = term[0]
        elif self.removal.end_of(state["uid"]) is not None:
            code = self.removal.end_of(state["uid"]).status
        log = await self.read_log(state) if pod is not None else None
        if log is None:
            log = self._last_logs.pop(state["uid"], None)
        files: dict[str, bytes] = {}
        tail = ""
        if log is not None:
            outputs = tuple(o for o in state.get("outputs") or () if isinstance(o, str))
            files, tail, logged = batch_objects.parse_log(log, state["nonce"], outputs)
            if code is None:
                code = logged
        await self.remove(state)
        return BatchResult(exit_code=code, files=files, log_tail=tail, timed_out=timed_out)

    async def remove(self, state: dict) -> None:
        """Delete the run's pod and Secrets, each by the uid its state names."""
        await delete_pod_and_secrets(self.connection, self.secrets, state, 0, "could not remove the run's pod")

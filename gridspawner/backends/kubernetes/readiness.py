"""Waiting for a launched pod to become ready, from the watch caches alone.

Progress comes from the pod's events (``_PROGRESS``), the verdicts from the pod itself:
ready → the launch succeeds; terminated, or a container that can never start → it fails;
still unscheduled after ``pending_timeout``, or a scheduler message that no waiting can
change → `NoCapacity`.

`Readiness` is one of the parts `KubernetesBackend` is composed of: it holds no state of its
own, and reads the pod and node watches (`ClusterWatches`), how pods ended (`ServerRemoval`)
and asks `HomeVolumes` to re-create a home claim that vanished.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

from ..base import BackendError, LaunchContext, NoCapacity
from . import gpu_fit, objects
from .capacity import CapacityTracker
from .cluster_watches import ClusterWatches, PodFollower
from .home_volume import HomeVolumes
from .objects import ServerNames
from .server_cleanup import ServerRemoval
from .settings import GPUType, KubernetesSettings

if TYPE_CHECKING:
    from ...request import LaunchRequest

#: event reasons worth showing as progress, and how to say them
_PROGRESS = {
    "Scheduled": "Assigned to a node",
    "Pulling": "Pulling the image",
    "Pulled": "Image ready",
    "Created": "Container created",
    "Started": "Server starting",
    "TriggeredScaleUp": "The cluster is adding a node for you",
    "SuccessfulAttachVolume": "Storage attached",
}
_SCHEDULER_REASONS = re.compile(r", (?=\d+ )")
#: the phases of a batch pod whose container started (or that is over)
_STARTED = ("Running", "Succeeded", "Failed")


class Readiness:
    """`until_ready`: a launch's wait for its pod, with progress and a verdict."""

    def __init__(self, settings: KubernetesSettings, tolerance: float, capacity: CapacityTracker,
                 watches: ClusterWatches, removal: ServerRemoval, homes: HomeVolumes):
        self.settings = settings
        self.tolerance = tolerance
        self.capacity = capacity
        self.watches = watches
        self.removal = removal
        self.homes = homes

    def _never_fits(self, request: LaunchRequest, gpu_type: GPUType | None) -> bool:
        """True when no node of the cluster could run this even if it were empty."""
        nodes = self.watches.nodes
        if not request.gpus or nodes is None or not nodes.synced:
            return False
        return gpu_fit.never_fits(self.capacity.hosts(), request, gpu_type, self.tolerance)

    def _need(self, request: LaunchRequest, gpu_type: GPUType | None) -> str:
        return gpu_fit.need_text(self.settings, request, gpu_type, self.tolerance)

    async def until_ready(self, ctx: LaunchContext, request: LaunchRequest, names: ServerNames, uid: str,
                          gpu_type: GPUType | None, follower: PodFollower, *, batch: bool = False) -> dict:
        """The pod ``uid`` once it is ready (`NoCapacity` / BackendError: why it never will
        be), with progress from its events as ``follower`` hears them. ``batch`` (a notebook
        run's pod): once its container started, or the pod already ended."""
        s = self.settings
        pods = self.watches.pods
        key = self.watches.pod_key(names.pod)
        changed, events = follower.changed, follower.events
        started = time.monotonic()
        shown = 0
        last_failed_scheduling = ""
        while True:
            # progress from this pod's events (other pods of the same name are ignored)
            while shown < len(events):
                event = events[shown]
                shown += 1
                involved = event.get("involvedObject") or {}
                if involved.get("uid") and involved.get("uid") != uid:
                    continue
                reason, message = event.get("reason", ""), event.get("message", "")
                if reason == "FailedScheduling":
                    last_failed_scheduling = message
                    if await self.homes.claim_missing(ctx, names, message):
                        continue
                    ctx.progress(f"Waiting for a node with {self._need(request, gpu_type)}")
                    ctx.log.info("%s: FailedScheduling: %s", names.pod, message)
                    if self._never_fits(request, gpu_type) or scheduler_says_never(message):
                        raise NoCapacity(f"no node can ever have {self._need(request, gpu_type)}; ask for less")
                elif reason in _PROGRESS:
                    ctx.progress(f"{_PROGRESS[reason]}: {message}" if message else _PROGRESS[reason])
                elif event.get("type") == "Warning":
                    ctx.progress(f"{reason}: {message}")
            pod = pods.get(key)
            if pod is not None and (pod.get("metadata") or {}).get("uid") == uid:
                if objects.pod_ready(pod) or (batch and (pod.get("status") or {}).get("phase") in _STARTED):
                    return pod
                term = objects.pod_terminated(pod)
                if term is not None:
                    raise BackendError(f"the server stopped while starting ({term[1]})")
                problem = objects.container_waiting_problem(pod)
                if problem:
                    why = pull_failure(events, uid) if "ImagePull" in problem else ""
                    what = "the run" if batch else "the server"
                    raise BackendError(f"{what} cannot start: {problem}" + (f" ({why})" if why and why not in problem else ""))
                scheduled = bool((pod.get("spec") or {}).get("nodeName"))
            elif pod is None and pods.synced and self.removal.end_of(uid) is not None:
                raise BackendError(f"the server's pod went away while starting: {self.removal.end_of(uid).why}")
            else:
                scheduled = False
            elapsed = time.monotonic() - started
            if not scheduled and elapsed >= s.pending_timeout:
                ctx.log.info("%s unschedulable after %.0f s: %s", names.pod, elapsed, last_failed_scheduling)
                raise NoCapacity(f"no node has {self._need(request, gpu_type)} right now; try again later or ask for less")
            if elapsed >= s.start_timeout:
                raise BackendError(f"the server did not become ready within {s.start_timeout:g} s")
            limit = (s.pending_timeout if not scheduled else s.start_timeout) - elapsed
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), max(0.05, limit))
            except asyncio.TimeoutError:
                pass


def pull_failure(events: list[dict], uid: str) -> str:
    """The registry's reason from the latest "Failed to pull image" event of pod ``uid``
    (ImagePullBackOff's own message only says that the kubelet backs off)."""
    for event in reversed(events):
        involved = event.get("involvedObject") or {}
        if involved.get("uid") and involved.get("uid") != uid:
            continue
        message = event.get("message") or ""
        if event.get("reason") == "Failed" and message.startswith("Failed to pull image"):
            return message
    return ""


def scheduler_says_never(message: str) -> bool:
    """kube-scheduler's "0/N nodes are available: …" where every node is excluded by
    affinity, node selector or an untolerated taint — node labels and taints do not change
    while a user waits, so waiting cannot help. Shortages ("Insufficient …"), unbound
    volumes and the like may resolve and are left to pending_timeout."""
    m = re.match(r"0/(\d+) nodes are available: (.*)", message)
    if not m or m.group(1) == "0":
        return False
    head = m.group(2).split(" preemption:")[0].rstrip(".")
    reasons = _SCHEDULER_REASONS.split(head)
    permanent = ("didn't match Pod's node affinity/selector", "untolerated taint")
    return bool(reasons) and all(re.match(r"\d+ ", r) and any(p in r for p in permanent) for r in reasons)

"""Which shared watches a backend keeps, and who hears what they see.

Three watches, started lazily on first use: our pods (label selector), the namespace's pod
events (field selector ``involvedObject.kind=Pod``) and the nodes (for capacity; with
``capacity_all_namespaces`` also every pod of the cluster). A launch in flight follows its
pod's changes and events (`ClusterWatches.follow`: a `PodFollower`).

`ClusterWatches` is one of the parts `KubernetesBackend` is composed of. It owns the watches
and the followers; what a pod change means for a server is ``on_pod``'s (the backend's
`ServerRemoval`), and ``on_first_list`` runs once, after the pod watch first listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator

from . import objects
from .capacity import CapacityTracker
from .connection import ClusterConnection
from .settings import KubernetesSettings
from .watch import SharedWatch


@dataclass
class PodFollower:
    """What a launch hears of its pod: ``changed`` is set on every change or event, and
    ``events`` collects the pod's events (of every pod of that name: check the uid)."""

    changed: asyncio.Event = field(default_factory=asyncio.Event)
    events: list[dict] = field(default_factory=list)

    def event(self, event: dict) -> None:
        self.events.append(event)
        self.changed.set()


class ClusterWatches:
    """The pod, event and node watches of one backend, and the launches following pods."""

    def __init__(self, connection: ClusterConnection, settings: KubernetesSettings, capacity: CapacityTracker,
                 log: logging.Logger, *, on_pod: Callable[[str, dict], None],
                 on_first_list: Callable[[SharedWatch], None]):
        self.connection = connection
        self.settings = settings
        self.capacity = capacity
        self.log = log
        self._on_pod_change = on_pod
        self._on_first_list = on_first_list
        self.pods: SharedWatch | None = None
        self.events: SharedWatch | None = None
        self.nodes: SharedWatch | None = None
        self.all_pods: SharedWatch | None = None
        self._followers: dict[str, list[PodFollower]] = {}
        self._listed = False

    def _watch(self, name: str, list_call, **kw) -> SharedWatch:
        return SharedWatch(
            name,
            list_call,
            watch_timeout=self.settings.watch_timeout,
            request_timeout=self.settings.api_timeout,
            log=self.log,
            **kw,
        )

    async def pod_watch(self, timeout: float | None = None) -> SharedWatch:
        core = await self.connection.api()
        namespace = self.connection.namespace
        if self.pods is None:
            self.pods = self._watch(
                f"pods/{namespace}",
                functools.partial(core.list_namespaced_pod, namespace),
                label_selector=objects.pod_selector(self.settings),
            )
            self.pods.subscribe(self._on_pod)
        await self.pods.ready(timeout or self.settings.api_timeout)
        if not self._listed:  # once per hub process, after the first list: leftovers of a crash
            self._listed = True
            self._on_first_list(self.pods)
        return self.pods

    async def event_watch(self, timeout: float | None = None) -> SharedWatch:
        core = await self.connection.api()
        namespace = self.connection.namespace
        if self.events is None:
            self.events = self._watch(
                f"events/{namespace}",
                functools.partial(core.list_namespaced_event, namespace),
                field_selector="involvedObject.kind=Pod",
                cache=False,
            )
            self.events.subscribe(self._on_event)
        await self.events.ready(timeout or self.settings.api_timeout)
        return self.events

    async def node_watch(self, timeout: float | None = None) -> SharedWatch:
        core = await self.connection.api()
        if self.nodes is None:
            self.nodes = self._watch(
                "nodes", core.list_node, label_selector=self.settings.capacity_node_selector
            )
            self.nodes.subscribe(self.capacity.on_node)
            if self.settings.capacity_all_namespaces:
                self.all_pods = self._watch("pods/*", core.list_pod_for_all_namespaces)
                self.all_pods.subscribe(self.capacity.on_pod)
        await self.nodes.ready(timeout or self.settings.api_timeout)
        if self.all_pods is not None:
            await self.all_pods.ready(timeout or self.settings.api_timeout)
        return self.nodes

    def pod_key(self, name: str, namespace: str | None = None) -> str:
        return f"{namespace or self.connection.namespace}/{name}"

    @contextlib.contextmanager
    def follow(self, pod: str) -> Iterator[PodFollower]:
        """Hear the changes and events of pods named ``pod`` inside this block."""
        follower = PodFollower()
        self._followers.setdefault(pod, []).append(follower)
        try:
            yield follower
        finally:
            self._followers[pod].remove(follower)
            if not self._followers[pod]:
                del self._followers[pod]

    def _on_pod(self, kind: str, pod: dict) -> None:
        if not self.settings.capacity_all_namespaces:
            self.capacity.on_pod(kind, pod)
        self._on_pod_change(kind, pod)
        for follower in list(self._followers.get((pod.get("metadata") or {}).get("name", ""), ())):
            follower.changed.set()

    def _on_event(self, kind: str, event: dict) -> None:
        if kind == "DELETED":
            return
        name = (event.get("involvedObject") or {}).get("name", "")
        for follower in list(self._followers.get(name, ())):
            follower.event(event)

    async def wait_pod_gone(self, name: str, uid: str | None, timeout: float) -> bool:
        pods = await self.pod_watch()

        def gone(pod):
            return pod is None or (uid is not None and (pod.get("metadata") or {}).get("uid") != uid)

        try:
            await pods.wait_for(self.pod_key(name), gone, timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def start_pod_watch_quietly(self) -> None:
        try:
            await self.pod_watch()
        except Exception as e:  # noqa: BLE001 - poll reports and retries
            self.log.debug("pod watch not ready yet: %s", e)

    async def close(self) -> None:
        for w in (self.pods, self.events, self.nodes, self.all_pods):
            if w is not None:
                await w.close()
        self.pods = self.events = self.nodes = self.all_pods = None

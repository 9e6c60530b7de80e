"""Which shared watches a backend keeps, and what it does with what they see.

Three watches, started lazily on first use: our pods (label selector), the namespace's pod
events (field selector ``involvedObject.kind=Pod``) and the nodes (for capacity; with
``capacity_all_namespaces`` also every pod of the cluster). A launch in flight subscribes
to its pod's changes and events through ``_pod_sinks`` / ``_event_sinks``.

`WatchesMixin` is a part of `KubernetesBackend` (``_api`` from `ConnectionMixin`,
``_pod_deleted``, ``_sweep_orphan_secrets`` and ``_in_background`` from
`SecretCleanupMixin`, ``_server_ended`` and ``_remember_end`` from `ServerCleanupMixin`).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from typing import Callable

from . import objects
from .capacity import CapacityTracker
from .settings import KubernetesSettings
from .watch import SharedWatch


class WatchesMixin:
    """The pod, event and node watches of `KubernetesBackend`, and their subscribers."""

    settings: KubernetesSettings
    namespace: str | None
    log: logging.Logger
    capacity: CapacityTracker
    _pods: SharedWatch | None
    _events: SharedWatch | None
    _nodes: SharedWatch | None
    _all_pods: SharedWatch | None
    _event_sinks: dict[str, list[Callable[[dict], None]]]
    _pod_sinks: dict[str, list[Callable[[], None]]]
    _gone: collections.OrderedDict
    _swept: bool

    def _watch(self, name: str, list_call, **kw) -> SharedWatch:
        return SharedWatch(
            name,
            list_call,
            watch_timeout=self.settings.watch_timeout,
            request_timeout=self.settings.api_timeout,
            log=self.log,
            **kw,
        )

    async def _pod_watch(self, timeout: float | None = None) -> SharedWatch:
        core = await self._api()
        if self._pods is None:
            self._pods = self._watch(
                f"pods/{self.namespace}",
                functools.partial(core.list_namespaced_pod, self.namespace),
                label_selector=objects.pod_selector(self.settings),
            )
            self._pods.subscribe(self._on_pod)
        await self._pods.ready(timeout or self.settings.api_timeout)
        if not self._swept:  # once per hub process, after the first list: leftovers of a crash
            self._swept = True
            self._in_background(self._sweep_orphan_secrets())
        return self._pods

    async def _event_watch(self, timeout: float | None = None) -> SharedWatch:
        core = await self._api()
        if self._events is None:
            self._events = self._watch(
                f"events/{self.namespace}",
                functools.partial(core.list_namespaced_event, self.namespace),
                field_selector="involvedObject.kind=Pod",
                cache=False,
            )
            self._events.subscribe(self._on_event)
        await self._events.ready(timeout or self.settings.api_timeout)
        return self._events

    async def _node_watch(self, timeout: float | None = None) -> SharedWatch:
        core = await self._api()
        if self._nodes is None:
            self._nodes = self._watch(
                "nodes", core.list_node, label_selector=self.settings.capacity_node_selector
            )
            self._nodes.subscribe(self.capacity.on_node)
            if self.settings.capacity_all_namespaces:
                self._all_pods = self._watch("pods/*", core.list_pod_for_all_namespaces)
                self._all_pods.subscribe(self.capacity.on_pod)
        await self._nodes.ready(timeout or self.settings.api_timeout)
        if self._all_pods is not None:
            await self._all_pods.ready(timeout or self.settings.api_timeout)
        return self._nodes

    def _pod_key(self, name: str, namespace: str | None = None) -> str:
        return f"{namespace or self.namespace}/{name}"

    def _on_pod(self, kind: str, pod: dict) -> None:
        if not self.settings.capacity_all_namespaces:
            self.capacity.on_pod(kind, pod)
        meta = pod.get("metadata") or {}
        if kind == "DELETED":
            term = objects.pod_terminated(pod)
            status = pod.get("status") or {}
            why = term[1] if term and term[1] != "the pod is being deleted" else ""
            if not why:
                why = "it was deleted outside the hub" + (
                    f" (last phase {status.get('phase')})" if status.get("phase") else ""
                )
            # a deleted pod never reads as a clean exit (unless it had ended by itself before)
            self._remember_end(meta.get("uid", ""), (term[0] if term else 0) or 1, why)
            self._pod_deleted(pod)
        else:
            self._server_ended(pod)  # ended by itself (exit, OOM kill, eviction): delete it and its Secrets
        for sink in list(self._pod_sinks.get(meta.get("name", ""), ())):
            sink()

    def _on_event(self, kind: str, event: dict) -> None:
        if kind == "DELETED":
            return
        name = (event.get("involvedObject") or {}).get("name", "")
        for sink in list(self._event_sinks.get(name, ())):
            sink(event)

    async def _wait_pod_gone(self, name: str, uid: str | None, timeout: float) -> bool:
        pods = await self._pod_watch()

        def gone(pod):
            return pod is None or (uid is not None and (pod.get("metadata") or {}).get("uid") != uid)

        try:
            await pods.wait_for(self._pod_key(name), gone, timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def _start_pod_watch_quietly(self) -> None:
        try:
            await self._pod_watch()
        except Exception as e:  # noqa: BLE001 - poll reports and retries
            self.log.debug("pod watch not ready yet: %s", e)

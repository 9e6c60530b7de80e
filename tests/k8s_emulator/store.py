"""The object store: one global, monotonically increasing resourceVersion (like etcd's revision),
a bounded history window for watch resumption, and watchers fed from the same event loop.

All methods run on the emulator's event loop thread; nothing here blocks or awaits, so a
mutation and its fan-out to watchers are atomic with respect to every handler.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .util import Requirement, already_exists, gone, labels_match, not_found, rfc3339


@dataclass(frozen=True)
class ResourceInfo:
    plural: str
    kind: str
    namespaced: bool
    short: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


RESOURCES: dict[str, ResourceInfo] = {
    r.plural: r
    for r in (
        ResourceInfo("pods", "Pod", True, ("po",)),
        ResourceInfo("services", "Service", True, ("svc",)),
        ResourceInfo("secrets", "Secret", True),
        ResourceInfo("configmaps", "ConfigMap", True, ("cm",)),
        ResourceInfo("persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",)),
        ResourceInfo("events", "Event", True, ("ev",)),
        ResourceInfo("serviceaccounts", "ServiceAccount", True, ("sa",)),
        ResourceInfo("nodes", "Node", False, ("no",)),
        ResourceInfo("namespaces", "Namespace", False, ("ns",)),
    )
}
KIND_TO_RESOURCE = {r.kind: r.plural for r in RESOURCES.values()}


@dataclass
class Change:
    rv: int
    resource: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict
    old: dict | None  # previous state for MODIFIED (selector transitions)


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    labels: list[Requirement]
    fields: Callable[[dict], bool]
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def _matches(self, obj: dict | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, meta.get("labels")) and self.fields(obj)

    def translate(self, ch: Change) -> dict | None:
        """Watch-cache filter semantics: leaving the selector reads as DELETED, entering as ADDED."""
        if ch.resource != self.resource:
            return None
        new_ok = self._matches(ch.obj)
        if ch.type == "MODIFIED":
            old_ok = self._matches(ch.old)
            if old_ok and new_ok:
                return {"type": "MODIFIED", "object": ch.obj}
            if old_ok:
                return {"type": "DELETED", "object": ch.obj}
            if new_ok:
                return {"type": "ADDED", "object": ch.obj}
            return None
        return {"type": ch.type, "object": ch.obj} if new_ok else None


class Store:
    def __init__(self, history_window: int = 10000):
        self.rv = 1
        self.objects: dict[str, dict[tuple[str, str], dict]] = {r: {} for r in RESOURCES}
        self.history: deque[Change] = deque(maxlen=history_window)
        self.compacted_rv = 0  # changes with rv <= this are gone from history
        self.watchers: set[Watcher] = set()
        self.listeners: list[Callable[[Change], None]] = []
        self._uid_index: dict[str, tuple[str, str, str]] = {}

    # ---------------------------------------------------------------- helpers
    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    @staticmethod
    def key(obj: dict) -> tuple[str, str]:
        meta = obj["metadata"]
        return meta.get("namespace") or "", meta["name"]

    def _emit(self, ch: Change) -> None:
        if self.history.maxlen and len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(ch)
        for w in list(self.watchers):
            ev = w.translate(ch)
            if ev is not None:
                w.queue.put_nowait(ev)
        for listener in list(self.listeners):
            listener(ch)

    # ---------------------------------------------------------------- reads
    def get(self, resource: str, namespace: str | None, name: str) -> dict:
        obj = self.objects[resource].get((namespace or "", name))
        if obj is None:
            raise not_found(resource, name)
        return copy.deepcopy(obj)

    def peek(self, resource: str, namespace: str | None, name: str) -> dict | None:
        """The stored object itself (no copy); callers must not mutate it."""
        return self.objects[resource].get((namespace or "", name))

    def by_uid(self, uid: str) -> tuple[str, str, str] | None:
        return self._uid_index.get(uid)

    def iter(self, resource: str, namespace: str | None = None) -> Iterable[dict]:
        for (ns, _), obj in list(self.objects[resource].items()):
            if namespace is None or ns == namespace:
                yield obj

    def list(self, resource: str, namespace: str | None, labels: list[Requirement],
             fields: Callable[[dict], bool]) -> tuple[list[dict], int]:
        items = [copy.deepcopy(o) for o in self.iter(resource, namespace)
                 if labels_match(labels, o["metadata"].get("labels")) and fields(o)]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, self.rv

    # ---------------------------------------------------------------- writes
    def create(self, resource: str, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        k = self.key(obj)
        if k in self.objects[resource]:
            raise already_exists(resource, meta["name"])
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339()
        meta["resourceVersion"] = str(self._next_rv())
        meta.pop("deletionTimestamp", None)
        self.objects[resource][k] = obj
        self._uid_index[meta["uid"]] = (resource, k[0], k[1])
        out = copy.deepcopy(obj)
        self._emit(Change(self.rv, resource, "ADDED", out, None))
        return copy.deepcopy(obj)

    def update(self, resource: str, obj: dict) -> dict:
        """Replace the stored object (identity fields are kept from the stored one)."""
        obj = copy.deepcopy(obj)
        k = self.key(obj)
        old = self.objects[resource].get(k)
        if old is None:
            raise not_found(resource, obj["metadata"]["name"])
        for f in ("uid", "creationTimestamp", "name", "namespace"):
            if f in old["metadata"]:
                obj["metadata"][f] = old["metadata"][f]
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        self.objects[resource][k] = obj
        self._emit(Change(self.rv, resource, "MODIFIED", copy.deepcopy(obj), copy.deepcopy(old)))
        return copy.deepcopy(obj)

    def mutate(self, resource: str, namespace: str | None, name: str, fn: Callable[[dict], None]) -> dict | None:
        """Apply fn to a copy of the stored object and store it; None when it is gone."""
        cur = self.objects[resource].get((namespace or "", name))
        if cur is None:
            return None
        new = copy.deepcopy(cur)
        fn(new)
        if new == cur:
            return copy.deepcopy(cur)
        return self.update(resource, new)

    def remove(self, resource: str, namespace: str | None, name: str) -> dict:
        k = (namespace or "", name)
        old = self.objects[resource].pop(k, None)
        if old is None:
            raise not_found(resource, name)
        self._uid_index.pop(old["metadata"].get("uid", ""), None)
        old["metadata"]["resourceVersion"] = str(self._next_rv())
        self._emit(Change(self.rv, resource, "DELETED", copy.deepcopy(old), None))
        return old

    # ---------------------------------------------------------------- watch
    def start_watch(self, w: Watcher, resource_version: str | None) -> list[dict]:
        """Register w; return the events to send first (synthetic ADDED or replayed history).

        Runs synchronously so nothing can slip between replay and live events.
        """
        initial: list[dict] = []
        if resource_version in (None, "", "0"):
            for obj in self.iter(w.resource, w.namespace):
                if w._matches(obj):
                    initial.append({"type": "ADDED", "object": copy.deepcopy(obj)})
        else:
            try:
                since = int(resource_version)
            except ValueError:
                from .util import bad_request

                raise bad_request(f'invalid resource version "{resource_version}"') from None
            if since < self.compacted_rv:
                raise gone(f"too old resource version: {since} ({self.compacted_rv + 1})")
            for ch in self.history:
                if ch.rv > since:
                    ev = w.translate(ch)
                    if ev is not None:
                        initial.append(ev)
        self.watchers.add(w)
        return initial

    def stop_watch(self, w: Watcher) -> None:
        self.watchers.discard(w)

    def compact(self) -> int:
        """Forget all history: any resume from an older resourceVersion now gets 410 Gone."""
        self._next_rv()
        self.compacted_rv = self.rv
        self.history.clear()
        return self.rv

"""Crash recovery on Kubernetes: pods of this hub that no server it knows uses.

A hub killed mid-launch leaves a pod (and its token and data-mount Secrets) that its
database does not point to; one killed mid-stop may leave a pod being deleted. The pod
watch's cache already holds every pod of this backend, so a look costs no API request: a pod
is reclaimed (`remove_server_pod`: the pod, at once, and its Secrets, each by uid) when

- it carries this hub's label (`names.HUB_LABEL`), or no hub label at all (made before hubs
  had ids: two hubs cannot share a namespace and backend name anyway, their pods would have
  the same names),
- its uid is in no saved state the hub knows and no launch of its name is in flight here,
- and it was created at least ``grace`` seconds ago.

Secrets whose pod is gone are deleted by the pod watch (DELETED events) and by the sweep
when the watch first lists (`secret_cleanup`). `PodReconcileMixin` is a part of
`KubernetesBackend` (``_pod_watch`` from `WatchesMixin`, ``remove_server_pod`` from
`ServerCleanupMixin`).
"""

from __future__ import annotations

import collections
import logging
import time
from datetime import datetime
from typing import Callable, Iterable, Mapping

from ..base import Reconciled
from .names import HUB_LABEL, label_value


def created_at(pod: Mapping) -> float | None:
    """The pod's creationTimestamp as a time.time() value (None: unknown)."""
    text = (pod.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def orphan_pods(pods: Iterable[Mapping], *, hub: str, known_uids: set[str], launching: Mapping[str, int],
                grace: float, now: float) -> list[tuple[Mapping, str]]:
    """PURE: (pod, why) for each pod of ``pods`` that is an orphan of hub ``hub`` (module)."""
    if not hub:
        return []
    mine = label_value(hub)
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        name, uid = meta.get("name") or "", meta.get("uid") or ""
        if (meta.get("labels") or {}).get(HUB_LABEL, mine) != mine:
            continue  # another hub's
        if not uid or uid in known_uids or launching.get(name):
            continue
        born = created_at(pod)
        if born is None or now - born < grace:
            continue
        status = pod.get("status") or {}
        user = (meta.get("annotations") or {}).get("hub.jupyter.org/username") or "?"
        state = "being deleted" if meta.get("deletionTimestamp") else f"phase {status.get('phase') or '?'}"
        node = (pod.get("spec") or {}).get("nodeName")
        why = (f"pod of {user} ({state}{', on ' + node if node else ''}, created {now - born:.0f} s ago) "
               "belongs to no server this hub knows")
        out.append((pod, why))
    return out


class PodReconcileMixin:
    """`Backend.reconcile` for the Kubernetes backend."""

    name: str
    namespace: str | None
    hub_id: str
    log: logging.Logger
    _launching: collections.Counter[str]
    _removing: set[str]

    async def reconcile(self, known: Callable[[], Iterable[dict]], grace: float, *,
                        probe_max_age: float = 0.0) -> Reconciled:
        report = Reconciled(backend=self.name)
        if not self.hub_id:
            return report
        try:
            pods = await self._pod_watch()  # the shared cache: no request once it has listed
        except Exception as e:  # noqa: BLE001 - the cluster may be down: the next look tries again
            report.errors.append(f"cannot watch pods: {e or type(e).__name__}")
            return report
        report.looked_at = [str(self.namespace)]
        uids = {st.get("uid") for st in known() if isinstance(st, dict) and isinstance(st.get("uid"), str)}
        found = orphan_pods(list(pods.objects.values()), hub=self.hub_id, known_uids=uids,
                            launching=self._launching, grace=grace, now=time.time())
        for pod, why in found:
            meta = pod.get("metadata") or {}
            uid = meta.get("uid") or ""
            if uid in self._removing or self._launching[meta.get("name") or ""]:
                continue
            self._removing.add(uid)
            try:
                await self.remove_server_pod(pod, f"reclaimed an orphaned server: the {why}")
            except Exception as e:  # noqa: BLE001 - the next look tries again
                report.errors.append(f"pod {meta.get('name')}: {e}")
                self.log.warning("could not reclaim the orphaned pod %s: %s", meta.get("name"), e)
                continue
            finally:
                self._removing.discard(uid)
            report.reclaimed.append(f"pod {meta.get('name')} in {meta.get('namespace') or self.namespace}: {why}")
        return report

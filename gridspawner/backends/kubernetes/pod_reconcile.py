"""Crash recovery on Kubernetes: pods of this hub that no server it knows uses.

A hub killed mid-launch leaves a pod (and its token and data-mount Secrets) that its
database does not point to; one killed mid-stop may leave a pod being deleted. The pod
watch's cache already holds every pod of this backend, so a look costs no API request: a pod
is reclaimed (`remove_server_pod`: the pod, at once, and its Secrets, each by uid) when

- it carries this hub's label (`names.HUB_LABEL`), or no hub label at all (made before hubs
  had ids: two hubs cannot share a namespace and backend name anyway, their pods would have
  the same names),
- it is not a notebook run's (`names.RUN_LABEL`: the runs executor reconciles those),
- its uid is in no saved state the hub knows and no launch of its name is in flight here,
- and it was created at least ``grace`` seconds ago.

Secrets whose pod is gone are deleted by the pod watch (DELETED events) and by the sweep
when the watch first lists (`secret_cleanup`). `PodReconciler` is one of the parts
`KubernetesBackend` is composed of (it reads `ClusterWatches` and removes through
`ServerRemoval`; no state of its own).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Mapping

from ..base import Reconciled
from .cluster_watches import ClusterWatches
from .in_flight import LaunchesInFlight
from .names import HUB_LABEL, api_time, is_run, label_value
from .server_cleanup import ServerRemoval


def created_at(pod: Mapping) -> float | None:
    """The pod's creationTimestamp as a time.time() value (None: unknown)."""
    return api_time((pod.get("metadata") or {}).get("creationTimestamp"))


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
        if is_run(pod):
            continue  # a notebook run's: the runs executor reconciles its own
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


class PodReconciler:
    """`Backend.reconcile` for the Kubernetes backend."""

    def __init__(self, name: str, watches: ClusterWatches, removal: ServerRemoval, in_flight: LaunchesInFlight,
                 log: logging.Logger):
        self.name = name
        self.watches = watches
        self.removal = removal
        self.in_flight = in_flight
        self.log = log

    async def reconcile(self, hub: str, known: Callable[[], Iterable[dict]], grace: float) -> Reconciled:
        """Reclaim the orphan pods of hub ``hub`` (the module says which)."""
        report = Reconciled(backend=self.name)
        if not hub:
            return report
        try:
            pods = await self.watches.pod_watch()  # the shared cache: no request once it has listed
        except Exception as e:  # noqa: BLE001 - the cluster may be down: the next look tries again
            report.errors.append(f"cannot watch pods: {e or type(e).__name__}")
            return report
        namespace = self.watches.connection.namespace
        report.looked_at = [str(namespace)]
        uids = {st.get("uid") for st in known() if isinstance(st, dict) and isinstance(st.get("uid"), str)}
        found = orphan_pods(list(pods.objects.values()), hub=hub, known_uids=uids,
                            launching=self.in_flight, grace=grace, now=time.time())
        for pod, why in found:
            meta = pod.get("metadata") or {}
            if self.in_flight[meta.get("name") or ""]:
                continue
            with self.removal.removing(meta.get("uid") or "") as mine:
                if not mine:
                    continue
                try:
                    await self.removal.remove_server_pod(pod, f"reclaimed an orphaned server: the {why}")
                except Exception as e:  # noqa: BLE001 - the next look tries again
                    report.errors.append(f"pod {meta.get('name')}: {e}")
                    self.log.warning("could not reclaim the orphaned pod %s: %s", meta.get("name"), e)
                    continue
            report.reclaimed.append(f"pod {meta.get('name')} in {meta.get('namespace') or namespace}: {why}")
        return report

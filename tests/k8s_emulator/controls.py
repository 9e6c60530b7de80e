"""The test control surface of the emulated cluster: what a test does to the cluster that no
API client could (evict a pod as the kubelet would, flip a node's readiness, add, remove or
cordon nodes, end a container, compact history, drop watches, inject faults), and what it
reads back that the API does not show (request counters and log, validation failures, when
a pod became Ready, GPU usage per node, a pod's log).

`ClusterControls` is a mixin of `Cluster` (cluster.py), kept apart because it is a second
room: the API semantics and controllers live in cluster.py, the test's levers here. Each
`ctl_<op>` is reachable as `Emulator.<op>` in-process and as /_emulator/<op> over HTTP
(server.py looks it up by name), so the names are the control API.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from typing import TYPE_CHECKING

from . import downward
from .kubelet import set_condition
from .scheduler import node_conditions, node_object, set_not_ready_taints
from .util import not_found, parse_quantity, rfc3339

if TYPE_CHECKING:
    from .events import EventRecorder
    from .faults import Faults
    from .kubelet import Kubelet
    from .scheduler import Scheduler
    from .store import Store


class ClusterControls:
    """The `ctl_*` methods of `Cluster`. They work on the cluster's own state, declared here
    for readers and type checkers; `Cluster.__init__` sets all of it, and `Cluster` provides
    the API verbs they go through (`delete`, `pod_log`), so a deletion or a log read by a
    control behaves exactly as one through the API."""

    store: Store
    kubelet: Kubelet
    scheduler: Scheduler
    recorder: EventRecorder
    faults: Faults
    counters: Counter
    request_log: list[dict]
    validation_failures: list[dict]
    ready_times: dict[tuple[str, str], float]

    def ctl_evict(self, namespace: str, name: str, delete_after: float | None = None,
                  message: str = "The node was low on resource: memory. ") -> dict:
        """Kubelet node-pressure eviction: Failed/Evicted (DisruptionTarget). The pod object
        stays, as on a real cluster (the pod garbage collector removes terminated pods only
        past --terminated-pod-gc-threshold, 12500 by default); ``delete_after`` seconds: a
        deletion by someone else afterwards."""
        cur = self.store.peek("pods", namespace, name)
        if cur is None:
            raise not_found("pods", name)
        uid = cur["metadata"]["uid"]
        self.kubelet.terminating.add(uid)
        task = self.kubelet.tasks.pop(uid, None)
        if task:
            task.cancel()
        loop = asyncio.get_running_loop()
        if uid in self.kubelet.procs:
            loop.create_task(self.kubelet.stop_processes(uid, 0))
        for s in cur["status"].get("containerStatuses") or []:
            if "running" in s.get("state", {}):
                self.recorder.kubelet(cur, "Normal", "Killing", f"Stopping container {s['name']}",
                                      cur["spec"].get("nodeName", ""), f"spec.containers{{{s['name']}}}")
        self.recorder.kubelet(cur, "Warning", "Evicted", message, cur["spec"].get("nodeName", ""))

        def evicted(p: dict) -> None:
            st = p["status"]
            st["phase"], st["reason"], st["message"] = "Failed", "Evicted", message
            set_condition(p, "DisruptionTarget", True, "TerminationByKubelet", message)
            for s in st.get("containerStatuses") or []:
                run = s.get("state", {}).get("running")
                s.update(ready=False, started=False, state={"terminated": {
                    "exitCode": 137, "reason": "ContainerStatusUnknown",
                    "message": "The container could not be located when the pod was terminated",
                    "startedAt": (run or {}).get("startedAt", rfc3339()), "finishedAt": rfc3339()}})
            self.kubelet._recompute_ready(p)

        out = self.store.mutate("pods", namespace, name, evicted)
        if delete_after is not None:
            def later() -> None:
                p = self.store.peek("pods", namespace, name)
                if p is not None and p["metadata"]["uid"] == uid:
                    self.store.remove("pods", namespace, name)
            loop.call_later(delete_after, later)
        return out

    def ctl_delete_pod(self, namespace: str, name: str, grace: int | None = 0) -> dict:
        """Someone else (kubectl, an admin, a controller) deletes the pod."""
        opts = {} if grace is None else {"gracePeriodSeconds": grace}
        return self.delete("pods", namespace, name, opts)[1]

    def ctl_set_node_ready(self, name: str, ready: bool) -> dict:
        def f(n: dict) -> None:
            n["status"]["conditions"] = node_conditions(ready)
            set_not_ready_taints(n, not ready)

        out = self.store.mutate("nodes", None, name, f)
        if out is None:
            raise not_found("nodes", name)
        for pod in list(self.store.iter("pods")):
            if pod["spec"].get("nodeName") == name and pod["status"].get("phase") == "Running":
                ns, pn = pod["metadata"]["namespace"], pod["metadata"]["name"]
                if ready:
                    self.store.mutate("pods", ns, pn, self.kubelet._recompute_ready)
                else:
                    self.store.mutate("pods", ns, pn, lambda p: (set_condition(p, "Ready", False),))
        return out

    def ctl_add_node(self, spec: dict) -> dict:
        return self.store.create("nodes", node_object(spec))

    def ctl_remove_node(self, name: str) -> dict:
        return self.store.remove("nodes", None, name)

    def ctl_cordon(self, name: str, unschedulable: bool = True) -> dict:
        def f(n: dict) -> None:
            if unschedulable:
                n["spec"]["unschedulable"] = True
            else:
                n["spec"].pop("unschedulable", None)
        out = self.store.mutate("nodes", None, name, f)
        if out is None:
            raise not_found("nodes", name)
        return out

    async def ctl_exit_container(self, namespace: str, name: str, code: int = 1, container: str | None = None) -> None:
        cur = self.store.peek("pods", namespace, name)
        if cur is None:
            raise not_found("pods", name)
        uid = cur["metadata"]["uid"]
        c = next(c for c in cur["spec"]["containers"] if container in (None, c["name"]))
        pp = self.kubelet.procs.get(uid, {}).get(c["name"])
        if pp is not None:  # run mode: really end it, the watcher reports
            import os
            import signal
            os.killpg(pp.pid, signal.SIGKILL)
            return
        st = next((s for s in cur["status"].get("containerStatuses") or [] if s["name"] == c["name"]), {})
        started = (st.get("state", {}).get("running") or {}).get("startedAt", rfc3339())
        await self.kubelet.container_exited(namespace, name, uid, c, code, started, st.get("containerID", ""))

    def ctl_compact(self) -> int:
        return self.store.compact()

    def ctl_drop_watches(self, abrupt: bool = False) -> int:
        n = 0
        for w in list(self.store.watchers):
            w.queue.put_nowait({"_drop": abrupt})
            n += 1
        return n

    def ctl_inject_fault(self, **kw) -> dict:
        return self.faults.add(**kw).as_dict()

    def ctl_clear_faults(self) -> None:
        self.faults.clear()

    def ctl_counters(self) -> dict[str, int]:
        return {f"{verb} {res}": n for (verb, res), n in sorted(self.counters.items())}

    def ctl_reset_counters(self) -> None:
        self.counters.clear()
        self.request_log.clear()

    def ctl_requests(self) -> list[dict]:
        return list(self.request_log)

    def ctl_validation_failures(self) -> list[dict]:
        return list(self.validation_failures)

    def ctl_ready_time(self, namespace: str, name: str) -> float | None:
        return self.ready_times.get((namespace, name))

    def ctl_get(self, resource: str, namespace: str | None, name: str) -> dict | None:
        o = self.store.peek(resource, namespace, name)
        return copy.deepcopy(o) if o is not None else None

    def ctl_list(self, resource: str, namespace: str | None = None) -> list[dict]:
        return [copy.deepcopy(o) for o in self.store.iter(resource, namespace)]

    def ctl_events_for(self, namespace: str, name: str, kind: str = "Pod") -> list[dict]:
        evs = [copy.deepcopy(e) for e in self.store.iter("events", namespace)
               if e["involvedObject"].get("name") == name and e["involvedObject"].get("kind") == kind]
        evs.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
        return evs

    def ctl_gpu_usage(self) -> dict[str, dict[str, int]]:
        used = self.scheduler.usage()
        out = {}
        for n in self.store.iter("nodes"):
            name = n["metadata"]["name"]
            out[name] = {"allocatable": int(parse_quantity(n["status"]["allocatable"].get("nvidia.com/gpu", "0"))),
                         "used": int(used.get(name, Counter()).get("nvidia.com/gpu", 0))}
        return out

    def ctl_pod_log(self, namespace: str, name: str) -> str:
        return self.pod_log(namespace, name, None)

    def ctl_pod_file(self, namespace: str, name: str, path: str) -> str | None:
        """The content of a downwardAPI file at ``path`` as the pod's first container sees it
        (run mode); None while the kubelet has not written it."""
        pod = self.store.peek("pods", namespace, name)
        if pod is None:
            raise not_found("pods", name)
        local = downward.local_path(pod, pod["spec"]["containers"][0], self.kubelet.runner.pod_dir(pod["metadata"]["uid"]), path)
        if local is None:
            raise not_found("pods", f"{name}: no downwardAPI volume mounted above {path}")
        try:
            with open(local) as f:
                return f.read()
        except FileNotFoundError:
            return None

"""Nodes and the scheduler: default-scheduler filter plugins, in their order, with their wording,
then the default score plugins (scoring.py) and a random choice among the best.

Per node the first failing filter gives the reasons (NodeUnschedulable, TaintToleration,
NodeAffinity, NodeResourcesFit — the last reports every insufficient resource), counted into
the FitError message `0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't
match Pod's node affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims
found for incoming pod, 2 Preemption is not helpful for scheduling.` Unschedulable pods stay
Pending (PodScheduled=False, reason Unschedulable) and are retried when the cluster changes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .scoring import NodeLoad, loads_of, score_nodes, select_host
from .util import parse_quantity, rfc3339

if TYPE_CHECKING:
    from .cluster import Cluster

GPU = "nvidia.com/gpu"


# ------------------------------------------------------------------ nodes
def node_object(spec: dict) -> dict:
    """A Node as kubelet + GPU Feature Discovery + the device plugin would register it.

    spec keys: name, cpu ("8"), memory ("32Gi"), pods (110), gpus (int), gpu_product,
    gpu_memory (MiB), mig ({"nvidia.com/mig-1g.10gb": 7}), labels, taints
    ([{key, value, effect}]), allocatable (extra resources), ready (bool), unschedulable.
    """
    name = spec["name"]
    alloc: dict[str, str] = {
        "cpu": str(spec.get("cpu", "8")), "memory": str(spec.get("memory", "32Gi")),
        "pods": str(spec.get("pods", 110)), "ephemeral-storage": str(spec.get("ephemeral_storage", "100Gi")),
        "hugepages-1Gi": "0", "hugepages-2Mi": "0",
    }
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}
    gpus = int(spec.get("gpus", 0))
    mig = dict(spec.get("mig") or {})
    if gpus or mig:
        alloc[GPU] = str(gpus)
        product = spec.get("gpu_product", "NVIDIA-A100-SXM4-80GB")
        labels.update({
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.memory": str(int(spec.get("gpu_memory", 81920))),
            "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.family": spec.get("gpu_family", "ampere"),
            "nvidia.com/gpu.machine": spec.get("machine", "emulated"),
            "nvidia.com/cuda.driver.major": "550",
            "nvidia.com/mig.capable": "true" if mig else "false",
        })
        if mig:
            labels["nvidia.com/mig.strategy"] = "mixed"
            for res, n in mig.items():
                alloc[res] = str(n)
                profile = res.split("/", 1)[1]
                labels[f"nvidia.com/{profile}.count"] = str(n)
    for k, v in (spec.get("allocatable") or {}).items():
        alloc[k] = str(v)
    labels.update(spec.get("labels") or {})
    ip = spec.get("ip", "10.0.0.%d" % (abs(hash(name)) % 250 + 2))
    ready = spec.get("ready", True)
    taints = [dict(t) for t in (spec.get("taints") or [])]
    node = {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": dict(alloc), "allocatable": dict(alloc),
            "conditions": node_conditions(ready),
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "emulated", "systemUUID": "emulated", "bootID": "emulated",
                         "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": "v1.33.0",
                         "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
        },
    }
    if spec.get("unschedulable"):
        node["spec"]["unschedulable"] = True
    if taints:
        node["spec"]["taints"] = taints
    if not ready:
        set_not_ready_taints(node, True)
    return node


def node_conditions(ready: bool) -> list[dict]:
    now = rfc3339()
    conds = []
    for t, reason, msg in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                           ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                           ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available")):
        conds.append({"type": t, "status": "False" if ready else "Unknown",
                      "reason": reason if ready else "NodeStatusUnknown",
                      "message": msg if ready else "Kubelet stopped posting node status.",
                      "lastHeartbeatTime": now, "lastTransitionTime": now})
    conds.append({"type": "Ready", "status": "True" if ready else "Unknown",
                  "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                  "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.",
                  "lastHeartbeatTime": now, "lastTransitionTime": now})
    return conds


def set_not_ready_taints(node: dict, not_ready: bool) -> None:
    """What the node lifecycle controller does for a node whose kubelet stopped reporting."""
    taints = [t for t in node["spec"].get("taints") or [] if t["key"] != "node.kubernetes.io/unreachable"]
    if not_ready:
        now = rfc3339()
        taints += [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": now},
                   {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": now}]
    if taints:
        node["spec"]["taints"] = taints
    else:
        node["spec"].pop("taints", None)


def node_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


# ------------------------------------------------------------------ pod requirements
def pod_requests(pod: dict) -> dict[str, Decimal]:
    """Effective requests: sum over containers, at least the largest init container; + 1 pod."""
    spec = pod.get("spec") or {}
    total: Counter = Counter()
    for c in spec.get("containers") or []:
        for k, v in (((c.get("resources") or {}).get("requests")) or {}).items():
            total[k] += parse_quantity(v)
    for c in spec.get("initContainers") or []:
        for k, v in (((c.get("resources") or {}).get("requests")) or {}).items():
            q = parse_quantity(v)
            if q > total[k]:
                total[k] = q
    total["pods"] += 1
    return dict(total)


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t["key"] != taint["key"]:
            continue
        if op == "Exists" or (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expr_matches(expr: dict, labels: dict) -> bool:
    key, op, vals = expr.get("key"), expr.get("operator"), expr.get("values") or []
    has = key in labels
    v = labels.get(key)
    if op == "In":
        return has and v in vals
    if op == "NotIn":
        return not has or v not in vals
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt"):
        try:
            a, b = int(v), int(vals[0])
        except (TypeError, ValueError, IndexError):
            return False
        return a > b if op == "Gt" else a < b
    return False


def _field_matches(expr: dict, node: dict) -> bool:
    if expr.get("key") != "metadata.name":
        return False
    return _expr_matches({**expr, "key": "n"}, {"n": node["metadata"]["name"]})


def term_matches(term: dict, node: dict) -> bool:
    """A NodeSelectorTerm: its expressions and fields ANDed; an empty term matches nothing."""
    labels = node["metadata"].get("labels") or {}
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    return all(_expr_matches(e, labels) for e in exprs) and all(_field_matches(f, node) for f in fields)


def affinity_matches(pod: dict, node: dict) -> bool:
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if req is None:
        return True
    return any(term_matches(term, node) for term in req.get("nodeSelectorTerms") or [])  # terms are ORed


class Scheduler:
    """default-scheduler for the emulator. Runs on the cluster's loop."""

    def __init__(self, cluster: "Cluster", delay: float = 0.0, repeat_event_interval: float = 10.0,
                 seed: int | None = None):
        self.cluster = cluster
        #: breaks ties between equally scored nodes (kube-scheduler picks one at random)
        self.rng = random.Random(seed)
        self.delay = delay
        self.repeat_event_interval = repeat_event_interval
        self._kick = asyncio.Event()
        self._last: dict[str, tuple[str, float]] = {}  # pod uid → (message, when)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def kick(self) -> None:
        self._kick.set()

    async def _loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            if self.delay:
                await asyncio.sleep(self.delay)
            try:
                self.run_once()
            except Exception:  # a scheduler bug must not kill the loop silently
                self.cluster.log.exception("scheduler pass failed")

    # ---------------------------------------------------------------- one pass
    def usage(self) -> dict[str, Counter]:
        used: dict[str, Counter] = {}
        for pod in self.cluster.store.iter("pods"):
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            c = used.setdefault(node, Counter())
            for k, v in pod_requests(pod).items():
                c[k] += v
        return used

    def run_once(self) -> None:
        store = self.cluster.store
        pending = [p for p in store.iter("pods")
                   if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
                   and p["spec"].get("schedulerName", "default-scheduler") == "default-scheduler"
                   and p.get("status", {}).get("phase") == "Pending"
                   and not p["spec"].get("schedulingGates")]
        if not pending:
            return
        pending.sort(key=lambda p: (-(p["spec"].get("priority") or 0), int(p["metadata"]["resourceVersion"])))
        nodes = list(store.iter("nodes"))
        used = self.usage()
        loads = loads_of(store.iter("pods"))
        for pod in pending:
            node, message = self.place(pod, nodes, used, loads)
            if node is None:
                self._unschedulable(pod, message)
                continue
            for k, v in pod_requests(pod).items():
                used.setdefault(node["metadata"]["name"], Counter())[k] += v
            loads.setdefault(node["metadata"]["name"], NodeLoad()).add(pod)
            self.cluster.bind(pod, node["metadata"]["name"])
            self._last.pop(pod["metadata"]["uid"], None)

    def place(self, pod: dict, nodes: list[dict], used: dict[str, Counter],
              loads: dict[str, NodeLoad] | None = None) -> tuple[dict | None, str]:
        n = len(nodes)
        if n == 0:
            return None, "no nodes available to schedule pods"
        # PreFilter: VolumeBinding
        ns = pod["metadata"].get("namespace")
        for v in pod["spec"].get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                pvc = self.cluster.store.peek("persistentvolumeclaims", ns, claim)
                if pvc is None or pvc["metadata"].get("deletionTimestamp"):
                    why = (f'persistentvolumeclaim "{claim}" not found' if pvc is None
                           else f'persistentvolumeclaim "{claim}" is being deleted')
                    return None, (f"0/{n} nodes are available: {why}. preemption: 0/{n} nodes are available: "
                                  f"{n} Preemption is not helpful for scheduling.")
                if pvc.get("status", {}).get("phase") != "Bound":
                    return None, (f"0/{n} nodes are available: pod has unbound immediate PersistentVolumeClaims. "
                                  f"preemption: 0/{n} nodes are available: {n} Preemption is not helpful "
                                  "for scheduling.")
        reqs = pod_requests(pod)
        tolerations = pod["spec"].get("tolerations") or []
        reasons: Counter = Counter()
        preempt: Counter = Counter()
        fits: list[dict] = []
        for node in nodes:
            name = node["metadata"]["name"]
            why = self._filter(pod, node, reqs, tolerations, used.get(name, Counter()))
            if why is None:
                fits.append(node)
                continue
            resolvable, texts = why
            for t in texts:
                reasons[t] += 1
            preempt["No preemption victims found for incoming pod" if resolvable
                    else "Preemption is not helpful for scheduling"] += 1
        if len(fits) == 1:  # upstream skips scoring then, too
            return fits[0], ""
        if fits:
            totals = score_nodes(pod, fits, loads if loads is not None else loads_of(self.cluster.store.iter("pods")),
                                 term_matches, tolerates)
            chosen = select_host(totals, self.rng)
            return next(n for n in fits if n["metadata"]["name"] == chosen), ""
        main = ", ".join(sorted(f"{c} {r}" for r, c in reasons.items()))
        post = ", ".join(sorted(f"{c} {r}" for r, c in preempt.items()))
        return None, f"0/{n} nodes are available: {main}. preemption: 0/{n} nodes are available: {post}."

    @staticmethod
    def _filter(pod: dict, node: dict, reqs: dict, tolerations: list, used: Counter) -> tuple[bool, list[str]] | None:
        """None if the node fits, else (resolvable by preemption, reasons) of the first failing plugin."""
        if node["spec"].get("unschedulable") and not tolerates(
                tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
            return False, ["node(s) were unschedulable"]
        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
                return False, [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
        if not affinity_matches(pod, node):
            return False, ["node(s) didn't match Pod's node affinity/selector"]
        alloc = node["status"].get("allocatable") or {}
        out = []
        for res, q in sorted(reqs.items()):
            if q == 0:
                continue
            have = parse_quantity(alloc.get(res, "0"))
            if used.get(res, 0) + q > have:
                out.append("Too many pods" if res == "pods" else f"Insufficient {res}")
        if out:
            return True, out
        return None

    def _unschedulable(self, pod: dict, message: str) -> None:
        uid = pod["metadata"]["uid"]
        last = self._last.get(uid)
        now = time.monotonic()
        if last and last[0] == message and now - last[1] < self.repeat_event_interval:
            return
        self._last[uid] = (message, now)
        ns, name = pod["metadata"].get("namespace"), pod["metadata"]["name"]

        def cond(p: dict) -> None:
            conds = [c for c in p["status"].get("conditions", []) if c["type"] != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                          "lastTransitionTime": rfc3339(), "reason": "Unschedulable", "message": message})
            p["status"]["conditions"] = conds

        updated = self.cluster.store.mutate("pods", ns, name, cond)
        if updated is not None:
            self.cluster.recorder.scheduler(updated, "Warning", "FailedScheduling", message)

    def forget(self, uid: str) -> None:
        self._last.pop(uid, None)


def capacity_summary(nodes: list[dict], used: dict[str, Counter]) -> list[dict[str, Any]]:
    """For tests: per node allocatable vs used GPUs."""
    out = []
    for n in nodes:
        name = n["metadata"]["name"]
        have = parse_quantity(n["status"]["allocatable"].get(GPU, "0"))
        out.append({"name": name, "gpus": int(have), "used": int(used.get(name, Counter()).get(GPU, 0))})
    return out

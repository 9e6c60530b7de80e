"""kube-scheduler's default scoring (Kubernetes 1.33), for the emulator's scheduler (scheduler.py).

After filtering, every feasible node gets a score per plugin, plugins with a NormalizeScore
are rescaled to 0..100 over the feasible nodes, each is multiplied by its weight from the
default profile (pkg/scheduler/apis/config/v1/default_plugins.go) and summed; the highest
sum wins and a tie is broken at random (selectHost's reservoir sampling), never by name.

Default score plugins, as upstream computes them (integer arithmetic where Go uses it):

- TaintToleration (weight 3): the number of untolerated ``PreferNoSchedule`` taints,
  normalized in reverse (fewest → 100; all equal → 100 each).
- NodeAffinity (weight 2): the sum of the weights of the pod's matching
  ``preferredDuringSchedulingIgnoredDuringExecution`` terms, normalized to 0..100 by the
  highest (all zero → 0 each).
- NodeResourcesFit (weight 1), strategy LeastAllocated over cpu and memory (weight 1 each):
  ``(allocatable − requested) × 100 / allocatable`` per resource (0 when over), their
  weighted mean. ``requested`` is the node's *non-zero* requests plus the pod's: a container
  without a cpu / memory request counts as 100m / 200 MiB.
- NodeResourcesBalancedAllocation (weight 1): ``(1 − std) × 100`` of the cpu and memory
  fractions requested/allocatable (capped at 1) with the pod added, from the actual
  requests; skipped (0 everywhere) for a pod requesting neither cpu nor memory.
- PodTopologySpread and InterPodAffinity (weight 2 each) score 0 everywhere: the emulator's
  pods have no spread constraints or pod (anti-)affinity, and the system-default spreading
  applies only to pods selected by a Service or a workload controller, which server pods
  are not. ImageLocality (weight 1) is left out: image size is not modelled.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Iterable

from .util import parse_quantity

MAX_NODE_SCORE = 100
WEIGHTS = {"TaintToleration": 3, "NodeAffinity": 2, "NodeResourcesFit": 1, "NodeResourcesBalancedAllocation": 1}
#: schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: what a container without a
#: request counts as for LeastAllocated
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
_SCORED = ("cpu", "memory")


def _containers(pod: dict) -> tuple[list[dict], list[dict]]:
    spec = pod.get("spec") or {}
    return list(spec.get("containers") or []), list(spec.get("initContainers") or [])


def scored_requests(pod: dict, non_zero: bool) -> dict[str, int]:
    """The pod's cpu (millicores) and memory (bytes) requests as the scorers read them:
    containers summed, at least the largest init container; with ``non_zero`` a missing
    request counts as the scheduler's default."""
    defaults = {"cpu": DEFAULT_MILLI_CPU, "memory": DEFAULT_MEMORY}

    def one(c: dict, res: str) -> int:
        value = ((c.get("resources") or {}).get("requests") or {}).get(res)
        if value is None:
            return defaults[res] if non_zero else 0
        q = parse_quantity(value)
        return int(q * 1000) if res == "cpu" else int(q)

    containers, inits = _containers(pod)
    out = {}
    for res in _SCORED:
        total = sum(one(c, res) for c in containers)
        out[res] = max([total, *(one(c, res) for c in inits)])
    return out


def allocatable(node: dict) -> dict[str, int]:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    cpu = parse_quantity(alloc.get("cpu", "0"))
    return {"cpu": int(cpu * 1000), "memory": int(parse_quantity(alloc.get("memory", "0")))}


class NodeLoad:
    """What the pods bound to one node request, in both of the scorers' ways."""

    def __init__(self) -> None:
        self.requested: Counter = Counter()
        self.non_zero: Counter = Counter()

    def add(self, pod: dict) -> None:
        self.requested.update(scored_requests(pod, non_zero=False))
        self.non_zero.update(scored_requests(pod, non_zero=True))


# ------------------------------------------------------------------ plugins (raw scores)
def _least_requested(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def fit_score(pod_non_zero: dict[str, int], node_alloc: dict[str, int], load: NodeLoad) -> int:
    total = weights = 0
    for res in _SCORED:  # weight 1 each
        if node_alloc[res] == 0:
            continue
        total += _least_requested(load.non_zero[res] + pod_non_zero[res], node_alloc[res])
        weights += 1
    return total // weights if weights else 0


def balanced_score(pod_requested: dict[str, int], node_alloc: dict[str, int], load: NodeLoad) -> int:
    fractions = []
    for res in _SCORED:
        if node_alloc[res] == 0:
            continue
        fractions.append(min(1.0, (load.requested[res] + pod_requested[res]) / node_alloc[res]))
    if len(fractions) == 2:
        std = abs(fractions[0] - fractions[1]) / 2
    elif len(fractions) > 2:  # not reached with cpu and memory; upstream's general case
        mean = sum(fractions) / len(fractions)
        std = (sum((f - mean) ** 2 for f in fractions) / len(fractions)) ** 0.5
    else:
        std = 0.0
    return int((1 - std) * MAX_NODE_SCORE)


def taint_score(pod: dict, node: dict, tolerates) -> int:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    return sum(1 for t in (node.get("spec") or {}).get("taints") or []
               if t.get("effect") == "PreferNoSchedule" and not tolerates(tolerations, t))


def affinity_score(pod: dict, node: dict, term_matches) -> int:
    na = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
    total = 0
    for term in na.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        weight = int(term.get("weight") or 0)
        preference = term.get("preference") or {}
        empty = not (preference.get("matchExpressions") or preference.get("matchFields"))
        if weight and (empty or term_matches(preference, node)):  # an empty preference matches every node
            total += weight
    return total


def normalize(scores: list[int], reverse: bool = False) -> list[int]:
    """pluginhelper.DefaultNormalizeScore(MaxNodeScore, reverse, scores)."""
    top = max(scores, default=0)
    if top == 0:
        return [MAX_NODE_SCORE if reverse else 0 for _ in scores]
    out = [MAX_NODE_SCORE * s // top for s in scores]
    return [MAX_NODE_SCORE - s for s in out] if reverse else out


# ------------------------------------------------------------------ the whole score
def score_nodes(pod: dict, nodes: list[dict], loads: dict[str, NodeLoad], term_matches, tolerates) -> dict[str, int]:
    """Each feasible node's weighted sum of the default plugins' (normalized) scores.
    ``term_matches(preference, node)``: does a NodeSelectorTerm match a node;
    ``tolerates(tolerations, taint)``: do the pod's tolerations tolerate a taint (the
    scheduler's own matchers, the ones its filters use)."""
    pod_non_zero = scored_requests(pod, non_zero=True)
    pod_requested = scored_requests(pod, non_zero=False)
    best_effort = not any(pod_requested.values())
    per_plugin: dict[str, list[int]] = {name: [] for name in WEIGHTS}
    for node in nodes:
        load = loads.get(node["metadata"]["name"]) or NodeLoad()
        alloc = allocatable(node)
        per_plugin["TaintToleration"].append(taint_score(pod, node, tolerates))
        per_plugin["NodeAffinity"].append(affinity_score(pod, node, term_matches))
        per_plugin["NodeResourcesFit"].append(fit_score(pod_non_zero, alloc, load))
        per_plugin["NodeResourcesBalancedAllocation"].append(0 if best_effort else balanced_score(pod_requested, alloc, load))
    per_plugin["TaintToleration"] = normalize(per_plugin["TaintToleration"], reverse=True)
    per_plugin["NodeAffinity"] = normalize(per_plugin["NodeAffinity"])
    totals = {}
    for i, node in enumerate(nodes):
        totals[node["metadata"]["name"]] = sum(WEIGHTS[p] * scores[i] for p, scores in per_plugin.items())
    return totals


def select_host(totals: dict[str, int], rng: random.Random) -> str:
    """The highest total; among equals one at random (upstream's reservoir sampling)."""
    best: str | None = None
    top = None
    seen = 0
    for name, total in totals.items():
        if top is None or total > top:
            best, top, seen = name, total, 1
        elif total == top:
            seen += 1
            if rng.randrange(seen) == 0:
                best = name
    assert best is not None, "select_host needs at least one node"
    return best


def loads_of(pods: Iterable[dict]) -> dict[str, NodeLoad]:
    """NodeLoad per node from the bound, unfinished pods."""
    out: dict[str, NodeLoad] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        out.setdefault(node, NodeLoad()).add(pod)
    return out


__all__ = ["NodeLoad", "WEIGHTS", "loads_of", "normalize", "score_nodes", "scored_requests", "select_host"]

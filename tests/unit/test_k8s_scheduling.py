"""Best fit under kube-scheduler's default scoring.

First, the emulator's scoring (tests/k8s_emulator/scoring.py) against cases whose expected
numbers are upstream's own (noderesources' least_allocated and balanced_allocation tests,
DefaultNormalizeScore); then the pods gridspawner builds, scored as kube-scheduler scores
them: the smallest VRAM class that fits must win even where the default resource plugins
favour a bigger, emptier node — which is exactly what a pod without the preference loses.
"""

from __future__ import annotations

import random
from collections import Counter

from k8s_emulator.scheduler import node_object, term_matches, tolerates
from k8s_emulator.scoring import NodeLoad, balanced_score, fit_score, normalize, score_nodes, scored_requests, select_host

from gridspawner.backends.kubernetes.objects import build_pod, server_names
from gridspawner.backends.kubernetes.settings import parse_image, parse_settings


def _raw_node(name, cpu, memory):
    return {"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu, "memory": memory}}}


def _pod(*containers):
    return {"spec": {"containers": [{"name": f"c{i}", "resources": {"requests": r}} for i, r in enumerate(containers)]}}


# ------------------------------------------------------------------ the emulator scores as upstream does
def test_least_allocated_and_balanced_allocation_match_upstream_cases():
    """'nothing scheduled, resources requested, differently sized nodes' (upstream: Fit
    LeastAllocated 37 / 50, BalancedAllocation 87 / 100)."""
    pod = _pod({"cpu": "1000m", "memory": "2000"}, {"cpu": "2000m", "memory": "3000"})
    node1, node2 = _raw_node("node1", "4000m", "10000"), _raw_node("node2", "6000m", "10000")
    from k8s_emulator.scoring import allocatable

    fit = [fit_score(scored_requests(pod, True), allocatable(n), NodeLoad()) for n in (node1, node2)]
    balanced = [balanced_score(scored_requests(pod, False), allocatable(n), NodeLoad()) for n in (node1, node2)]
    assert fit == [37, 50]
    assert balanced == [87, 100]


def test_non_zero_defaults_and_normalization():
    assert scored_requests(_pod({}), non_zero=True) == {"cpu": 100, "memory": 200 * 1024 * 1024}
    assert scored_requests(_pod({}), non_zero=False) == {"cpu": 0, "memory": 0}
    assert normalize([10, 20, 0]) == [50, 100, 0]
    assert normalize([10, 20, 0], reverse=True) == [50, 0, 100]
    assert normalize([0, 0]) == [0, 0] and normalize([0, 0], reverse=True) == [100, 100]


def test_prefer_no_schedule_taints_weigh_three_times():
    plain, tainted = node_object({"name": "plain"}), node_object({"name": "tainted", "taints": [{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]})
    pod = _pod({"cpu": "1", "memory": "1Gi"})
    totals = score_nodes(pod, [plain, tainted], {}, term_matches, tolerates)
    assert totals["plain"] - totals["tainted"] == 3 * 100
    pod["spec"]["tolerations"] = [{"key": "spot", "operator": "Exists"}]
    totals = score_nodes(pod, [plain, tainted], {}, term_matches, tolerates)
    assert totals["plain"] == totals["tainted"]


def test_ties_are_broken_at_random_not_by_name():
    rng = random.Random(7)
    picks = Counter(select_host({"gpu-a10": 300, "gpu-a100": 300, "cpu": 200}, rng) for _ in range(400))
    assert set(picks) == {"gpu-a10", "gpu-a100"}
    assert 120 < picks["gpu-a10"] < 280, picks


# ------------------------------------------------------------------ gridspawner's pods under that scoring
SETTINGS = parse_settings("cluster", {}, "k")
IMAGE = parse_image("lab", {"image": "quay.io/jupyter/base-notebook:2025-01-01"}, "k")
TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


def gpu_node(name, mib, cpu="32", memory="128Gi"):
    return node_object({"name": name, "cpu": cpu, "memory": memory, "gpus": 2, "gpu_memory": mib, "taints": TAINT})


def server_pod(nodes, gpu_memory=24, cpu=4, memory=16, prefer=True):
    vram = tuple(sorted({int(n["metadata"]["labels"]["nvidia.com/gpu.memory"]) for n in nodes})) if prefer else ()
    return build_pod(SETTINGS, IMAGE, user="alice", server_name="", names=server_names("alice", ""), env={},
                     cmd=("jupyterhub-singleuser",), args=(), gpus=1, gpu_memory=gpu_memory, cpu=cpu, memory=memory,
                     tolerance=0.07, node_vram_mib=vram)


def winner(pod, feasible, loads=None):
    totals = score_nodes(pod, feasible, loads or {}, term_matches, tolerates)
    best = max(totals.values())
    return {name for name, total in totals.items() if total == best}, totals


def busy(cpu, memory):
    load = NodeLoad()
    load.add(_pod({"cpu": cpu, "memory": memory}))
    return load


def test_a_24_gb_request_prefers_the_a10_even_when_the_a100_node_is_bigger_and_emptier():
    a10, a100 = gpu_node("gpu-a10", 23028), gpu_node("gpu-a100", 81920, cpu="128", memory="1Ti")
    loads = {"gpu-a10": busy("24", "96Gi")}  # the A10 node is three quarters booked
    # without the preference the default plugins send it to the 80 GB card ...
    assert winner(server_pod([a10, a100], prefer=False), [a10, a100], loads)[0] == {"gpu-a100"}
    # ... and with equal nodes it is a coin toss
    twin = gpu_node("gpu-a100", 81920)
    assert winner(server_pod([a10, twin], prefer=False), [a10, twin])[0] == {"gpu-a10", "gpu-a100"}
    # gridspawner's pod: the smallest card that fits wins, by ≥ 130 points
    chosen, totals = winner(server_pod([a10, a100]), [a10, a100], loads)
    assert chosen == {"gpu-a10"}
    assert totals["gpu-a10"] - totals["gpu-a100"] >= 100, totals


def test_worst_case_resource_scores_cannot_outweigh_the_preference():
    """The A10 node booked to the last CPU and byte, the A100 node empty and huge: the two
    resource plugins differ by at most 100 points; the preference is worth ≥ 130."""
    a10, a100 = gpu_node("gpu-a10", 23028, cpu="8", memory="32Gi"), gpu_node("gpu-a100", 81920, cpu="256", memory="2Ti")
    loads = {"gpu-a10": busy("4", "16Gi")}  # with the pod's 4 CPUs / 16 GiB: exactly full
    assert winner(server_pod([a10, a100]), [a10, a100], loads)[0] == {"gpu-a10"}


def test_when_the_smallest_class_is_full_the_next_smallest_wins():
    a10, l40s, a100 = gpu_node("gpu-a10", 23028), gpu_node("gpu-l40s", 46068), gpu_node("gpu-a100", 81920, cpu="128", memory="1Ti")
    pod = server_pod([a10, l40s, a100])  # made knowing all three classes
    loads = {"gpu-l40s": busy("24", "96Gi")}
    assert winner(pod, [a10, l40s, a100], loads)[0] == {"gpu-a10"}
    assert winner(pod, [l40s, a100], loads)[0] == {"gpu-l40s"}  # the A10s are taken: filtered out
    # a request only the 80 GB cards satisfy has nothing to prefer
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in server_pod([a10, l40s, a100], gpu_memory=80)["spec"]["affinity"]["nodeAffinity"]

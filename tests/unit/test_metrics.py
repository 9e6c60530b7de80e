"""The pure parts of gridspawner.metrics: bounded labels for refused fields, and the capacity
collector read into a registry of its own (the hub-level scrape is in
tests/integration/test_hub_metrics.py)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from gridspawner import metrics
from gridspawner.backends.base import Capacity, HostCapacity
from gridspawner.gpu import GPU


@pytest.mark.parametrize(
    "key, label",
    [
        ("gpus", "gpus"),
        ("gpu_memory", "gpu_memory"),
        ("profile", "profile"),
        ("mounts", "mounts"),
        ("mounts[3].bucket", "mounts"),
        ("mounts[0]", "mounts"),
        ("no_such_option", "other"),
        ("gpus[0]", "gpus"),
        ("", "other"),
        ("<script>", "other"),
    ],
)
def test_field_label_is_a_known_option_or_other(key, label):
    assert metrics.field_label(key) == label


def test_count_rejected_counts_each_field_once():
    metrics.register()  # as a GridSpawner hub does (gridspawner.activation)
    def now(field):
        return REGISTRY.get_sample_value("gridspawner_rejected_options_total", {"field": field}) or 0

    before = {f: now(f) for f in ("mounts", "gpus", "other")}
    metrics.count_rejected({"mounts[0].bucket": "x", "mounts[1].prefix": "y", "gpus": "z", "bogus": "w"})
    assert {f: now(f) - before[f] for f in before} == {"mounts": 1, "gpus": 1, "other": 1}


class FixedMonitor:
    def __init__(self, snapshot):
        self._snapshot = snapshot

    def snapshot(self):
        return dict(self._snapshot)


def gpu(i, mib):
    return GPU(i, f"GPU-{i:04d}", "card", mib)


def test_capacity_collector_reads_the_cache():
    a, b, c = gpu(0, 81920), gpu(1, 81920), gpu(2, 23028)
    snapshot = {
        "lab": Capacity(
            backend="lab",
            hosts=(
                HostCapacity("h1", (a, b, c), free=frozenset({a.uuid, c.uuid})),
                HostCapacity("h2", (gpu(3, 40960),), error="connection refused"),  # not counted
            ),
            updated=time.time() - 5,
        ),
        "k8s": Capacity(backend="k8s", updated=time.time(), error="forbidden"),
        "new": Capacity(backend="new"),  # never probed
    }
    collector = metrics.CapacityCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    assert registry.get_sample_value("gridspawner_gpus", {"backend": "lab", "state": "free", "memory_gb": "80"}) is None

    collector.monitor = FixedMonitor(snapshot)

    def get(name, **labels):
        return registry.get_sample_value(name, labels)

    assert get("gridspawner_gpus", backend="lab", state="free", memory_gb="80") == 1
    assert get("gridspawner_gpus", backend="lab", state="used", memory_gb="80") == 1
    assert get("gridspawner_gpus", backend="lab", state="free", memory_gb="24") == 1  # 23028 MiB is a 24 GB card
    assert get("gridspawner_gpus", backend="lab", state="used", memory_gb="24") is None
    assert get("gridspawner_gpus", backend="lab", state="free", memory_gb="40") is None  # on the unreachable host
    assert get("gridspawner_hosts", backend="lab", state="reachable") == 1
    assert get("gridspawner_hosts", backend="lab", state="unreachable") == 1
    assert get("gridspawner_capacity_probe_ok", backend="lab") == 1
    assert get("gridspawner_capacity_probe_ok", backend="k8s") == 0
    assert get("gridspawner_capacity_probe_ok", backend="new") == 0
    assert 4 < get("gridspawner_capacity_age_seconds", backend="lab") < 60
    assert get("gridspawner_capacity_age_seconds", backend="new") is None

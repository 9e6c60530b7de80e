"""The idle policy's pure parts: timeouts, GPU use readings (hosts, Prometheus), verdicts."""

from __future__ import annotations

import subprocess

import pytest

from gridspawner.backends.host.gpu_use import GpuUse, GpuProcess, parse_use, use_lines
from gridspawner.vocabulary import CatalogError, Problems
from gridspawner.usage.idle import IdlePolicy, IdleTracker, idle_since, parse_idle, unknown_names, verdict
from gridspawner.usage.prometheus import QUERY, parse_utilization, pod_busy, query_url


def policy(**kw) -> IdlePolicy:
    problems = Problems()
    p = parse_idle(kw.get("default", 0), kw.get("backends"), kw.get("profiles"), kw.get("threshold", 5),
                   kw.get("unknown", "keep"), problems)
    problems.raise_any()
    return p


def test_timeout_profile_then_backend_then_default():
    p = policy(default="2h", backends={"k8s": "30m", "local": 0}, profiles={"course": "20m"})
    assert p.timeout_for("k8s", "course") == 1200
    assert p.timeout_for("k8s", None) == 1800
    assert p.timeout_for("local", None) is None  # an explicit 0: never
    assert p.timeout_for("ssh", "other") == 7200
    assert not policy().configured and p.configured
    errors = unknown_names(p, {"k8s": 1}, {})
    assert [e.key for e in errors] == ["c.GridSpawner.idle_timeout_per_backend['local']",
                                       "c.GridSpawner.idle_timeout_per_profile['course']"]


@pytest.mark.parametrize("kw,key", [
    ({"default": "soon"}, "c.GridSpawner.idle_timeout"),
    ({"backends": {"k8s": -5}}, "c.GridSpawner.idle_timeout_per_backend['k8s']"),
    ({"threshold": 101}, "c.GridSpawner.idle_gpu_threshold"),
    ({"unknown": "kill"}, "c.GridSpawner.idle_when_gpu_use_unknown"),
])
def test_bad_idle_settings_name_the_key(kw, key):
    with pytest.raises(CatalogError) as e:
        policy(**kw)
    assert key in str(e.value)


def test_gpu_use_counts_only_the_servers_own_busy_processes():
    use = GpuUse(True, 0.0, {"GPU-a": 90, "GPU-b": 0, "GPU-c": 95},
                 (GpuProcess("GPU-a", 300, 1000, (300, 200, 100)),  # a kernel, child of server 100
                  GpuProcess("GPU-b", 400, 1000, (400, 100)),  # holds memory at 0 %
                  GpuProcess("GPU-c", 500, 1000, (500, 42))))  # someone else's, on GPU-c
    assert use.busy(["GPU-a"], 100, 5) is True
    assert use.busy(["GPU-b"], 100, 5) is False
    assert use.busy(["GPU-c"], 100, 5) is False  # busy, but not by this server
    assert GpuUse(False, 0.0).busy(["GPU-a"], 100, 5) is None


def test_use_lines_follow_a_process_up_to_its_server(tmp_path):
    """The probe's sh, run for real against a stand-in nvidia-smi: the lineage of a process
    reaches the shell that started it."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\ncase "$1" in\n  --query-gpu=*) echo "GPU-a, 77";;\n'
                    '  --query-compute-apps=*) echo "GPU-a, $GS_PID, 1234";;\nesac\n')
    fake.chmod(0o755)
    child = subprocess.Popen(["sleep", "30"])
    try:
        out = subprocess.run(["sh", "-c", use_lines([str(fake)])], capture_output=True, text=True,
                             env={"GS_PID": str(child.pid), "PATH": "/usr/bin:/bin"}).stdout
    finally:
        child.kill()
        child.wait()
    use = parse_use(out, 5.0)
    assert use.ok and use.utilization == {"GPU-a": 77}
    [proc] = use.processes
    assert proc.pid == child.pid and proc.used_mib == 1234
    import os
    assert proc.lineage[:2] == (child.pid, os.getpid())
    assert use.busy(["GPU-a"], os.getpid(), 5)


def test_use_lines_without_nvidia_smi_say_unknown():
    out = subprocess.run(["sh", "-c", use_lines(["/nonexistent/nvidia-smi"])], capture_output=True, text=True).stdout
    assert parse_use(out, 0).ok is False


def test_prometheus_answer_both_label_spellings():
    body = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"namespace": "gpu", "pod": "jupyter-ann"}, "value": [1, "87"]},
        {"metric": {"namespace": "monitoring", "pod": "dcgm-xyz", "exported_namespace": "gpu",
                    "exported_pod": "jupyter-bob"}, "value": [1, "0"]},
        {"metric": {"namespace": "gpu"}, "value": [1, "50"]},  # no pod: ignored
    ]}}
    util = parse_utilization(body)
    assert util == {("gpu", "jupyter-ann"): 87.0, ("gpu", "jupyter-bob"): 0.0}
    assert pod_busy(util, {"namespace": "gpu", "pod": "jupyter-ann"}, 5) is True
    assert pod_busy(util, {"namespace": "gpu", "pod": "jupyter-bob"}, 5) is False
    assert pod_busy(util, {"namespace": "gpu", "pod": "jupyter-eve"}, 5) is None
    assert pod_busy(None, {"namespace": "gpu", "pod": "jupyter-ann"}, 5) is None
    with pytest.raises(ValueError):
        parse_utilization({"status": "error", "error": "bad query"})
    assert query_url("http://prom:9090/").startswith("http://prom:9090/api/v1/query?query=")
    assert "DCGM_FI_DEV_GPU_UTIL" in QUERY


def test_verdict_warns_then_stops_and_busy_gpus_reset_the_clock():
    tracker = IdleTracker()
    tracker.observe(True, True, "keep", now=100.0)
    since = idle_since(started=0.0, last_activity=50.0, gpus_busy_at=tracker.gpus_busy_at)
    assert since == 100.0
    assert verdict(600, since, now=200.0, warning=300) == (None, False)
    assert verdict(600, since, now=450.0, warning=300) == (700.0, False)
    assert verdict(600, since, now=700.0, warning=300) == (700.0, True)
    # unknown GPU use: "keep" counts it as busy, "activity" does not
    keep, act = IdleTracker(), IdleTracker()
    keep.observe(None, True, "keep", 5.0)
    act.observe(None, True, "activity", 5.0)
    assert keep.gpus_busy_at == 5.0 and act.gpus_busy_at is None
    cpu_only = IdleTracker()
    cpu_only.observe(True, False, "keep", 5.0)
    assert cpu_only.gpus_busy_at is None
